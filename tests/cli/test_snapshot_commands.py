"""``volume select <v> snapshot ...`` through the sans-IO session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from array_sim import Group
from array_sim.member_admin import FILE_LAYOUT
from array_sim.units import GiB

SNAP_HEADER = "Name                      Permission Status  Connections"


@pytest.fixture
def raid_policy() -> str:
    """No RAID is tested here: the ``group`` fixture's member is one sparse file (quicker to make, flush and delete)."""
    return FILE_LAYOUT
SNAP_DASHES = "------------------------- ---------- ------- -----------"
WHEN = datetime(2024, 1, 2, 3, 4, 5)


@pytest.fixture
def timed(tmp_path: Path, helpers: Any) -> Iterator[Any]:
    """A script-style session on a group whose clock is fixed at ``WHEN``."""
    group = Group.init(tmp_path / "timed", member_size=10 * GiB, clock=lambda: WHEN)
    try:
        cli = helpers.Cli(group)
        cli.quiet("cli-settings confirmation off")
        cli.quiet("cli-settings formatoutput off")
        yield cli
    finally:
        group.close()


def test_create_now_names_and_lists_snapshots(timed: Any) -> None:
    timed.ok("volume create v1 1G")
    assert timed.run("volume select v1 snapshot create-now") == [
        "Snapshot creation succeeded.",
        "Snapshot name is v1-2024-01-02-03:04:05.1",
    ]
    assert timed.run('volume select v1 snapshot create-now description "second one"')[1] == (
        "Snapshot name is v1-2024-01-02-03:04:05.2"
    )
    assert timed.ok("volume select v1 snapshot show") == [
        SNAP_HEADER,
        SNAP_DASHES,
        "v1-2024-01-02-03:04:05.1  read-write offline 0",
        "v1-2024-01-02-03:04:05.2  read-write offline 0",
    ]
    assert timed.values("volume select v1 snapshot show v1-2024-01-02-03:04:05.2")["Description"] == "second one"
    assert timed.values("volume select v1 show")["Snapshots"] == "2"


def test_long_snapshot_names_wrap_with_the_time_on_the_continuation_line(timed: Any) -> None:
    timed.ok("volume create vm-100-disk-1 1G")
    timed.ok("volume select vm-100-disk-1 snapshot create-now")
    out = timed.ok("volume select vm-100-disk-1 snapshot show")
    assert out[2:] == [
        "vm-100-disk-1-2024-01-02- read-write offline 0",
        "  03:04:05.1",
    ]
    # Proxmox: the snapshot line, then the time part on a 2-space-indented line.
    assert re.match(r"^((?:vm|base)*\S*)\s+([\w-]+)\s+(\w+)\s+(\d+)", out[2])
    assert re.match(r"^\s{2}(\d\d)?:(\d\d:)", out[3])


def test_snapshot_details(timed: Any) -> None:
    timed.ok("volume create v1 1G")
    timed.ok('volume select v1 snapshot create-now description "before upgrade"')
    out = timed.ok("volume select v1 snapshot select v1-2024-01-02-03:04:05.1 show")
    assert out[0] == "______________________________ Snapshot Information _______________________________"
    assert len(out[0]) == 83
    values = timed.values("volume select v1 snapshot select v1-2024-01-02-03:04:05.1 show")
    assert values["Name"] == "v1-2024-01-02-03:04:05.1"
    assert values["Size"] == "1GB"
    assert values["TimeStamp"] == "2024-01-02 03:04:05"
    assert values["Status"] == values["DesiredStatus"] == "offline"  # created offline
    assert values["Permission"] == "read-write"
    assert values["Connections"] == "0"
    assert re.fullmatch(
        r"iqn\.2001-05\.com\.equallogic:0-8a0906-[0-9a-f]{9}-[0-9a-f]{16}-v1-2024-01-02-03:04:05\.1",
        values["iSCSI Name"],
    )
    volume_iqn = timed.values("volume select v1 show")["iSCSI Name"]
    assert values["iSCSI Name"] != volume_iqn
    assert values["Description"] == "before upgrade"
    assert values["Volume"] == "v1"
    assert timed.ok("volume select v1 snapshot show v1-2024-01-02-03:04:05.1") == out


