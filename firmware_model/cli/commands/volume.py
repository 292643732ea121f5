"""``volume ...``: create, delete, rename, show, and ``volume select <name> ...``.

Output lines that clients parse (research/ps-cli.md 1.5, 1.6, 2.3):
``iSCSI target name is <IQN>.`` after create and clone (Cinder strips the
final period), ``Volume deletion succeeded.``, the ``Volume Information``
block of ``Key: Value`` lines (``Size:``, ``iSCSI Name:``), and the volume
list table with names wrapped inside a 15-character column. The snapshot
reserve of a volume with snapshots cannot drop to 0% or below what they use.
``ActualMembers:`` counts the members holding the volume's data and ``Members:`` names them;
``volume select V pool P`` moves the volume online, ``Operation:`` showing its progress
(inferred syntax and fields). ``volume select V`` alone enters the volume's sub-mode
(``group-0(volume_V)>``), where the same words follow without the prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim import Volume
from array_sim.records import SNAP_DEPLETION_POLICIES
from array_sim.units import PAGE_SIZE, format_size

from ..formatting import key_values, table, title
from ..grammar import Arg, Node, Option, choice_arg
from . import access, snapshot
from .clone import CLONE, creation_lines, percent_options
from .options import PERCENT_SETTINGS, enable_arg, percent, size_value
from .schedule import schedule_node, volume_owner

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE", "volume_details", "show_volumes", "volume_names"]

#: ``volume create`` options given to ``create_volume`` as they are (the rest: ``pool``, ``unrestricted``).
_CREATE_FIELDS = ("thin", "description", "online", "read_only", "alias", "multihost", "snap_depletion",
                  *PERCENT_SETTINGS.values())  # fmt: skip


def _create(session: Session, args: dict[str, Any]) -> list[str]:
    group, name = session.group, args["volume"]
    options = {key: args[key] for key in _CREATE_FIELDS if key in args}
    new = group.create_volume(name, args["size"], pool=args.get("pool", "default"), **options)
    if args.get("unrestricted"):
        group.create_access(name, ipaddress="*.*.*.*")
    return creation_lines(new)


def _ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
    group, name = session.group, args["volume"]
    group.check_delete_volume(name)

    def delete() -> list[str]:
        group.delete_volume(name)
        return ["Volume deletion succeeded."]

    return session.confirm(f"Do you really want to delete the volume {name}?", delete)


def _rename(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.rename_volume(args["volume"], args["new_name"])
    return []


def show_volumes(session: Session, args: dict[str, Any]) -> list[str]:
    """``volume show [V]`` and ``show volume [V]``: the list, or one volume with its access records."""
    if "volume" not in args:
        return _list(session)
    return volume_details(session, session.group.volume(args["volume"]), with_access=True)


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


def _show(session: Session, args: dict[str, Any]) -> list[str]:
    vol = session.group.volume(args["volume"])
    if args.get("connections"):
        return table([("Initiator Address", 17), ("Initiator Name", 60)], session.live.connections(vol))
    return volume_details(session, vol)


def _set(session: Session, args: dict[str, Any]) -> list[str]:
    """The ``volume select <v> <setting> ...`` commands: nothing on success, but the snapshot a resize took."""
    group, name, setting = session.group, args["volume"], args["setting"]
    group.volume(name)
    if setting == "online":
        group.set_volume_online(name, args["online"])
    elif setting == "pool":
        group.move_volume(name, args["pool"])
    elif setting == "read_only":
        group.set_volume_read_only(name, args["read_only"])
    elif setting == "size":
        taken = group.resize_volume(name, args["size"], snapshot=not args.get("no_snap"))
        if taken is not None:  # the review's A6: a backup admin wants its name (wording inferred)
            return [f"Snapshot {taken.name} was created before the size change."]
    elif setting == "thin":
        group.set_thin(name, args["thin"])
    else:
        if setting == "snap_reserve":
            group.check_snapshot_reserve(name, args[setting])
        group.configure_volume(name, **{setting: args[setting]})
    return []


def _mode(session: Session, args: dict[str, Any]) -> str:
    session.group.volume(args["volume"])
    return f"volume_{args['volume']}"


def volume_names(session: Session, args: dict[str, Any]) -> list[str]:
    return [v.name for v in session.group.volume_list()]


def _pool_names(session: Session, args: dict[str, Any]) -> list[str]:
    return list(session.group.pools.values())


def _setting(word: str, help: str, value: Arg) -> Node:
    """``volume select V <word> <value>``: the value is given to ``_set`` as ``args[value.name]``."""
    return Node(word, help, args=(value,), run=_set, preset={"setting": value.name})


_VOLUME = Arg("volume", "volume name", choices=volume_names)
_POLICY = choice_arg("snap_depletion", "policy", SNAP_DEPLETION_POLICIES, "policy")

NODE = Node("volume", "volumes, their snapshots, access records and schedules", children=(
    Node("create", "create a volume", args=(Arg("volume", "volume name"), Arg("size", "size", size_value)), options=(
        Option("pool", "the pool it is in (default: default)", "pool", Arg("pool", "pool name", choices=_pool_names)),
        Option("thin-provision", "allocate its space as it is written", "thin"),
        Option("description", "its description", "description", Arg("description", "description")),
        Option("online", "online (the default)", "online", const=True),
        Option("offline", "offline", "online", const=False),
        Option("read-write", "writable (the default)", "read_only", const=False),
        Option("read-only", "read-only", "read_only", const=True),
        Option("iscsi-alias", "its iSCSI alias", "alias", Arg("alias", "iSCSI alias")),
        Option("unrestricted", "an access record for any initiator", "unrestricted"),
        Option("multihost-access", "may several initiators be logged in at once", "multihost", enable_arg("multihost")),
        Option("snap-depletion", "what happens when the snapshot reserve is used up", "snap_depletion", _POLICY),
        *percent_options(),
    ), run=_create),
    Node("delete", "delete an offline volume and its snapshots", args=(_VOLUME,), run=_ask_delete),
    Node("rename", "rename a volume", args=(_VOLUME, Arg("new_name", "new volume name")), run=_rename),
    Node("select", "work on a volume", args=(_VOLUME,), mode=_mode, children=(
        Node("show", "show it, or the initiators connected to it",
             options=(Option("connections", "the initiators connected to it", "connections"),), run=_show),
        Node("offline", "set it offline", run=_set, preset={"setting": "online", "online": False}),
        Node("online", "set it online", run=_set, preset={"setting": "online", "online": True}),
        Node("read-only", "make it read-only", run=_set, preset={"setting": "read_only", "read_only": True}),
        Node("read-write", "make it writable", run=_set, preset={"setting": "read_only", "read_only": False}),
        Node("size", "resize it (a snapshot is taken first, unless no-snap)", args=(Arg("size", "size", size_value),),
             options=(Option("no-snap", "take no snapshot first", "no_snap"),), run=_set, preset={"setting": "size"}),
        _setting("multihost-access", "may several initiators be logged in at once", enable_arg("multihost")),
        _setting("description", "set its description", Arg("description", "description")),
        CLONE,
        access.NODE,
        snapshot.NODE,
        _setting("snap-depletion", "what happens when the snapshot reserve is used up", _POLICY),
        _setting("thin-provision", "thin or fully allocated", enable_arg("thin")),
        _setting("iscsi-alias", "set its iSCSI alias", Arg("alias", "iSCSI alias")),
        _setting("pool", "move it, online, to another pool", Arg("pool", "pool name", choices=_pool_names)),
        schedule_node(lambda session, args: volume_owner(session.group, args["volume"])),
        *(_setting(word, f"set its {word} (N%)", Arg(field, word, percent(word)))
          for word, field in PERCENT_SETTINGS.items()),
    )),
    Node("show", "list the volumes, or show one with its access records",
         args=(Arg("volume", "volume name", optional=True, choices=volume_names),), run=show_volumes),
))  # fmt: skip
