"""``schedule ...`` under ``volume select V`` and ``collection select C``: snapshot schedules.

    schedule create NAME type once|hourly|daily start-time HH:MM [start-date YYYY-MM-DD]
        [end-date YYYY-MM-DD] [end-time HH:MM] [repeat-interval N{mins|hours}] [frequency N{days}]
        [max-keep N] [enable|disable]
    schedule show [NAME]
    schedule delete NAME
    schedule select NAME show | enable | disable | delete
    schedule select NAME start-time HH:MM | start-date D | end-date D | end-time HH:MM
        | repeat-interval N{mins|hours} | frequency N{days} | max-keep N

Public sources show the array's schedules (once, hourly, daily, a repeat
interval of 5 minutes to 12 hours, a number of snapshots to keep: Dell BP1027
3.9) but not their CLI syntax: the keywords above, the output layout and the
messages are inferred (research/ps-cli.md 2.4: "UNVERIFIED"). Times are also
accepted as ``hh:mmAM|PM``, dates as ``MM/DD/YYYY``.

A change after creation is ``Group.change_schedule`` (``array_sim.schedule_admin`` rules 2 and 3:
what it checks, and that the schedule goes on from its next run after now); this module only parses it.

``schedule_node(owner_of)`` gives the subtree for whatever owns the schedules
(``owner_of(session, args)``: a volume, a collection).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from array_sim.clock import format_clock_time
from array_sim.schedule_admin import DEFAULT_MAX_KEEP, MAX_KEEP_MOST, Schedule

from ..formatting import key_values, table, title
from ..grammar import Arg, Node, Option, choice_arg
from ..words import CliError

if TYPE_CHECKING:
    from array_sim import Group

    from ..session import Session

__all__ = ["ScheduleOwner", "schedule_node", "volume_owner", "collection_owner"]

_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})([AaPp][Mm])?")
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")
_AMOUNT = re.compile(r"([0-9]{1,6})([A-Za-z]+)")
#: ``repeat-interval`` units: word -> minutes.
_INTERVAL_UNITS = {"min": 1, "mins": 1, "minute": 1, "minutes": 1, "hour": 60, "hours": 60}
_DAY_UNITS = ("day", "days")


@dataclass(frozen=True)
class ScheduleOwner:
    """What schedules belong to, as the commands see it: a volume or a collection."""

    #: ``Volume`` or ``Collection``: the field of ``schedule select S show``.
    noun: str
    name: str
    create: Callable[..., Schedule]
    listing: Callable[[], list[Schedule]]
    find: Callable[[str], Schedule]


OwnerOf = Callable[["Session", dict[str, Any]], ScheduleOwner]


def volume_owner(group: Group, volume: str) -> ScheduleOwner:
    return ScheduleOwner(
        "Volume", volume,
        lambda *args, **options: group.create_schedule(volume, *args, **options),
        lambda: group.schedules(volume),
        lambda name: group.schedule(volume, name),
    )  # fmt: skip


def collection_owner(group: Group, collection: str) -> ScheduleOwner:
    return ScheduleOwner(
        "Collection", collection,
        lambda *args, **options: group.create_collection_schedule(collection, *args, **options),
        lambda: group.collection_schedules(collection),
        lambda name: group.collection_schedule(collection, name),
    )  # fmt: skip


# ---------------------------------------------------------------------- arguments


def _time_of_day(what: str) -> Callable[[str], time]:
    def convert(text: str) -> time:
        match = _TIME.fullmatch(text)
        if match is not None:
            hour, minute, half = int(match[1]), int(match[2]), (match[3] or "").lower()
            if half:
                hour = hour % 12 + (12 if half == "pm" else 0) if 1 <= hour <= 12 else 24
            if hour < 24 and minute < 60:
                return time(hour, minute)
        raise CliError(f"Invalid {what} '{text[:40]}'; use HH:MM (24-hour) or hh:mmAM|PM.")

    return convert


def _date(what: str) -> Callable[[str], date]:
    def convert(text: str) -> date:
        for layout in _DATE_FORMATS:
            try:
                return datetime.strptime(text, layout).date()
            except ValueError:
                continue
        raise CliError(f"Invalid {what} '{text[:40]}'; use YYYY-MM-DD.")

    return convert


def _interval(text: str) -> timedelta:
    match = _AMOUNT.fullmatch(text)
    if match is None or match[2].lower() not in _INTERVAL_UNITS:
        raise CliError(f"Invalid repeat-interval '{text[:40]}'; use a number of mins or hours (30mins, 2hours).")
    return timedelta(minutes=int(match[1]) * _INTERVAL_UNITS[match[2].lower()])


def _days(text: str) -> int:
    match = _AMOUNT.fullmatch(text)
    if match is None or match[2].lower() not in _DAY_UNITS:
        raise CliError(f"Invalid frequency '{text[:40]}'; use a number of days (1days, 7days).")
    return int(match[1])


def _max_keep(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 4 and 1 <= int(text) <= MAX_KEEP_MOST):
        raise CliError(f"Invalid max-keep '{text[:40]}'; use a whole number from 1 to {MAX_KEEP_MOST}.")
    return int(text)


# ------------------------------------------------------------------------- output


def _when(text: str) -> str:
    return format_clock_time(datetime.fromisoformat(text))[:-3] if text else "none"


def _interval_text(schedule: Schedule) -> str:
    minutes = schedule.repeat_minutes
    if not minutes:
        return ""
    return f"{minutes // 60}hours" if minutes % 60 == 0 else f"{minutes}mins"


def _kept(session: Session, found: Schedule) -> list[tuple[str, str]]:
    """(name, timestamp) of what the schedule made and keeps, oldest first: snapshots of a volume's,
    snapshot collections of a collection's (what its max-keep counts)."""
    group = session.group
    made = group.schedule_snapshots(found) if found.volume_id is not None else group.schedule_snapshot_collections(found)
    return [(item.name, item.created.replace("T", " ")) for item in made]


