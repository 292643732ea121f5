"""``volume ...``: create, delete, rename, show, and ``volume select <name> ...``.

Output lines that clients parse (research/ps-cli.md 1.5, 1.6, 2.3):
``iSCSI target name is <IQN>.`` after create and clone (Cinder strips the
final period), ``Volume deletion succeeded.``, the ``Volume Information``
block of ``Key: Value`` lines (``Size:``, ``iSCSI Name:``), and the volume
list table with names wrapped inside a 15-character column. The snapshot
reserve of a volume with snapshots cannot drop to 0% or below what they use.
``ActualMembers:`` counts the members holding the volume's data and ``Members:`` names them;
``volume select V pool P`` moves the volume online, ``Operation:`` showing its progress
(inferred syntax and fields).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim import Volume
from array_sim.records import SNAP_DEPLETION_POLICIES
from array_sim.units import PAGE_SIZE, format_size

from ..formatting import key_values, table, title
from ..words import Words
from . import access, schedule, snapshot
from .clone import clone, creation_lines
from .options import PERCENT_SETTINGS, enable_argument, percent_argument, size_argument

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["volume", "volume_details"]


def volume(session: Session, words: Words) -> list[str]:
    action = words.keyword(["create", "delete", "rename", "select", "show"])
    if action == "create":
        return _create(session, words)
    if action == "delete":
        name = words.take("volume name")
        words.end()
        session.group.check_delete_volume(name)
        return session.confirm(f"Do you really want to delete the volume {name}?", lambda: _delete(session, name))
    if action == "rename":
        old, new = words.take("volume name"), words.take("new volume name")
        words.end()
        session.group.rename_volume(old, new)
        return []
    if action == "show":
        if words.at_end():
            return _list(session)
        name = words.take("volume name")
        words.end()
        return volume_details(session, session.group.volume(name), with_access=True)
    return _select(session, words)


def _delete(session: Session, name: str) -> list[str]:
    session.group.delete_volume(name)
    return ["Volume deletion succeeded."]


def _create(session: Session, words: Words) -> list[str]:
    group = session.group
    name = words.take("volume name")
    size = size_argument(words)
    options: dict[str, Any] = {"pool": "default"}
    settings: dict[str, Any] = {}
    unrestricted = False
    keywords = [
        "pool", "thin-provision", "description", "online", "offline", "read-write", "read-only",
        "iscsi-alias", "unrestricted", "multihost-access", "snap-depletion", *PERCENT_SETTINGS,
    ]  # fmt: skip
    while not words.at_end():
        key = words.keyword(keywords, "option")
        if key == "pool":
            options["pool"] = words.take("pool name")
        elif key == "thin-provision":
            options["thin"] = True
        elif key == "description":
            options["description"] = words.take("description")
        elif key in ("online", "offline"):
            options["online"] = key == "online"
        elif key in ("read-write", "read-only"):
            options["read_only"] = key == "read-only"
        elif key == "iscsi-alias":
            settings["alias"] = words.take("iSCSI alias")
        elif key == "unrestricted":
            unrestricted = True
        elif key == "multihost-access":
            settings["multihost"] = enable_argument(words)
        elif key == "snap-depletion":
            settings["snap_depletion"] = words.keyword(SNAP_DEPLETION_POLICIES, "policy")
        else:
            settings[PERCENT_SETTINGS[key]] = percent_argument(words, key)
    new = group.create_volume(name, size, **options, **settings)
    if unrestricted:
        group.create_access(name, ipaddress="*.*.*.*")
    return creation_lines(new)


def _list(session: Session) -> list[str]:
    group = session.group
    rows = [
        (
            v.name,
            format_size(v.size_bytes),
            str(len(group.snapshots_of(v))),
            "online" if v.online else "offline",
            "read-only" if v.read_only else "read-write",
            str(len(session.live.connections(v))),
            "Y" if v.thin else "N",
        )
        for v in group.volume_list()
    ]
    columns = [
        ("Name", 15), ("Size", 10), ("Snapshots", 9), ("Status", 7),
        ("Permission", 10), ("Connections", 11), ("TP", 2),
    ]  # fmt: skip
    return table(columns, rows)


def volume_details(session: Session, vol: Volume, with_access: bool = False) -> list[str]:
    """The ``Volume Information`` block (field order of the array's ``volume select V show``)."""
    group, space = session.group, session.group.space
    snapshots = group.snapshots_of(vol)
    reserve = space.volume_reserve(vol) * PAGE_SIZE
    snap_reserve = space.snapshot_reserve(vol)
    snap_free = max(0, snap_reserve - space.snapshot_in_use(vol, snapshots))
    snap_free_pct = snap_free * 100 // snap_reserve if snap_reserve else 0
    status = "online" if vol.online else "offline"
    holders = group.members_holding(vol)
    desired = "online" if vol.online or vol.offline_reason else "offline"
    pairs = [
        ("Name", vol.name),
        ("Size", format_size(vol.size_bytes)),
        ("VolReserve", format_size(reserve)),
        ("VolReserveInUse", format_size(space.in_use(vol) * PAGE_SIZE)),
        ("ReplReserveInUse", "0MB"),
        ("iSCSI Alias", vol.alias),
        ("iSCSI Name", vol.iqn),
        ("ActualMembers", str(len(holders))),
        ("Snap-Warn", f"{vol.snap_warn}%"),
        ("Snap-Depletion", vol.snap_depletion),
        ("Description", vol.description),
        ("Snap-Reserve", f"{vol.snap_reserve}%"),
        ("Snap-Reserve-Avail", f"{snap_free_pct}% ({format_size(snap_free * PAGE_SIZE)})"),
        ("Permission", "read-only" if vol.read_only else "read-write"),
        ("DesiredStatus", desired),
        ("Status", f"offline ({vol.offline_reason})" if vol.offline_reason else status),
        ("Connections", str(len(session.live.connections(vol)))),
        ("Snapshots", str(len(snapshots))),
        ("Bind", ""),
        ("Type", "not-replicated"),
        ("ReplicationReserveSpace", "0MB"),
        ("Pool", group.pools[vol.pool_id]),
        ("MultiHostAccess", "enabled" if vol.multihost else "disabled"),
        ("Thin-Provision", "enabled" if vol.thin else "disabled"),
    ]
    if vol.thin:
        pairs += [
            ("Thin-Min-Reserve", f"{vol.thin_min_reserve}% ({format_size(space.thin_min_reserve(vol) * PAGE_SIZE)})"),
            ("Thin-Growth-Warn", f"{vol.thin_warn}%"),
            ("Thin-Growth-Max", f"{vol.thin_max}%"),
        ]
    move = group.move_of_volume(vol.id)
    pairs += [
        ("Members", ", ".join(holders)),
        ("Operation", f"move-pool {group.pools[move.pool_id]} {move.percent}%" if move else "none"),
    ]
    lines = [title("Volume Information"), *key_values(pairs, session.setting("formatoutput"))]
    if with_access:
        lines += ["", title("Access Records"), *access.access_table(group.access_records(vol.name))]
    return lines


def _select(session: Session, words: Words) -> list[str]:
    group = session.group
    name = words.take("volume name")
    vol = group.volume(name)
    if words.at_end():
        session.enter_mode(["volume", "select", name], f"volume_{name}")
        return []
    keywords = [
        "show", "offline", "online", "read-only", "read-write", "size", "multihost-access",
        "description", "clone", "access", "snapshot", "snap-depletion", "thin-provision",
        "iscsi-alias", "pool", "schedule", *PERCENT_SETTINGS,
    ]  # fmt: skip
    action = words.keyword(keywords)
    if action == "access":
        return access.access(session, words, vol)
    if action == "schedule":
        owner = schedule.volume_owner(group, name)
        return schedule.run_words(session, schedule.schedule_node(lambda session, args: owner), words)
    if action == "snapshot":
        return snapshot.snapshot(session, words, vol)
    if action == "clone":
        return clone(session, words, name)
    if action == "show":
        if words.optional_keyword(["connections"]):
            words.end()
            rows = session.live.connections(vol)
            return table([("Initiator Address", 17), ("Initiator Name", 60)], rows)
        words.end()
        return volume_details(session, vol)
    return _change(session, words, vol, action)


def _change(session: Session, words: Words, vol: Volume, action: str) -> list[str]:
    """The ``volume select <v> <setting> ...`` commands: nothing on success, but the snapshot a resize took."""
    group, name = session.group, vol.name
    if action in ("offline", "online"):
        words.end()
        group.set_volume_online(name, action == "online")
    elif action == "pool":
        pool = words.take("pool name")
        words.end()
        group.move_volume(name, pool)
    elif action in ("read-only", "read-write"):
        words.end()
        group.set_volume_read_only(name, action == "read-only")
    elif action == "size":
        size = size_argument(words)
        no_snap = words.optional_keyword(["no-snap"]) is not None
        words.end()
        taken = group.resize_volume(name, size, snapshot=not no_snap)
        if taken is not None:  # the review's A6: a backup admin wants its name (wording inferred)
            return [f"Snapshot {taken.name} was created before the size change."]
    elif action == "thin-provision":
        thin = enable_argument(words)
        words.end()
        group.set_thin(name, thin)
    else:
        value: Any
        if action == "multihost-access":
            key, value = "multihost", enable_argument(words)
        elif action == "description":
            key, value = "description", words.take("description")
        elif action == "iscsi-alias":
            key, value = "alias", words.take("iSCSI alias")
        elif action == "snap-depletion":
            key, value = "snap_depletion", words.keyword(SNAP_DEPLETION_POLICIES, "policy")
        else:
            key, value = PERCENT_SETTINGS[action], percent_argument(words, action)
        words.end()
        if key == "snap_reserve":
            group.check_snapshot_reserve(name, value)
        group.configure_volume(name, **{key: value})
    return []
