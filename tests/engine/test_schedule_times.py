"""``schedule_times``: when a schedule runs, against a brute-force model that steps minute by minute.

The model does not compute anything: it says, for one minute, whether the
schedule's definition makes it a run (``is_run``), and walks the minutes after
a time until it finds one. ``next_run`` must agree with it for every schedule
``schedule_times`` accepts.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from array_sim import InvalidRequest
from array_sim.schedule_times import (
    END_OF_DAY,
    ScheduleKind,
    ScheduleTimes,
    next_run,
    schedule_times,
)

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
BASE = datetime(2026, 2, 26)  # across the end of February and of March's first days


def is_run(times: ScheduleTimes, minute: datetime) -> bool:
    """Whether the whole minute ``minute`` is a run, read straight from the schedule's definition."""
    if times.end_date is not None and minute.date() > times.end_date:
        return False
    if minute < times.start:
        return False
    if times.kind is ScheduleKind.ONCE:
        return minute == times.start
    if times.kind is ScheduleKind.HOURLY:
        return (minute - times.start) % times.repeat == timedelta(0)
    if (minute.date() - times.start.date()).days % times.every_days:
        return False
    first = datetime.combine(minute.date(), times.start.time())
    if times.repeat is None:
        return minute == first
    last = datetime.combine(minute.date(), times.end_time)
    return first <= minute <= last and (minute - first) % times.repeat == timedelta(0)


def horizon(times: ScheduleTimes, after: datetime) -> datetime:
    """A time by which a run after ``after`` must have come, if the schedule has one left."""
    if times.end_date is not None:
        return datetime.combine(times.end_date, END_OF_DAY)
    if times.kind is ScheduleKind.ONCE:
        return times.start
    return max(after, times.start) + DAY * (times.every_days + 1)


def brute_next_run(times: ScheduleTimes, after: datetime) -> datetime | None:
    minute = after.replace(second=0, microsecond=0) + MINUTE
    last = horizon(times, after)
    while minute <= last:
        if is_run(times, minute):
            return minute
        minute += MINUTE
    return None


@st.composite
def schedules(draw: st.DrawFn) -> ScheduleTimes:
    """Schedules ``schedule_times`` accepts (the ones it refuses are drawn again)."""
    kind = draw(st.sampled_from(ScheduleKind))
    start = BASE + MINUTE * draw(st.integers(0, 3 * 1440))
    options: dict[str, object] = {}
    if kind is not ScheduleKind.ONCE and draw(st.booleans()):
        options["end_date"] = start.date() + DAY * draw(st.integers(0, 6))
    if kind is ScheduleKind.DAILY:
        options["every_days"] = draw(st.one_of(st.none(), st.integers(1, 4)))
        if draw(st.booleans()):
            options["repeat"] = MINUTE * draw(st.sampled_from([5, 7, 30, 45, 60, 90, 120, 250, 720]))
            if draw(st.booleans()):
                day_minute = start.hour * 60 + start.minute
                end = draw(st.integers(day_minute, 1439))
                step = options["repeat"] // MINUTE  # type: ignore[operator]
                if draw(st.booleans()):  # on a run: the edge case of an end time
                    end = day_minute + (end - day_minute) // step * step
                options["end_time"] = time(*divmod(end, 60))
    if kind is ScheduleKind.HOURLY and draw(st.booleans()):
        options["repeat"] = MINUTE * draw(st.sampled_from([5, 13, 60, 120, 300, 420, 720]))
    try:
        return schedule_times(kind, start, **options)  # type: ignore[arg-type]
    except InvalidRequest:
        assume(False)
        raise


@st.composite
def afters(draw: st.DrawFn, times: ScheduleTimes) -> datetime:
    """Times around the schedule: anywhere from before its start to days later, or on one of its runs
    (found by the model) or just before it, where an off-by-one would show."""
    if draw(st.booleans()):  # days and seconds drawn apart, so that every day of the range comes up
        day = datetime.combine(times.start.date(), time()) + DAY * draw(st.integers(-2, 5))
        return day + timedelta(seconds=draw(st.integers(0, 86399)))
    run: datetime | None = times.start
    for _ in range(draw(st.integers(0, 30))):
        later = brute_next_run(times, run) if run is not None else None
        if later is None:
            break
        run = later
    assert run is not None
    return run - timedelta(seconds=draw(st.sampled_from([0, 0, 1, 59, 60, 61, 300])))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_next_run_agrees_with_minute_by_minute_stepping(data: st.DataObject) -> None:
    times = data.draw(schedules())
    after = data.draw(afters(times))
    assert next_run(times, after) == brute_next_run(times, after)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_runs_follow_one_another_strictly_and_are_runs(data: st.DataObject) -> None:
    """Following ``next_run`` from before the start visits runs only, in order, the first being the start."""
    times = data.draw(schedules())
    when = next_run(times, times.start - MINUTE)
    assert when == times.start
    for _ in range(40):
        assert when is not None and is_run(times, when)
        later = next_run(times, when)
        if later is None:
            assert brute_next_run(times, when) is None
            break
        assert later > when
        when = later