def _table(session: Session, owner: ScheduleOwner) -> list[str]:
    rows = [
        (
            s.name,
            s.kind,
            _when(s.next_run) if s.enabled else "",
            str(s.max_keep),
            str(len(_kept(session, s))),
            "enabled" if s.enabled else "disabled",
        )
        for s in owner.listing()
    ]
    columns = [("Name", 15), ("Type", 6), ("NextRun", 16), ("MaxKeep", 7), ("Snapshots", 9), ("Status", 8)]
    return table(columns, rows)


def _details(session: Session, owner: ScheduleOwner, found: Schedule) -> list[str]:
    start = datetime.fromisoformat(found.start)
    made = _kept(session, found)
    pairs = [
        ("Name", found.name),
        (owner.noun, owner.name),
        ("Type", found.kind),
        ("Status", "enabled" if found.enabled else "disabled"),
        ("StartDate", f"{start:%Y-%m-%d}"),
        ("StartTime", f"{start:%H:%M}"),
        ("EndDate", found.end_date),
        ("EndTime", found.end_time),
        ("RepeatInterval", _interval_text(found)),
        ("Frequency", f"{found.every_days}days" if found.kind == "daily" else ""),
        ("MaxKeep", str(found.max_keep)),
        ("NextRun", _when(found.next_run) if found.enabled else "none (disabled)"),
        ("Snapshots", str(len(made))),
    ]
    lines = [title("Schedule Information"), *key_values(pairs, session.setting("formatoutput"))]
    if made:
        heading = "Snapshot" if found.volume_id is not None else "SnapshotCollection"
        lines += ["", *table([(heading, 40), ("TimeStamp", 19)], made)]
    return lines


# --------------------------------------------------------------------------- tree

