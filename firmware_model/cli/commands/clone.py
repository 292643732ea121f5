"""``... clone <new> [options]`` for volumes and snapshots, and the reply to any volume creation.

The reply is what clients parse (research/ps-cli.md 1.6): the Cinder driver
takes the IQN from ``iSCSI target name is <IQN>.`` after dropping the period.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim import Volume

from ..words import Words
from .options import PERCENT_SETTINGS, percent_argument

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["clone", "creation_lines"]


def creation_lines(new: Volume) -> list[str]:
    return ["Volume creation succeeded.", f"iSCSI target name is {new.iqn}."]


#: Clone options real clients send (research/ps-cli.md 2.2: Cinder, OpenNebula, Eucalyptus, eqlscript),
#: and the percentage settings ``volume create`` takes.
_KEYWORDS = ["description", "online", "offline", "read-only", "read-write", "unrestricted", "thin-provision",
             *PERCENT_SETTINGS]  # fmt: skip


def clone(session: Session, words: Words, volume: str, snapshot: str | None = None) -> list[str]:
    """``clone NEW [description D] [online|offline] [read-only|read-write] [unrestricted] [thin-provision]
    [snap-reserve N%] ...``: the new volume gets an access record for any initiator with ``unrestricted``
    (as ``volume create`` does)."""
    new_name = words.take("new volume name")
    options: dict[str, Any] = {}
    unrestricted = False
    while not words.at_end():
        key = words.keyword(_KEYWORDS, "option")
        if key == "description":
            options["description"] = words.take("description")
        elif key in ("online", "offline"):
            options["online"] = key == "online"
        elif key in ("read-only", "read-write"):
            options["read_only"] = key == "read-only"
        elif key == "unrestricted":
            unrestricted = True
        elif key == "thin-provision":
            options["thin"] = True
        else:
            options[PERCENT_SETTINGS[key]] = percent_argument(words, key)
    group = session.group
    new = group.clone_volume(volume, new_name, snapshot=snapshot, **options)
    if unrestricted:
        group.create_access(new_name, ipaddress="*.*.*.*")
    return creation_lines(new)
