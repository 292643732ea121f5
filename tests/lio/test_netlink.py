"""``targets.tcmu.netlink`` against this host's real generic netlink controller (no TCMU needed):
the family and group lookup that joins TCM-USER's ``config`` group, tried on ``nlctrl``'s ``notify``."""

from __future__ import annotations

import pytest

from targets.tcmu.netlink import TcmuNetlink


def test_joins_a_generic_netlink_multicast_group_by_name() -> None:
    listener = TcmuNetlink("nlctrl", "notify")
    try:
        assert listener.fileno() >= 0
        listener.drain()  # nothing waiting: returns at once
    finally:
        listener.close()


def test_a_missing_family_or_group_is_a_clear_error() -> None:
    with pytest.raises(OSError, match="no NO-SUCH-FAMILY netlink family"):
        TcmuNetlink("NO-SUCH-FAMILY")
    with pytest.raises(OSError, match="nlctrl has no 'nothing' multicast group"):
        TcmuNetlink("nlctrl", "nothing")
