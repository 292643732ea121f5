"""``collection ...``: volume collections and their snapshot collections.

    collection create C V1 [V2 ...] [description D]     (volumes also as V1,V2)
    collection delete C | rename C NEW | show [C]
    collection select C [show | add V | delete V | description D]
    collection select C snapshot create-now [description D]
    collection select C snapshot show [S] | delete S
    collection select C snapshot select S show | online | offline | restore | delete
    collection select C schedule create | show | delete | select ...   (commands/schedule.py)

Public sources show no client using collections: the array's CLI reference names a ``collections``
noun and a ``snapcol`` command (research/ps-cli.md 2.2, "UNVERIFIED names"), not their syntax. The
words above follow ``volume select V snapshot ...``; the replies, layouts and questions are inferred.
``create-now`` answers like a volume's (``... creation succeeded.``, then ``Snapshot collection name is
<name>`` with no final period), then one ``Snapshot of volume V is S`` line per volume. Each snapshot
of a snapshot collection is also an ordinary snapshot of its volume (``volume select V snapshot
show``), whose ``show`` names its ``SnapshotCollection:``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim.collection_admin import SnapshotCollection, VolumeCollection
from array_sim.naming import shown
from array_sim.units import format_size

from ..formatting import key_values, table, title
from ..grammar import Arg, Node, Option
from ..words import CliError
from .schedule import collection_owner, schedule_node

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE"]

#: The word that ends the volume list of ``collection create`` (the rest of the line is volume names).
_DESCRIPTION_WORD = "description"


def _volumes_and_description(words: list[str]) -> tuple[list[str], str]:
    """``V1 V2,V3 ... [description D]``: the volume names, and the description ('' if none)."""
    names, description = [], ""
    for i, word in enumerate(words):
        if word.lower() == _DESCRIPTION_WORD:
            if i + 1 >= len(words):
                raise CliError("Missing description.")
            if i + 2 < len(words):
                raise CliError(f"Unexpected argument '{shown(words[i + 2])}'.")
            description = words[i + 1]
            break
        names += [name for name in word.split(",") if name]
    if not names:
        raise CliError("Missing volume name.")
    return names, description


def _create(session: Session, args: dict[str, Any]) -> list[str]:
    volumes, description = _volumes_and_description(args["volumes"])
    session.group.create_collection(args["collection"], volumes, description)
    return ["Collection creation succeeded."]


def _ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
    name = args["collection"]
    session.group.collection(name)

    def delete() -> list[str]:
        session.group.delete_collection(name)
        return ["Collection deletion succeeded."]

    return session.confirm(
        f"Do you really want to delete the collection {name}? Its volumes and their snapshots stay.", delete
    )


def _rename(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.rename_collection(args["collection"], args["new_name"])
    return []


def _show(session: Session, args: dict[str, Any]) -> list[str]:
    group = session.group
    if "collection" not in args:
        rows = [
            (c.name, str(len(c.volume_ids)), str(len(group.snapshot_collections(c.name))), c.description)
            for c in group.collections()
        ]
        return table([("Name", 20), ("Volumes", 7), ("SnapCols", 8), ("Description", 40)], rows)
    return _details(session, group.collection(args["collection"]))


def _details(session: Session, collection: VolumeCollection) -> list[str]:
    group = session.group
    volumes = group.collection_volumes(collection)
    pairs = [
        ("Name", collection.name),
        ("Description", collection.description),
        ("Volumes", str(len(volumes))),
        ("SnapshotCollections", str(len(group.snapshot_collections(collection.name)))),
    ]
    rows = [
        (v.name, format_size(v.size_bytes), "online" if v.online else "offline", str(len(group.snapshots_of(v))))
        for v in volumes
    ]
    return [
        title("Collection Information"),
        *key_values(pairs, session.setting("formatoutput")),
        "",
        title("Volumes"),
        *table([("Name", 20), ("Size", 10), ("Status", 7), ("Snapshots", 9)], rows),
    ]


def _add(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.add_to_collection(args["collection"], args["volume"])
    return []


def _remove(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.remove_from_collection(args["collection"], args["volume"])
    return []


def _describe(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.set_collection_description(args["collection"], args["description"])
    return []


def _mode(session: Session, args: dict[str, Any]) -> str:
    return f"collection_{session.group.collection(args['collection']).name}"


# ----------------------------------------------------------------- snapshot collections


def _create_now(session: Session, args: dict[str, Any]) -> list[str]:
    group = session.group
    taken = group.create_snapshot_collection(args["collection"], description=args.get("description", ""))
    lines = ["Snapshot collection creation succeeded.", f"Snapshot collection name is {taken.name}"]
    for snap in group.snapcol_snapshots(taken):
        lines.append(f"Snapshot of volume {group.volumes[snap.volume_id].name} is {snap.name}")
    return lines


def _status(session: Session, snapcol: SnapshotCollection) -> str:
    online = {s.online for s in session.group.snapcol_snapshots(snapcol)}
    return "mixed" if len(online) > 1 else "online" if online == {True} else "offline"


def _held(snapcol: SnapshotCollection) -> str:
    """``2``, or ``1 of 2`` once some of its snapshots were deleted."""
    left = len(snapcol.snapshot_ids)
    return str(left) if snapcol.complete else f"{left} of {snapcol.made_with}"


def _snapshot_show(session: Session, args: dict[str, Any]) -> list[str]:
    group = session.group
    if "snapcol" in args:
        return _snapcol_details(session, group.snapshot_collection(args["collection"], args["snapcol"]))
    rows = [
        (s.name, _held(s), _status(session, s), s.created.replace("T", " "))
        for s in group.snapshot_collections(args["collection"])
    ]
    return table([("Name", 30), ("Snapshots", 9), ("Status", 7), ("TimeStamp", 19)], rows)


def _snapcol_details(session: Session, snapcol: SnapshotCollection) -> list[str]:
    group = session.group
    complete = "complete" if snapcol.complete else f"incomplete ({_held(snapcol)} snapshots left)"
    pairs = [
        ("Name", snapcol.name),
        ("Collection", group.collection_with_id(snapcol.collection_id).name),
        ("TimeStamp", snapcol.created.replace("T", " ")),
        ("Description", snapcol.description),
        ("Status", _status(session, snapcol)),
        ("Snapshots", complete),
    ]
    rows = [
        (group.volumes[s.volume_id].name, s.name, "online" if s.online else "offline",
         str(len(session.live.connections(group.volumes[s.volume_id], s))))
        for s in group.snapcol_snapshots(snapcol)
    ]  # fmt: skip
    return [
        title("Snapshot Collection Information"),
        *key_values(pairs, session.setting("formatoutput")),
        "",
        *table([("Volume", 20), ("Snapshot", 40), ("Status", 7), ("Connections", 11)], rows),
    ]


def _snapcol_online(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.set_snapshot_collection_online(args["collection"], args["snapcol"], args["online"])
    return []


def _ask_snapcol_delete(session: Session, args: dict[str, Any]) -> list[str]:
    group, collection, name = session.group, args["collection"], args["snapcol"]
    snapcol = group.snapshot_collection(collection, name)

    def delete() -> list[str]:
        group.delete_snapshot_collection(collection, name)
        return ["Snapshot collection deletion succeeded."]

    return session.confirm(
        f"Do you really want to delete the snapshot collection {name} and its {len(snapcol.snapshot_ids)} snapshots?",
        delete,
    )


def _ask_restore(session: Session, args: dict[str, Any]) -> list[str]:
    group, collection, name = session.group, args["collection"], args["snapcol"]
    snapcol = group.check_restore_snapshot_collection(collection, name)
    volumes = ", ".join(group.volumes[s.volume_id].name for s in group.snapcol_snapshots(snapcol))

    def restore() -> list[str]:
        saved = group.restore_snapshot_collection(collection, name)
        return [f"Snapshot collection {saved.name} of the data before the restore was created."]

    return session.confirm(
        f"Do you really want to restore the volumes {volumes} from snapshot collection {name}?", restore
    )


# ---------------------------------------------------------------------------- tree


def _collection_names(session: Session, args: dict[str, Any]) -> list[str]:
    return [c.name for c in session.group.collections()]


def _volume_names(session: Session, args: dict[str, Any]) -> list[str]:
    return [v.name for v in session.group.volume_list()]


def _member_names(session: Session, args: dict[str, Any]) -> list[str]:
    group = session.group
    return [v.name for v in group.collection_volumes(group.collection(args["collection"]))]


def _snapcol_names(session: Session, args: dict[str, Any]) -> list[str]:
    return [s.name for s in session.group.snapshot_collections(args["collection"])]


_COLLECTION = Arg("collection", "collection name", choices=_collection_names)
_SNAPCOL = Arg("snapcol", "snapshot collection name", choices=_snapcol_names)
_DESCRIPTION = Arg("description", "description")

_SNAPSHOT = Node("snapshot", "its snapshot collections: one snapshot of every volume at one point in time", children=(
    Node("create-now", "take a snapshot collection now",
         options=(Option("description", "of it and its snapshots", "description", _DESCRIPTION),), run=_create_now),
    Node("delete", "delete a snapshot collection and its snapshots", args=(_SNAPCOL,), run=_ask_snapcol_delete),
    Node("select", "work on a snapshot collection", args=(_SNAPCOL,), children=(
        Node("show", "show it and its snapshots", run=_snapshot_show),
        Node("online", "set every snapshot of it online", run=_snapcol_online, preset={"online": True}),
        Node("offline", "set every snapshot of it offline", run=_snapcol_online, preset={"online": False}),
        Node("restore", "restore every volume from its snapshot (volumes and snapshots offline)",
             run=_ask_restore),
        Node("delete", "delete it and its snapshots", run=_ask_snapcol_delete),
    )),
    Node("show", "list the snapshot collections, or show one",
         args=(Arg("snapcol", "snapshot collection name", optional=True, choices=_snapcol_names),),
         run=_snapshot_show),
))  # fmt: skip

NODE = Node("collection", "volume collections and their snapshot collections", children=(
    Node("create", "create a collection of volumes (V1 V2 ... or V1,V2,...; then description D if any)",
         args=(Arg("collection", "collection name"),
               Arg("volumes", "volume names", choices=lambda s, a: [*_volume_names(s, a), _DESCRIPTION_WORD],
                   rest=True)),
         run=_create),
    Node("delete", "delete a collection (its volumes and their snapshots stay)", args=(_COLLECTION,),
         run=_ask_delete),
    Node("rename", "rename a collection", args=(_COLLECTION, Arg("new_name", "new collection name")), run=_rename),
    Node("select", "work on a collection", args=(_COLLECTION,), mode=_mode, children=(
        Node("show", "show it and its volumes", run=_show),
        Node("add", "add a volume to it", args=(Arg("volume", "volume name", choices=_volume_names),), run=_add),
        Node("delete", "take a volume out of it (the volume stays)",
             args=(Arg("volume", "volume name", choices=_member_names),), run=_remove),
        Node("description", "set its description", args=(_DESCRIPTION,), run=_describe),
        _SNAPSHOT,
        schedule_node(lambda session, args: collection_owner(session.group, args["collection"])),
    )),
    Node("show", "list the collections, or show one", args=(Arg("collection", "collection name", optional=True,
                                                                choices=_collection_names),), run=_show),
))  # fmt: skip
