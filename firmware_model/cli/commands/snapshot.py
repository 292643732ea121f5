"""``volume select <v> snapshot ...``: create-now, delete, rename, show, select.

``create-now`` answers ``Snapshot creation succeeded.`` then ``Snapshot name
is <name>`` with no final period: Cinder passes the rest of that line verbatim
to ``snapshot rename`` (research/ps-cli.md 1.6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from array_sim import Snapshot, Volume
from array_sim.units import format_size

from ..formatting import key_values, table, title
from ..words import Words
from .clone import clone

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["snapshot"]


def snapshot(session: Session, words: Words, vol: Volume) -> list[str]:
    group = session.group
    action = words.keyword(["create-now", "delete", "rename", "select", "show"])
    if action == "create-now":
        description = ""
        if words.optional_keyword(["description"]):
            description = words.take("description")
        words.end()
        taken = group.create_snapshot(vol.name, description=description)
        return ["Snapshot creation succeeded.", f"Snapshot name is {taken.name}"]
    if action == "delete":
        name = words.take("snapshot name")
        words.end()
        group.snapshot(vol.name, name)
        return session.confirm(
            f"Do you really want to delete the snapshot {name}?", lambda: _delete(session, vol, name)
        )
    if action == "rename":
        old, new = words.take("snapshot name"), words.take("new snapshot name")
        words.end()
        group.rename_snapshot(vol.name, old, new)
        return []
    if action == "show":
        if words.at_end():
            return _list(session, vol)
        name = words.take("snapshot name")
        words.end()
        return _details(session, vol, group.snapshot(vol.name, name))
    return _select(session, words, vol)


def _delete(session: Session, vol: Volume, name: str) -> list[str]:
    session.group.delete_snapshot(vol.name, name)
    return ["Snapshot deletion succeeded."]


def _list(session: Session, vol: Volume) -> list[str]:
    rows = [
        (
            s.name,
            "read-only" if s.read_only else "read-write",
            "online" if s.online else "offline",
            str(len(session.live.connections(vol, s))),
        )
        for s in session.group.snapshots_of(vol)
    ]
    return table([("Name", 25), ("Permission", 10), ("Status", 7), ("Connections", 11)], rows)


def _details(session: Session, vol: Volume, snap: Snapshot) -> list[str]:
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


def _select(session: Session, words: Words, vol: Volume) -> list[str]:
    group = session.group
    name = words.take("snapshot name")
    snap = group.snapshot(vol.name, name)
    action = words.keyword(
        ["show", "online", "offline", "read-only", "read-write", "clone", "restore", "description", "rename"]
    )
    if action == "show":
        words.end()
        return _details(session, vol, snap)
    if action == "clone":
        return clone(session, words, vol.name, snapshot=name)
    if action == "description":
        text = words.take("description")
        words.end()
        group.set_snapshot_description(vol.name, name, text)
    elif action == "rename":
        new = words.take("new snapshot name")
        words.end()
        group.rename_snapshot(vol.name, name, new)
    elif action == "restore":
        words.end()
        group.check_restore_volume(vol.name, name)
        return session.confirm(
            f"Do you really want to restore the volume {vol.name} from snapshot {name}?",
            lambda: _restore(session, vol, name),
        )
    else:
        words.end()
        if action in ("online", "offline"):
            group.set_snapshot_online(vol.name, name, action == "online")
        else:
            group.set_snapshot_read_only(vol.name, name, action == "read-only")
    return []


def _restore(session: Session, vol: Volume, name: str) -> list[str]:
    saved = session.group.restore_volume(vol.name, name)
    return [f"Snapshot {saved.name} of the data before the restore was created."]  # wording inferred