# ------------------------------------------------------------------ the table of what each type takes


START = datetime(2026, 1, 5, 10, 0)


@pytest.mark.parametrize(
    ("kind", "options", "refusal"),
    [
        (ScheduleKind.ONCE, {"repeat": timedelta(hours=1)}, "does not take repeat-interval"),
        (ScheduleKind.ONCE, {"end_date": date(2026, 2, 1)}, "does not take end-date"),
        (ScheduleKind.ONCE, {"every_days": 2}, "does not take frequency"),
        (ScheduleKind.HOURLY, {"end_time": time(18, 0)}, "does not take end-time"),
        (ScheduleKind.HOURLY, {"every_days": 2}, "does not take frequency"),
        (ScheduleKind.HOURLY, {"repeat": timedelta(minutes=4)}, "5 minutes to 12 hours"),
        (ScheduleKind.DAILY, {"repeat": timedelta(hours=13)}, "5 minutes to 12 hours"),
        (ScheduleKind.DAILY, {"repeat": timedelta(seconds=330)}, "whole minutes"),
        (ScheduleKind.DAILY, {"end_time": time(18, 0)}, "needs a repeat-interval"),
        (ScheduleKind.DAILY, {"repeat": timedelta(hours=1), "end_time": time(9, 0)}, "before the start-time"),
        (ScheduleKind.DAILY, {"every_days": 0}, "from 1 to 366"),
        (ScheduleKind.DAILY, {"end_date": date(2026, 1, 4)}, "before the start-date"),
    ],
)
def test_options_a_type_does_not_take_are_refused(kind: ScheduleKind, options: dict[str, object], refusal: str) -> None:
    with pytest.raises(InvalidRequest, match=refusal):
        schedule_times(kind, START, **options)  # type: ignore[arg-type]


def test_defaults_hourly_every_hour_daily_repeat_until_end_of_day() -> None:
    assert schedule_times(ScheduleKind.HOURLY, START).repeat == timedelta(hours=1)
    daily = schedule_times(ScheduleKind.DAILY, START, repeat=timedelta(hours=5))
    assert daily.end_time == END_OF_DAY
    assert next_run(daily, datetime(2026, 1, 5, 20, 0)) == datetime(2026, 1, 6, 10, 0)
    assert schedule_times(ScheduleKind.DAILY, START).every_days == 1


def test_every_two_hours_between_7am_and_7pm() -> None:
    """BP1027's example: a daily schedule from 07:00 to 19:00, every two hours."""
    times = schedule_times(ScheduleKind.DAILY, datetime(2026, 1, 5, 7, 0), end_time=time(19, 0),
                           repeat=timedelta(hours=2))  # fmt: skip
    runs: list[datetime] = []
    for _ in range(8):
        runs.append(next_run(times, runs[-1] if runs else datetime(2026, 1, 5)))  # type: ignore[arg-type]
    assert [when.hour for when in runs[:7]] == [7, 9, 11, 13, 15, 17, 19]
    assert runs[7] == datetime(2026, 1, 6, 7, 0)


def test_hourly_runs_on_through_midnight_and_stops_after_its_end_date() -> None:
    times = schedule_times(ScheduleKind.HOURLY, datetime(2026, 1, 5, 20, 0), end_date=date(2026, 1, 6),
                           repeat=timedelta(hours=5))  # fmt: skip
    assert next_run(times, datetime(2026, 1, 5, 20, 0)) == datetime(2026, 1, 6, 1, 0)
    assert next_run(times, datetime(2026, 1, 6, 21, 0)) is None


def test_once_runs_once() -> None:
    times = schedule_times(ScheduleKind.ONCE, START)
    assert next_run(times, START - timedelta(seconds=1)) == START
    assert next_run(times, START) is None
