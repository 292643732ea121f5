"""``member``: the arrays of the group, their RAID policy, RAID status and disks.

The field names follow EQLMEMBER-MIB (eqlMemberRaidStatus, eqlMemberRaidPercentage,
eqlMemberLostRaidBlocks, eqlMemberNumberOfSpares, eqlDiskStatus), because the
layout of the array's own ``member select M show`` is not public
(research/next-capabilities.md 1.2): the names are confirmed, the layout is
inferred. ``member select M raid-policy P`` is the array's command that
initialises a new member's RAID set (keywords from eqlDriveGroupRAIDPolicy).
``member select M delete`` (vacate, then leave the group), ``member select M pool P`` and
``member select M cancel-operation`` are the array's operations (the MIB's vacate and movePool);
their syntax is inferred. ``Operation:`` shows the one under way with its percent complete.
The ``Ethernet Ports`` table after the key/value block lists the member's ports (the addresses
the group IP redirects initiators to), up or down, with their iSCSI sessions (inferred layout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_sim.member_admin import MemberReport
from array_sim.raid.policy import POLICIES
from array_sim.units import PAGE_SIZE, format_size

from ..formatting import key_values, table, title
from ..grammar import Arg, Node, Option, choice

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["NODE", "members_table", "member_names"]


def _raid_status(report: MemberReport) -> str:
    health = report.health
    if health.raid_status in ("reconstructing", "verifying"):
        return f"{health.raid_status} {health.percentage}%"
    return health.raid_status


def members_table(session: Session) -> list[str]:
    """``member show`` and ``show member``."""
    group = session.group
    rows = [
        (
            r.name,
            r.state,
            _raid_status(r),
            str(r.disks),
            format_size(r.capacity_pages * PAGE_SIZE),
            format_size(r.free_pages * PAGE_SIZE),
            r.pool,
        )
        for r in group.member_admin.reports()
    ]
    columns = [
        ("Name", 15), ("Status", 8), ("RaidStatus", 18), ("Disks", 5), ("Capacity", 10), ("FreeSpace", 10),
        ("Pool", 8),
    ]  # fmt: skip
    return table(columns, rows)


def _configure(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.configure_member(args["member"], args["policy"])
    return []


def _ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
    name = args["member"]
    session.group.member_admin.report(name)
    return session.confirm(
        f"Do you really want to delete the member {name}? Its data moves to the other members of its pool first.",
        lambda: _delete(session, name),
    )


def _move(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.move_member(args["member"], args["pool"])
    return []


def _cancel(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.cancel_member_operation(args["member"])
    return []


def _show(session: Session, args: dict[str, Any]) -> list[str]:
    group, name = session.group, args["member"]
    report = group.member_admin.report(name)
    if args.get("disks"):
        return _disks(session, name)
    health = report.health
    pairs = [
        ("Name", report.name),
        ("Status", report.state),
        ("Pool", report.pool),
        ("RaidPolicy", report.raid_policy),
        ("RaidStatus", health.raid_status),
        ("RaidPercentage", f"{health.percentage}%"),
        ("LostRaidBlocks", "true" if health.lost_blocks else "false"),
        ("Spares", str(health.spares)),
        ("Disks", str(report.disks)),
        ("DiskSize", format_size(report.disk_size)),
        ("TotalSpace", format_size(report.capacity_pages * PAGE_SIZE)),
        ("UsedSpace", format_size((report.capacity_pages - report.free_pages) * PAGE_SIZE)),
        ("FreeSpace", format_size(report.free_pages * PAGE_SIZE)),
        ("Operation", _operation(session, name)),
    ]
    ports = [
        (f"eth{p.eth}", session.live.port_address(p.address), "up" if p.up else "down",
         str(session.live.port_sessions(p.address)))  # fmt: skip
        for p in group.member_ports(name)
    ]
    return [
        title("Member Information"),
        *key_values(pairs, session.setting("formatoutput")),
        title("Ethernet Ports"),
        *table([("Name", 5), ("IPAddress", 15), ("Status", 6), ("Sessions", 8)], ports),
    ]


def _delete(session: Session, name: str) -> list[str]:
    session.group.delete_member(name)
    if any(r.name == name for r in session.group.member_admin.reports()):
        return ["Member deletion started; the member leaves the group once its data has moved."]
    return ["Member deletion succeeded."]


def _operation(session: Session, name: str) -> str:
    """``none``, or the move under way: ``vacate 40%`` or ``move-pool P 40%``."""
    group = session.group
    move = group.move_of_member(group.member_admin.member_id(name))
    if move is None:
        return "none"
    if move.kind == "member-pool":
        return f"move-pool {group.pools[move.pool_id]} {move.percent}%"
    return f"vacate {move.percent}%"


def _disks(session: Session, name: str) -> list[str]:
    rows = []
    for disk in session.group.member_admin.raid(name).disks():
        status = disk.status
        if disk.reconstructing is not None:
            status = f"{status} (reconstructing {disk.reconstructing}%)"
        rows.append((str(disk.slot), status, format_size(disk.size), str(disk.errors), disk.role or "-"))
    return table([("Slot", 4), ("Status", 30), ("Size", 10), ("Errors", 6), ("Role", 20)], rows)


def member_names(session: Session, args: dict[str, Any]) -> list[str]:
    return [r.name for r in session.group.member_admin.reports()]


_MEMBER = Arg("member", "member name", choices=member_names)

NODE = Node("member", "the group's arrays", children=(
    Node("select", "work on a member", args=(_MEMBER,), children=(
        Node("show", "show it, or its disks", options=(Option("disks", "its disks", "disks"),), run=_show),
        Node("raid-policy", "initialise its RAID set",
             args=(Arg("policy", "RAID policy", choice(list(POLICIES), "RAID policy")),), run=_configure),
        Node("delete", "vacate it (its data moves to its pool's other members), then it leaves the group",
             run=_ask_delete),
        Node("pool", "move it, with its data moved off first, to another pool", args=(Arg("pool", "pool name"),),
             run=_move),
        Node("cancel-operation", "stop its vacate or pool move where it is", run=_cancel),
    )),
    Node("show", "list the members", run=lambda session, args: members_table(session)),
))  # fmt: skip