#: The settings ``create`` takes as options and ``select S`` changes: (keyword, help, its default
#: when created without it, argument).
_SETTINGS = (
    ("start-time", "the first run's time of day", "",
     Arg("start_time", "start time (HH:MM)", _time_of_day("start-time"))),
    ("start-date", "the first run's day", "today", Arg("start_date", "start date (YYYY-MM-DD)", _date("start-date"))),
    ("end-date", "the last day with runs", "", Arg("end_date", "end date (YYYY-MM-DD)", _date("end-date"))),
    ("end-time", "daily: the last run's time of day when repeating", "",
     Arg("end_time", "end time (HH:MM)", _time_of_day("end-time"))),
    ("repeat-interval", "between runs, 5mins to 12hours", "hourly: 1hours",
     Arg("repeat", "interval (30mins, 2hours)", _interval)),
    ("frequency", "daily: every N days", "1days", Arg("every_days", "frequency (Ndays)", _days)),
    ("max-keep", f"snapshots kept, 1 to {MAX_KEEP_MOST}", str(DEFAULT_MAX_KEEP),
     Arg("max_keep", "number of snapshots", _max_keep)),
)  # fmt: skip


def schedule_node(owner_of: OwnerOf) -> Node:
    """The ``schedule`` subtree for the schedules of ``owner_of(session, args)``."""

    def create(session: Session, args: dict[str, Any]) -> list[str]:
        if "kind" not in args:
            raise CliError("Missing type (once, hourly or daily).")
        if "start_time" not in args:
            raise CliError("Missing start-time (HH:MM).")
        options = {key: args[key] for key in ("start_date", "end_date", "end_time", "repeat", "every_days",
                                              "max_keep", "enabled") if key in args}  # fmt: skip
        owner_of(session, args).create(args["schedule"], args["kind"], args["start_time"], **options)
        return ["Schedule creation succeeded."]

    def show(session: Session, args: dict[str, Any]) -> list[str]:
        owner = owner_of(session, args)
        if "schedule" not in args:
            return _table(session, owner)
        return _details(session, owner, owner.find(args["schedule"]))

    def change(session: Session, args: dict[str, Any]) -> list[str]:
        found = owner_of(session, args).find(args["schedule"])
        changes = {arg.name: args[arg.name] for *_, arg in _SETTINGS if arg.name in args}
        session.group.change_schedule(found, **changes)
        return []

    def switch(session: Session, args: dict[str, Any]) -> list[str]:
        session.group.set_schedule_enabled(owner_of(session, args).find(args["schedule"]), args["enabled"])
        return []

    def ask_delete(session: Session, args: dict[str, Any]) -> list[str]:
        found = owner_of(session, args).find(args["schedule"])

        def delete() -> list[str]:
            session.group.delete_schedule(found)
            return ["Schedule deletion succeeded."]

        return session.confirm(f"Do you really want to delete the schedule {found.name}?", delete)

    def names(session: Session, args: dict[str, Any]) -> list[str]:
        return [s.name for s in owner_of(session, args).listing()]

    name = Arg("schedule", "schedule name", choices=names)
    return Node("schedule", "snapshot schedules", children=(
        Node("create", "create a snapshot schedule", args=(Arg("schedule", "schedule name"),), options=(
            Option("type", "once, hourly or daily", "kind",
                   choice_arg("kind", "schedule type", ["once", "hourly", "daily"], "schedule type")),
            *(Option(word, f"{help} (default {default})" if default else help, arg.name, arg)
              for word, help, default, arg in _SETTINGS),
            Option("enable", "runs (the default)", "enabled", const=True),
            Option("disable", "does not run until enabled", "enabled", const=False),
        ), run=create),
        Node("delete", "delete a schedule (its snapshots stay)", args=(name,), run=ask_delete),
        Node("select", "work on a schedule", args=(name,), children=(
            Node("show", "show it and the snapshots it keeps", run=show),
            Node("enable", "let it run (from its next run after now)", run=switch, preset={"enabled": True}),
            Node("disable", "stop it running", run=switch, preset={"enabled": False}),
            Node("delete", "delete it (its snapshots stay)", run=ask_delete),
            *(Node(word, f"change it: {help}", args=(arg,), run=change) for word, help, _, arg in _SETTINGS),
        )),
        Node("show", "list the schedules, or show one", args=(Arg("schedule", "schedule name", optional=True,
                                                                  choices=names),), run=show),
    ))  # fmt: skip
