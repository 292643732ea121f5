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
from typing import TYPE_CHECKING

from array_sim.access_admin import CLI_SETTINGS
from array_sim.records import SNAP_DEPLETION_POLICIES
from array_sim.units import PAGE_SIZE, format_size

from ..formatting import key_values, table, title
from ..words import CliError, Words
from . import volume as volume_commands
from .chapuser import users_table
from .member import member
from .options import enable_argument, on_off_argument, percent_argument, whole_number_argument

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["pool", "grpparams", "cli_settings", "stty", "show", "whoami", "logout"]

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


def pool(session: Session, words: Words) -> list[str]:
    group = session.group
    action = words.keyword(["create", "delete", "merge", "select", "show"])
    if action == "show":
        words.end()
        return _pool_table(session)
    name = words.take("pool name")
    if action == "create":
        words.end()
        group.create_pool(name)
        return []
    if action == "merge":
        destination = words.take("destination pool name")
        words.end()
        group.merge_pools(name, destination)
        return []
    pool_id = group.pool_id(name)
    if action == "delete":
        words.end()
        return session.confirm(f"Do you really want to delete the pool {name}?", lambda: _delete_pool(session, name))
    words.keyword(["show"])
    words.end()
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


def grpparams(session: Session, words: Words) -> list[str]:
    group = session.group
    action = words.keyword(
        [
            "show", "group-ipaddress", "description", "info-messages", "name",
            "target-auth-username", "target-auth-password", *_DEFAULTS,
        ]
    )  # fmt: skip
    if action == "show":
        words.end()
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
    if action in _DEFAULTS:
        key = _DEFAULTS[action][0]
        if key == "snap_depletion":
            value: str | int = words.keyword(SNAP_DEPLETION_POLICIES, "policy")
        else:
            value = percent_argument(words, action)
        words.end()
        group.set_volume_default(key, value)
        return []
    if action == "info-messages":
        value = "enabled" if enable_argument(words) else "disabled"
        words.end()
        group.set_group_param("info_messages", value)
        return []
    value = words.take(action)
    words.end()
    if action == "group-ipaddress" and not _IPV4.match(value):
        raise CliError(f"Invalid IP address '{value}'.")
    if action == "name" and not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]{0,53}$", value):
        raise CliError(f"Invalid group name '{value}'.")
    if action == "target-auth-password" and not 12 <= len(value) <= 255:
        raise CliError("The target authentication password must be 12 to 255 characters long.")
    group.set_group_param(action.replace("-", "_").replace("ipaddress", "ip"), value)
    return []


def cli_settings(session: Session, words: Words) -> list[str]:
    key = words.keyword(["show", *CLI_SETTINGS], "setting")
    if key == "show":
        words.end()
        return [f"{k}: {v}" for k, v in session.group.cli_settings(session.account).items()]
    value = on_off_argument(words)
    words.end()
    session.group.set_cli_setting(session.account, key, value)
    return []


def stty(session: Session, words: Words) -> list[str]:
    """Terminal settings for this session only: ``stty columns N``, ``stty hardwrap on|off``."""
    key = words.keyword(["columns", "hardwrap", "show"])
    if key == "show":
        words.end()
        return [f"columns: {session.columns}", f"hardwrap: {'on' if session.hardwrap else 'off'}"]
    if key == "hardwrap":
        session.hardwrap = on_off_argument(words) == "on"
    else:
        session.columns = whole_number_argument(words, f"number of {key}", 1, 1024)
    words.end()
    return []


def show(session: Session, words: Words) -> list[str]:
    """``show`` alone summarises the group; ``show volume|pool|member|chapuser`` lists them."""
    if words.at_end():
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
    noun = words.keyword(["volume", "pool", "member", "chapuser", "events"])
    if noun == "volume":
        return volume_commands.volume(session, Words(["show", *words.tokens[words.position :]]))
    if noun == "events":
        return _events(session, words)
    words.end()
    if noun == "pool":
        return _pool_table(session)
    if noun == "member":
        return member(session, Words(["show"]))
    return users_table(session)


def _events(session: Session, words: Words) -> list[str]:
    """``show events [last N]``: the event log, newest last.

    One line per event, ``number:LEVEL:time:source:message`` (source: the member, or the
    group): the fields of the array's event log, in a layout that is inferred.
    """
    last = whole_number_argument(words, "number of events", 1, 100_000) if words.optional_keyword(["last"]) else None
    words.end()
    events = session.group.events()
    first = max(len(events) - last, 0) if last else 0
    return [
        f"{number}:{level}:{time}:{member or session.group.name}:{message}"
        for number, (time, level, message, member) in enumerate(events[first:], start=first + 1)
    ]


def whoami(session: Session, words: Words) -> list[str]:
    words.end()
    return [session.account]


def logout(session: Session, words: Words) -> list[str]:
    words.end()

    def close() -> list[str]:
        session.closed = True
        return []

    return session.confirm("Do you really want to logout?", close)
