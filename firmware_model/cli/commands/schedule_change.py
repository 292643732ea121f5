"""``schedule select S <setting> <value>``: a schedule's times and max-keep changed after its creation.

Rules of this module:

1. A change is checked exactly as a new schedule is (``array_sim.schedule_times.schedule_times``: the
   options its type takes, the ranges, the end after the start), with the settings not given kept as
   they are; a schedule would never run after the change is refused. Nothing is half changed.
2. A change of its times makes the schedule go on from its first run after now (as ``enable`` does);
   runs that fall between are not taken. A change of max-keep alone keeps its next run, and the
   snapshots it already made count against the new max-keep from its next run on (the oldest beyond
   it are deleted then, as at any run).
3. Its type, name and owner do not change (delete it and create another).
4. This is the one place outside ``array_sim.schedule_admin`` that writes a schedule's row, and it
   writes what ``create_schedule`` writes, in the same forms. It belongs in the engine
   (``ScheduleAdmin.change_schedule``): it is here only because the change that added it could not
   touch the engine; move it there with its tests unchanged.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from array_sim.schedule_admin import Schedule
from array_sim.schedule_times import KINDS, next_run, schedule_times

from ..words import CliError

if TYPE_CHECKING:
    from array_sim import Group

__all__ = ["change_schedule", "TIME_SETTINGS"]

#: The settings that change when a schedule runs (rule 2); ``max_keep`` is the other one.
TIME_SETTINGS = ("start_time", "start_date", "end_date", "end_time", "repeat", "every_days")


def change_schedule(
    group: Group,
    schedule: Schedule,
    start_time: time | None = None,
    start_date: date | None = None,
    end_date: date | None = None,
    end_time: time | None = None,
    repeat: timedelta | None = None,
    every_days: int | None = None,
    max_keep: int | None = None,
) -> None:
    """Change the settings given (None: kept), rules 1-3.

    Raises:
        InvalidRequest: a setting its type does not take, or a value ``schedule_times`` refuses.
        CliError: the schedule would never run after the change.
    """
    if max_keep is not None and all(value is None for value in (start_time, start_date, end_date, end_time,
                                                                 repeat, every_days)):  # fmt: skip
        with group.catalog.transaction() as db:
            db.execute("UPDATE schedules SET max_keep = ? WHERE id = ?", (max_keep, schedule.id))
        return
    old, rule = schedule.times, KINDS[schedule.times.kind]
    start = datetime.combine(start_date or old.start.date(), start_time or old.start.time())
    times = schedule_times(
        old.kind, start,
        end_date if end_date is not None else old.end_date if rule.end_date else None,
        end_time if end_time is not None else old.end_time if rule.end_time else None,
        repeat if repeat is not None else old.repeat if rule.repeat else None,
        every_days if every_days is not None else old.every_days if rule.frequency else None,
    )  # fmt: skip
    following = next_run(times, group.clock())
    if following is None:
        raise CliError(f"Schedule {schedule.name} would never run: its last run time has passed.")
    with group.catalog.transaction() as db:
        db.execute(
            "UPDATE schedules SET start = ?, end_date = ?, end_time = ?, repeat_minutes = ?, every_days = ?,"
            " max_keep = ?, next_run = ? WHERE id = ?",
            (times.start.isoformat(timespec="seconds"), times.end_date.isoformat() if times.end_date else "",
             f"{times.end_time:%H:%M}" if times.end_time else "",
             times.repeat // timedelta(minutes=1) if times.repeat else 0, times.every_days,
             max_keep if max_keep is not None else schedule.max_keep,
             following.isoformat(timespec="seconds") if schedule.enabled else "", schedule.id),
        )  # fmt: skip
