"""``... clone <new> [options]`` for volumes and snapshots, and the reply to any volume creation.

The reply is what clients parse (research/ps-cli.md 1.6): the Cinder driver
takes the IQN from ``iSCSI target name is <IQN>.`` after dropping the period.
``CLONE`` is one node, under ``volume select V`` and ``volume select V snapshot
select S`` alike: with a ``snapshot`` among its arguments it clones that snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim import Volume

from ..grammar import Arg, Node, Option
from .options import PERCENT_SETTINGS, percent

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["CLONE", "creation_lines", "percent_options"]

#: ``Volume`` fields a clone takes from its options (``clone_volume``'s keywords).
_FIELDS = ("description", "online", "read_only", "thin", *PERCENT_SETTINGS.values())


def creation_lines(new: Volume) -> list[str]:
    return ["Volume creation succeeded.", f"iSCSI target name is {new.iqn}."]


def percent_options() -> tuple[Option, ...]:
    """The percentage settings as options (``snap-reserve 50%``), each given as its ``Volume`` field."""
    return tuple(Option(word, f"{word} (N%)", field, Arg(field, word, percent(word)))
                 for word, field in PERCENT_SETTINGS.items())  # fmt: skip


def _clone(session: Session, args: dict[str, Any]) -> list[str]:
    """The new volume gets an access record for any initiator with ``unrestricted`` (as ``volume create`` does)."""
    group, new_name = session.group, args["new_volume"]
    group.volume(args["volume"])  # what is cloned must exist: that is said before anything about the new name
    if "snapshot" in args:
        group.snapshot(args["volume"], args["snapshot"])
    options = {key: args[key] for key in _FIELDS if key in args}
    new = group.clone_volume(args["volume"], new_name, snapshot=args.get("snapshot"), **options)
    if args.get("unrestricted"):
        group.create_access(new_name, ipaddress="*.*.*.*")
    return creation_lines(new)


#: Clone options real clients send (research/ps-cli.md 2.2: Cinder, OpenNebula, Eucalyptus, eqlscript),
#: and the percentage settings ``volume create`` takes.
CLONE = Node("clone", "copy it to a new volume", args=(Arg("new_volume", "new volume name"),), options=(
    Option("description", "the new volume's description", "description", Arg("description", "description")),
    Option("online", "the new volume online (the default)", "online", const=True),
    Option("offline", "the new volume offline", "online", const=False),
    Option("read-only", "the new volume read-only", "read_only", const=True),
    Option("read-write", "the new volume read-write", "read_only", const=False),
    Option("unrestricted", "an access record for any initiator", "unrestricted"),
    Option("thin-provision", "the new volume thin", "thin"),
    *percent_options(),
), run=_clone)  # fmt: skip
