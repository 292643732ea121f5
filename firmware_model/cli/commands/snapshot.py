"""``volume select <v> snapshot ...``: create-now, delete, rename, show, select.

``create-now`` answers ``Snapshot creation succeeded.`` then ``Snapshot name
is <name>`` with no final period: Cinder passes the rest of that line verbatim
to ``snapshot rename`` (research/ps-cli.md 1.6). A snapshot named on the line
must exist before anything is asked (``delete``, ``restore`` ask first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim import Snapshot
from array_sim.units import format_size

from ..formatting import key_values, table, title
from ..grammar import Arg, Node, Option
from .clone import CLONE

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE"]


def _create_now(session: Session, args: dict[str, Any]) -> list[str]:
    taken = session.group.create_snapshot(args["volume"], description=args.get("description", ""))
    return ["Snapshot creation succeeded.", f"Snapshot name is {taken.name}"]


def _ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
    group, volume, name = session.group, args["volume"], args["snapshot"]
    group.snapshot(volume, name)

    def delete() -> list[str]:
        group.delete_snapshot(volume, name)
        return ["Snapshot deletion succeeded."]

    return session.confirm(f"Do you really want to delete the snapshot {name}?", delete)


def _rename(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.rename_snapshot(args["volume"], args["snapshot"], args["new_name"])
    return []


def _show(session: Session, args: dict[str, Any]) -> list[str]:
    group = session.group
    vol = group.volume(args["volume"])
    if "snapshot" in args:
        return _details(session, group.snapshot(vol.name, args["snapshot"]))
    rows = [
        (
            s.name,
            "read-only" if s.read_only else "read-write",
            "online" if s.online else "offline",
            str(len(session.live.connections(vol, s))),
        )
        for s in group.snapshots_of(vol)
    ]
    return table([("Name", 25), ("Permission", 10), ("Status", 7), ("Connections", 11)], rows)


def _details(session: Session, snap: Snapshot) -> list[str]:
    vol = session.group.volumes[snap.volume_id]
    status = "online" if snap.online else "offline"
    pairs = [
        ("Name", snap.name),
        ("Size", format_size(snap.size_bytes)),
        ("TimeStamp", snap.created.replace("T", " ")),
        ("Status", status),
        ("Permission", "read-only" if snap.read_only else "read-write"),
        ("DesiredStatus", status),
        ("Connections", str(len(session.live.connections(vol, snap)))),
        ("iSCSI Name", snap.iqn),
        ("Description", snap.description),
        ("Volume", vol.name),
    ]
    snapcol = session.group.snapshot_collection_of(snap)
    if snapcol is not None:  # one snapshot of a snapshot collection (commands/collection.py)
        pairs.append(("SnapshotCollection", snapcol.name))
    return [title("Snapshot Information"), *key_values(pairs, session.setting("formatoutput"))]


def _set(session: Session, args: dict[str, Any]) -> list[str]:
    """``online``/``offline``, ``read-only``/``read-write``, ``description D`` of the selected snapshot."""
    group, volume, name = session.group, args["volume"], args["snapshot"]
    group.snapshot(volume, name)
    if "online" in args:
        group.set_snapshot_online(volume, name, args["online"])
    elif "read_only" in args:
        group.set_snapshot_read_only(volume, name, args["read_only"])
    else:
        group.set_snapshot_description(volume, name, args["description"])
    return []


def _ask_restore(session: Session, args: dict[str, Any]) -> list[str]:
    group, volume, name = session.group, args["volume"], args["snapshot"]
    group.snapshot(volume, name)
    group.check_restore_volume(volume, name)

    def restore() -> list[str]:
        saved = group.restore_volume(volume, name)
        return [f"Snapshot {saved.name} of the data before the restore was created."]  # wording inferred

    return session.confirm(f"Do you really want to restore the volume {volume} from snapshot {name}?", restore)


def _names(session: Session, args: dict[str, Any]) -> list[str]:
    group = session.group
    return [s.name for s in group.snapshots_of(group.volume(args["volume"]))]


_SNAPSHOT = Arg("snapshot", "snapshot name", choices=_names)
_NEW_NAME = Arg("new_name", "new snapshot name")

NODE = Node("snapshot", "its snapshots", children=(
    Node("create-now", "take a snapshot now",
         options=(Option("description", "its description", "description", Arg("description", "description")),),
         run=_create_now),
    Node("delete", "delete a snapshot", args=(_SNAPSHOT,), run=_ask_delete),
    Node("rename", "rename a snapshot", args=(_SNAPSHOT, _NEW_NAME), run=_rename),
    Node("select", "work on a snapshot", args=(_SNAPSHOT,), children=(
        Node("show", "show it", run=_show),
        Node("online", "set it online (initiators may log in to it)", run=_set, preset={"online": True}),
        Node("offline", "set it offline", run=_set, preset={"online": False}),
        Node("read-only", "make it read-only", run=_set, preset={"read_only": True}),
        Node("read-write", "make it writable", run=_set, preset={"read_only": False}),
        CLONE,
        Node("restore", "put the volume (offline) back to it; the data replaced is kept as a new snapshot",
             run=_ask_restore),
        Node("description", "set its description", args=(Arg("description", "description"),), run=_set),
        Node("rename", "rename it", args=(_NEW_NAME,), run=_rename),
    )),
    Node("show", "list the snapshots, or show one",
         args=(Arg("snapshot", "snapshot name", optional=True, choices=_names),), run=_show),
))  # fmt: skip