def test_snapshot_online_offline_permission_description_rename(timed: Any) -> None:
    timed.ok("volume create v1 1G")
    timed.ok("volume select v1 snapshot create-now")
    timed.quiet("volume select v1 snapshot rename v1-2024-01-02-03:04:05.1 s1")
    base = "volume select v1 snapshot select s1"
    timed.quiet(f"{base} online")
    timed.quiet(f"{base} read-only")
    timed.quiet(f'{base} description "nightly backup"')
    values = timed.values(f"{base} show")
    assert (values["Status"], values["Permission"], values["Description"]) == ("online", "read-only", "nightly backup")
    assert timed.rows("volume select v1 snapshot show") == [["s1", "read-only", "online", "0"]]
    timed.quiet(f"{base} offline")
    timed.quiet(f"{base} read-write")
    assert timed.rows("volume select v1 snapshot show") == [["s1", "read-write", "offline", "0"]]
    timed.quiet(f"{base} rename s2")
    assert timed.rows("volume select v1 snapshot show") == [["s2", "read-write", "offline", "0"]]
    assert "does not exist" in timed.error(f"{base} show")
    # The target name stays the one given at creation.
    assert timed.values("volume select v1 snapshot select s2 show")["iSCSI Name"].endswith("-v1-2024-01-02-03:04:05.1")


def test_snapshot_clone(timed: Any) -> None:
    timed.ok("volume create v1 1G thin-provision")
    timed.ok("volume select v1 snapshot create-now")
    timed.quiet("volume select v1 size 2G no-snap")
    out = timed.ok("volume select v1 snapshot select v1-2024-01-02-03:04:05.1 clone c1")
    assert out[0] == "Volume creation succeeded."
    assert re.fullmatch(r"iSCSI target name is iqn\..*-c1\.", out[1])
    timed.ok('volume select v1 snapshot select v1-2024-01-02-03:04:05.1 clone c2 description "from a snapshot"')
    c1 = timed.values("volume select c1 show")
    assert c1["Size"] == "1GB"  # the snapshot's size, not the volume's current size
    assert c1["Thin-Provision"] == "enabled"
    assert c1["Status"] == "online"
    assert c1["Pool"] == "default"
    assert timed.values("volume select c2 show")["Description"] == "from a snapshot"
    assert timed.values("volume select v1 show")["Snapshots"] == "1"


def test_restore_needs_offline_and_leaves_an_automatic_snapshot(timed: Any) -> None:
    timed.ok("volume create v1 1G")
    timed.ok("volume select v1 snapshot create-now")
    timed.quiet("volume select v1 snapshot rename v1-2024-01-02-03:04:05.1 before")
    timed.quiet("volume select v1 size 2G no-snap")
    restore = "volume select v1 snapshot select before restore"
    # Volume online: refused.
    assert "offline" in timed.error(restore)
    timed.quiet("volume select v1 offline")
    # Snapshot online: refused too.
    timed.quiet("volume select v1 snapshot select before online")
    assert "offline" in timed.error(restore)
    timed.quiet("volume select v1 snapshot select before offline")
    assert timed.run(restore) == ["Snapshot v1-2024-01-02-03:04:05.2 of the data before the restore was created."]
    assert timed.values("volume select v1 show")["Size"] == "1GB"
    snaps = timed.rows("volume select v1 snapshot show")
    assert [row[0] for row in snaps] == ["before", "v1-2024-01-02-03:04:05.2"]
    # The automatic snapshot holds the data as it was before the restore.
    assert timed.values("volume select v1 snapshot select v1-2024-01-02-03:04:05.2 show")["Size"] == "2GB"


def test_snapshot_delete(timed: Any) -> None:
    timed.ok("volume create v1 1G")
    timed.ok("volume select v1 snapshot create-now")
    timed.ok("volume select v1 snapshot create-now")
    assert timed.run("volume select v1 snapshot delete v1-2024-01-02-03:04:05.1") == ["Snapshot deletion succeeded."]
    assert [row[0] for row in timed.rows("volume select v1 snapshot show")] == ["v1-2024-01-02-03:04:05.2"]
    assert timed.values("pool select default show")["TotalSnapshots"] == "1"
    assert "does not exist" in timed.error("volume select v1 snapshot delete v1-2024-01-02-03:04:05.1")
