"""Group-wide commands: ``pool``, ``grpparams``, ``cli-settings``, ``stty``, ``show``,
``whoami``, ``logout``.

``pool select <p> show`` must print ``TotalCapacity:``, ``FreeSpace:``,
``VolumeReportedSpace:`` and ``TotalVolumes:`` (the Cinder driver's stats,
each required) in its key/value block; the pool's members and volumes follow
as tables after it, where the driver's parser no longer looks. ``pool delete``
asks first, like ``volume delete``; ``pool merge P Q`` (inferred syntax) moves P's members and
volumes into Q and deletes P. ``grpparams show`` must print ``Group-Ipaddress:`` (the portal
Cinder hands to initiators). Sizes use only MB, GB and TB.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from array_sim.access_admin import CLI_SETTINGS
from array_sim.records import SNAP_DEPLETION_POLICIES
from array_sim.units import PAGE_SIZE, format_size

from ..formatting import key_values, table, title
from ..grammar import Arg, Node, Option, choice
from ..words import CliError
from . import volume as volume_commands
from .chapuser import users_table
from .member import members_table
from .options import percent_value, whole_number_value

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["POOL", "GRPPARAMS", "CLI_SETTINGS_NODE", "STTY", "SHOW", "WHOAMI", "LOGOUT", "EXIT"]

_IPV4 = re.compile(r"^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$")


def _pool_figures(session: Session, pool_id: int) -> dict[str, int]:
    group = session.group
    volumes = group.pool_volumes(pool_id)
    space = group.space
    return {
        "capacity": group.placement.pool_capacity(pool_id),
        "free": group.pool_free(pool_id),
        "volume_reserve": sum(space.volume_reserve(v) for v in volumes),
        "snapshot_reserve": sum(space.snapshot_reserve(v) for v in volumes),
        "reported": sum(v.pages for v in volumes),
        "volumes": len(volumes),
        "snapshots": sum(len(group.snapshots_of(v)) for v in volumes),
        "members": sum(1 for m in group.placement.members.values() if m.pool_id == pool_id),
    }


def _create_pool(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.create_pool(args["pool"])
    return []


def _merge_pools(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.merge_pools(args["pool"], args["destination"])
    return []


def _ask_delete_pool(session: Session, args: dict[str, Any]) -> list[str]:
    name = args["pool"]
    session.group.pool_id(name)
    return session.confirm(f"Do you really want to delete the pool {name}?", lambda: _delete_pool(session, name))


def _pool_details(session: Session, args: dict[str, Any]) -> list[str]:
    group, name = session.group, args["pool"]
    pool_id = group.pool_id(name)
    figures = _pool_figures(session, pool_id)
    pairs = [
        ("Name", name),
        ("Default", "true" if name == "default" else "false"),
        ("Members", str(figures["members"])),
        ("TotalCapacity", format_size(figures["capacity"] * PAGE_SIZE)),
        ("FreeSpace", format_size(figures["free"] * PAGE_SIZE)),
        ("VolumeReserve", format_size(figures["volume_reserve"] * PAGE_SIZE)),
        ("SnapshotReserve", format_size(figures["snapshot_reserve"] * PAGE_SIZE)),
        ("VolumeReportedSpace", format_size(figures["reported"] * PAGE_SIZE)),
        ("TotalVolumes", str(figures["volumes"])),
        ("TotalSnapshots", str(figures["snapshots"])),
    ]
    members = [
        (r.name, r.state, format_size(r.capacity_pages * PAGE_SIZE), format_size(r.free_pages * PAGE_SIZE))
        for r in group.member_admin.reports()
        if r.pool == name
    ]
    volumes = [
        (v.name, format_size(v.pages * PAGE_SIZE), "online" if v.online else "offline")
        for v in sorted(group.pool_volumes(pool_id), key=lambda v: v.name)
    ]
    return [
        title("Pool Information"),
        *key_values(pairs, session.setting("formatoutput")),
        title("Members"),
        *table([("Name", 15), ("Status", 12), ("Capacity", 10), ("FreeSpace", 10)], members),
        title("Volumes"),
        *table([("Name", 20), ("Size", 10), ("Status", 8)], volumes),
    ]


def _delete_pool(session: Session, name: str) -> list[str]:
    session.group.delete_pool(name)
    return ["Pool deletion succeeded."]


def _pool_table(session: Session) -> list[str]:
    rows = []
    for pool_id, name in sorted(session.group.pools.items()):
        figures = _pool_figures(session, pool_id)
        rows.append(
            (
                name,
                "true" if name == "default" else "false",
                str(figures["members"]),
                str(figures["volumes"]),
                format_size(figures["capacity"] * PAGE_SIZE),
                format_size(figures["free"] * PAGE_SIZE),
            )
        )
    columns = [("Name", 20), ("Default", 7), ("Members", 7), ("Volumes", 7), ("Capacity", 10), ("FreeSpace", 10)]
    return table(columns, rows)


#: ``grpparams <keyword>`` -> (volume default, ``grpparams show`` label).
_DEFAULTS = {
    "def-snap-reserve": ("snap_reserve", "Def-Snap-Reserve"),
    "def-snap-warn": ("snap_warn", "Def-Snap-Warn"),
    "def-snap-depletion": ("snap_depletion", "Def-Snap-Depletion"),
    "def-thin-min-reserve": ("thin_min_reserve", "Def-Thin-Min-Reserve"),
    "def-thin-growth-warn": ("thin_warn", "Def-Thin-Growth-Warn"),
    "def-thin-growth-max": ("thin_max", "Def-Thin-Growth-Max"),
}


def _grpparams_show(session: Session, args: dict[str, Any]) -> list[str]:
    group = session.group
    defaults = group.volume_defaults()
    pairs = [
        ("Group-Name", group.name),
        ("Group-Ipaddress", group.group_ip),
        ("Description", group.catalog.param("description", "") or ""),
        ("Info-Messages", group.catalog.param("info_messages", "enabled") or "enabled"),
        ("Target-Auth-UserName", group.catalog.param("target_auth_username", "") or ""),
        ("Target-Auth-Password", group.catalog.param("target_auth_password", "") or ""),
    ]
    for key, label in _DEFAULTS.values():
        value = defaults[key]
        pairs.append((label, value if isinstance(value, str) else f"{value}%"))
    return [title("Group Information"), *key_values(pairs, session.setting("formatoutput"))]


def _set_default(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.set_volume_default(args["key"], args["value"])
    return []


def _set_param(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.set_group_param(args["key"], args["value"])
    return []


def _checked(pattern: str, what: str) -> Callable[[str], str]:
    def convert(value: str) -> str:
        if not re.match(pattern, value):
            raise CliError(f"Invalid {what} '{value}'.")
        return value

    return convert


def _target_password(value: str) -> str:
    if not 12 <= len(value) <= 255:
        raise CliError("The target authentication password must be 12 to 255 characters long.")
    return value


def _percent(what: str) -> Callable[[str], int]:
    return lambda text: percent_value(text, what)


def _enabled(text: str) -> str:
    return "enabled" if choice(["enable", "disable"], "value")(text) == "enable" else "disabled"


def _cli_settings_show(session: Session, args: dict[str, Any]) -> list[str]:
    return [f"{k}: {v}" for k, v in session.group.cli_settings(session.account).items()]


def _cli_setting(session: Session, args: dict[str, Any]) -> list[str]:
    session.group.set_cli_setting(session.account, args["key"], args["value"])
    return []


def _stty_show(session: Session, args: dict[str, Any]) -> list[str]:
    return [f"columns: {session.columns}", f"hardwrap: {'on' if session.hardwrap else 'off'}"]


def _stty(session: Session, args: dict[str, Any]) -> list[str]:
    """Terminal settings for this session only: ``stty columns N``, ``stty hardwrap on|off``."""
    if "columns" in args:
        session.columns = args["columns"]
    else:
        session.hardwrap = args["hardwrap"] == "on"
    return []


def _summary(session: Session, args: dict[str, Any]) -> list[str]:
    """``show`` alone summarises the group."""
    group = session.group
    return [
        title("Group Information"),
        f"Name: {group.name}",
        f"Group-Ipaddress: {group.group_ip}",
        f"Members: {len(group.member_admin.reports())}",
        f"Pools: {len(group.pools)}",
        f"Volumes: {len(group.volumes)}",
        f"Snapshots: {len(group.snapshots)}",
    ]


def _events(session: Session, args: dict[str, Any]) -> list[str]:
    """``show events [last N]``: the event log, newest last.

    One line per event, ``number:LEVEL:time:source:message`` (source: the member, or the
    group): the fields of the array's event log, in a layout that is inferred.
    """
    last = args.get("last")
    events = session.group.events()
    first = max(len(events) - last, 0) if last else 0
    return [
        f"{number}:{level}:{time}:{member or session.group.name}:{message}"
        for number, (time, level, message, member) in enumerate(events[first:], start=first + 1)
    ]


def _whoami(session: Session, args: dict[str, Any]) -> list[str]:
    return [session.account]


def _logout(session: Session, args: dict[str, Any]) -> list[str]:
    def close() -> list[str]:
        session.closed = True
        return []

    return session.confirm("Do you really want to logout?", close)


def _pool_names(session: Session, args: dict[str, Any]) -> list[str]:
    return list(session.group.pools.values())


_POOL = Arg("pool", "pool name", choices=_pool_names)
_ON_OFF = Arg("value", "on or off", choice(["on", "off"], "value"))

POOL = Node("pool", "storage pools", children=(
    Node("create", "create a pool", args=(Arg("pool", "pool name"),), run=_create_pool),
    Node("delete", "delete an empty pool", args=(_POOL,), run=_ask_delete_pool),
    Node("merge", "move every member and volume of a pool into another, and delete it",
         args=(_POOL, Arg("destination", "destination pool name", choices=_pool_names)), run=_merge_pools),
    Node("select", "work on a pool", args=(_POOL,), children=(Node("show", "show it", run=_pool_details),)),
    Node("show", "list the pools", run=lambda session, args: _pool_table(session)),
))  # fmt: skip

_GROUP_PARAMS = (
    Node("group-ipaddress", "the group IP, where initiators log in (a running server follows it)",
         args=(Arg("value", "group-ipaddress", _checked(_IPV4.pattern, "IP address")),), run=_set_param,
         preset={"key": "group_ip"}),
    Node("description", "the group's description", args=(Arg("value", "description"),), run=_set_param,
         preset={"key": "description"}),
    Node("info-messages", "informational messages", args=(Arg("value", "enable or disable", _enabled),),
         run=_set_param, preset={"key": "info_messages"}),
    Node("name", "the group's name", args=(Arg("value", "name", _checked(r"^[A-Za-z0-9][A-Za-z0-9-]{0,53}$",
                                                                               "group name")),),
         run=_set_param, preset={"key": "name"}),
    Node("target-auth-username", "the user name targets answer mutual CHAP with",
         args=(Arg("value", "target-auth-username"),), run=_set_param, preset={"key": "target_auth_username"}),
    Node("target-auth-password", "the secret targets answer mutual CHAP with (12 to 255 characters)",
         args=(Arg("value", "target-auth-password", _target_password),), run=_set_param,
         preset={"key": "target_auth_password"}),
    *(Node(word, f"default for new volumes: {label}",
           args=(Arg("value", "policy", choice(SNAP_DEPLETION_POLICIES, "policy")) if key == "snap_depletion"
                 else Arg("value", word, _percent(word)),),
           run=_set_default, preset={"key": key})
      for word, (key, label) in _DEFAULTS.items()),
)  # fmt: skip

GRPPARAMS = Node("grpparams", "group settings and defaults for new volumes", children=(
    Node("show", "show the group's settings", run=_grpparams_show), *_GROUP_PARAMS,
))  # fmt: skip

CLI_SETTINGS_NODE = Node("cli-settings", "this account's CLI settings, kept across sessions", children=(
    Node("show", "show them", run=_cli_settings_show),
    *(Node(key, f"{key} on or off", args=(_ON_OFF,), run=_cli_setting, preset={"key": key}) for key in CLI_SETTINGS),
))  # fmt: skip

STTY = Node("stty", "this session's terminal settings", children=(
    Node("columns", "the terminal's width",
         args=(Arg("columns", "number of columns", lambda text: whole_number_value(text, "number of columns", 1, 1024)),),
         run=_stty),
    Node("hardwrap", "wrap long lines at the width", args=(Arg("hardwrap", "on or off", choice(["on", "off"], "value")),),
         run=_stty),
    Node("show", "show them", run=_stty_show),
))  # fmt: skip

SHOW = Node("show", "a summary of the group, or a list of volumes, pools, members, CHAP users, events",
            run=_summary, children=(
    Node("volume", "the volumes, or one with its access records",
         args=(Arg("volume", "volume name", optional=True, choices=volume_commands.volume_names),),
         run=volume_commands.show_volumes),
    Node("pool", "the pools", run=lambda session, args: _pool_table(session)),
    Node("member", "the members", run=lambda session, args: members_table(session)),
    Node("chapuser", "the CHAP accounts", run=lambda session, args: users_table(session)),
    Node("events", "the event log, newest last", options=(
        Option("last", "only the last N events", "last",
               Arg("last", "number of events", lambda text: whole_number_value(text, "number of events", 1, 100_000))),
    ), run=_events),
))  # fmt: skip

WHOAMI = Node("whoami", "the account of this session", run=_whoami)
LOGOUT = Node("logout", "end this session", run=_logout)
EXIT = Node("exit", "leave the sub-mode, or end this session", run=_logout)
