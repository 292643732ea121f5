"""When a snapshot schedule runs: pure date arithmetic over one table, no clock and no catalog.

Rules of this module:

1. A schedule's runs are a set of whole-minute instants, fixed by its
   ``ScheduleTimes``; ``next_run(times, after)`` is the first of them strictly
   after ``after`` (None when there is none left). Nothing here reads a clock:
   the caller says what time it is.
2. What each type of schedule takes, and its defaults, is the table ``KINDS``;
   ``schedule_times()`` checks a request against it, and nothing else decides
   whether an option applies.
3. Times are naive local date-times, as the group's clock gives them.

The three types, as the array offers them (Group Manager: "run once", "hourly
schedule", "daily schedule"; Dell BP1027 3.9: "hourly or daily basis ... once
or at regular intervals (from five minutes to 12 hours apart)"):

* once: one run, at the start date and time;
* hourly: a run at the start and then every repeat interval (1 hour unless
  given), round the clock, through midnight, until the end date if any;
* daily: every ``frequency`` days from the start date (every day unless
  given), a run at the start time, and with a repeat interval more runs that
  day every interval up to the end time (23:59 unless given): BP1027's "every
  two hours between 7 a.m. and 7 p.m. each day".

How hourly runs continue across midnight, and the 23:59 default, are inferred:
no public source shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum

from .errors import InvalidRequest

__all__ = [
    "ScheduleKind",
    "KindRule",
    "KINDS",
    "ScheduleTimes",
    "schedule_times",
    "next_run",
    "REPEAT_LEAST",
    "REPEAT_MOST",
    "FREQUENCY_MOST",
]

#: Regular intervals "from five minutes to 12 hours apart" (Dell BP1027, section 3.9).
REPEAT_LEAST = timedelta(minutes=5)
REPEAT_MOST = timedelta(hours=12)
#: The longest ``frequency`` of a daily schedule, in days (inferred: no public figure).
FREQUENCY_MOST = 366
#: The end of a run day when a daily schedule repeats without an end time (inferred).
END_OF_DAY = time(23, 59)
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)


class ScheduleKind(Enum):
    """The ``type`` of a schedule."""

    #: One run, at the start date and time.
    ONCE = "once"
    #: Every repeat interval from the start, round the clock.
    HOURLY = "hourly"
    #: Every ``frequency`` days at the start time, optionally repeating that day until the end time.
    DAILY = "daily"


@dataclass(frozen=True)
class KindRule:
    """What one type of schedule takes (rule 2)."""

    end_date: bool
    end_time: bool
    repeat: bool
    frequency: bool
    #: The repeat interval when none is given (None: the type does not repeat unless told).
    default_repeat: timedelta | None = None


#: One row per type; an option a row does not take is refused, never ignored.
KINDS: dict[ScheduleKind, KindRule] = {
    ScheduleKind.ONCE: KindRule(end_date=False, end_time=False, repeat=False, frequency=False),
    ScheduleKind.HOURLY: KindRule(
        end_date=True, end_time=False, repeat=True, frequency=False, default_repeat=timedelta(hours=1)
    ),
    ScheduleKind.DAILY: KindRule(end_date=True, end_time=True, repeat=True, frequency=True),
}


@dataclass(frozen=True)
class ScheduleTimes:
    """Every run of one schedule, as data (build it with ``schedule_times``, which checks it)."""

    kind: ScheduleKind
    #: The first run: the start date at the start time (a whole minute).
    start: datetime
    #: The last day that may have runs (None: no end).
    end_date: date | None = None
    #: Daily: the latest time of day a repeated run may have.
    end_time: time | None = None
    #: Hourly: between runs; daily: between the runs of one day (None: one run a day).
    repeat: timedelta | None = None
    #: Daily: days from one run day to the next.
    every_days: int = 1


def schedule_times(
    kind: ScheduleKind,
    start: datetime,
    end_date: date | None = None,
    end_time: time | None = None,
    repeat: timedelta | None = None,
    every_days: int | None = None,
) -> ScheduleTimes:
    """Check a schedule's times against ``KINDS`` and fill in the defaults.

    Args:
        kind: the schedule's type.
        start: the first run (seconds are refused: the array's times are HH:MM).
        end_date, end_time, repeat, every_days: the options given (None: not given).

    Raises:
        InvalidRequest: an option the type does not take, or a value out of range.
    """
    rule = KINDS[kind]
    given = {"end-date": end_date, "end-time": end_time, "repeat-interval": repeat, "frequency": every_days}
    allowed = {"end-date": rule.end_date, "end-time": rule.end_time, "repeat-interval": rule.repeat,
               "frequency": rule.frequency}  # fmt: skip
    for option, value in given.items():
        if value is not None and not allowed[option]:
            raise InvalidRequest(f"A {kind.value} schedule does not take {option}.")
    if start.second or start.microsecond:
        raise InvalidRequest("A schedule's start time is a whole minute (HH:MM).")
    repeat = repeat if repeat is not None else rule.default_repeat
    if repeat is not None:
        if not REPEAT_LEAST <= repeat <= REPEAT_MOST or repeat % _MINUTE:
            raise InvalidRequest("The repeat-interval must be whole minutes, from 5 minutes to 12 hours.")
    if end_time is not None and repeat is None:
        raise InvalidRequest("end-time needs a repeat-interval: without one a daily schedule runs once a day.")
    if kind is ScheduleKind.DAILY and repeat is not None and end_time is None:
        end_time = END_OF_DAY
    if end_time is not None and end_time < start.time():
        raise InvalidRequest("The end-time must not be before the start-time.")
    if every_days is not None and not 1 <= every_days <= FREQUENCY_MOST:
        raise InvalidRequest(f"The frequency must be from 1 to {FREQUENCY_MOST} days.")
    if end_date is not None and end_date < start.date():
        raise InvalidRequest("The end-date must not be before the start-date.")
    return ScheduleTimes(kind, start, end_date, end_time, repeat, every_days or 1)


def next_run(times: ScheduleTimes, after: datetime) -> datetime | None:
    """The first run of the schedule strictly after ``after``; None if it has no run after it."""
    if after < times.start:
        found: datetime | None = times.start
    elif times.kind is ScheduleKind.ONCE:
        found = None
    elif times.kind is ScheduleKind.HOURLY:
        assert times.repeat is not None
        found = times.start + times.repeat * ((after - times.start) // times.repeat + 1)
    else:
        found = _next_daily(times, after)
    if found is not None and times.end_date is not None and found.date() > times.end_date:
        return None
    return found


def _next_daily(times: ScheduleTimes, after: datetime) -> datetime:
    """A daily schedule's first run after ``after`` (which is at or after its start)."""
    first_day = times.start.date()
    day = after.date()
    late = (day - first_day).days % times.every_days
    if late:
        day += _DAY * (times.every_days - late)
    elif (within := _next_in_day(times, day, after)) is not None:
        return within
    else:
        day += _DAY * times.every_days
    return datetime.combine(day, times.start.time())


def _next_in_day(times: ScheduleTimes, day: date, after: datetime) -> datetime | None:
    """The first run on the run day ``day`` strictly after ``after`` (a time on that day), if any."""
    first = datetime.combine(day, times.start.time())
    if after < first:
        return first
    if times.repeat is None or times.end_time is None:
        return None
    found = first + times.repeat * ((after - first) // times.repeat + 1)
    return found if found <= datetime.combine(day, times.end_time) else None
