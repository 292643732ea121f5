"""The schedules' runner and the simulated clock (``array_sim.schedule_runner``): max-keep, catch-up after
downtime, disabled schedules, a daily window's end time, once, and the clock kept across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from array_sim import AlreadyExists, Group, InvalidRequest, NotFound
from array_sim.clock import SimulatedClock
from array_sim.migrations import MIGRATIONS
from array_sim.schedule_admin import SCHEDULES_MOST
from array_sim.schedule_runner import MAX_STEPPED_RUNS
from array_sim.units import GiB, MiB

START = datetime(2026, 1, 5, 10, 0)
HOUR = timedelta(hours=1)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


def make_group(directory: Path, clock: SimulatedClock) -> Group:
    group = Group.init(directory, member_size=1 * GiB, clock=clock, raid_policy="file")
    group.create_volume("v1", 100 * MiB)
    return group


@pytest.fixture
def group(tmp_path: Path, clock: SimulatedClock) -> Iterator[Group]:
    with make_group(tmp_path / "g", clock) as group:
        yield group


def names(group: Group, volume: str = "v1") -> list[str]:
    return sorted(s.name for s in group.snapshots_of(group.volume(volume)))


def messages(group: Group) -> list[str]:
    return [message for _, _, message, _ in group.events()]


def test_advancing_six_hours_takes_six_hourly_snapshots_at_their_times_and_keeps_max_keep(group: Group) -> None:
    group.create_schedule("v1", "hourly", "hourly", time(10, 0), max_keep=4)
    group.create_snapshot("v1", "by-hand")
    assert group.advance_clock(6 * HOUR) == 6
    assert group.clock() == START + 6 * HOUR
    assert names(group) == ["by-hand"] + [f"v1-2026-01-05-{hour}:00:00.{n}" for hour, n in
                                          zip(range(13, 17), range(4, 8), strict=True)]  # fmt: skip
    kept = group.schedule_snapshots(group.schedule("v1", "hourly"))
    assert [s.created for s in kept] == [f"2026-01-05T{hour}:00:00" for hour in range(13, 17)]
    events = group.events()
    assert ("2026-01-05T11:00:00", "INFO", "Schedule hourly of volume v1 created snapshot v1-2026-01-05-11:00:00.2.",
            "") in events  # fmt: skip
    deleted = [e for e in events if "deleted by schedule hourly (max-keep 4)" in e[2]]
    assert [time for time, *_ in deleted] == ["2026-01-05T15:00:00", "2026-01-05T16:00:00"]
    assert group.schedule("v1", "hourly").next_run == "2026-01-05T17:00:00"


def test_max_keep_counts_only_the_schedules_own_snapshots(group: Group) -> None:
    group.create_schedule("v1", "a", "hourly", time(10, 0), max_keep=2)
    group.create_schedule("v1", "b", "hourly", time(10, 30), max_keep=3)
    group.advance_clock(2 * HOUR)  # a: 11:00 12:00; b: 10:30 11:30
    manual = group.create_snapshot("v1", "manual")
    group.advance_clock(3 * HOUR)  # a: 13 14 15; b: 12:30 13:30 14:30
    a, b = group.schedule("v1", "a"), group.schedule("v1", "b")
    assert [s.created[11:16] for s in group.schedule_snapshots(a)] == ["14:00", "15:00"]
    assert [s.created[11:16] for s in group.schedule_snapshots(b)] == ["12:30", "13:30", "14:30"]
    assert manual.id in group.snapshots
    # One of a's snapshots deleted by hand leaves its count: the next run deletes nothing.
    group.delete_snapshot("v1", group.schedule_snapshots(a)[0].name)
    group.advance_clock(HOUR)
    assert [s.created[11:16] for s in group.schedule_snapshots(a)] == ["15:00", "16:00"]
    assert group.made_by_schedule(group.schedule_snapshots(a)[0]) == "a"
    assert group.made_by_schedule(manual) == ""


def test_after_downtime_one_snapshot_covers_the_missed_runs(tmp_path: Path, clock: SimulatedClock) -> None:
    group = make_group(tmp_path / "g", clock)
    group.create_schedule("v1", "hourly", "hourly", time(10, 0), max_keep=5)
    group.create_schedule("v1", "daily", "daily", time(9, 0))
    group.advance_clock(HOUR)  # the 11:00 run
    group.start_simulated_clock()
    group.close()
    # A day and a half later: 34 hourly runs and a daily one were missed while the group was closed.
    later = SimulatedClock(datetime(2026, 1, 6, 21, 30, 15))
    with Group.open(tmp_path / "g", later) as reopened:
        assert reopened.run_schedules() == 2
        assert names(reopened) == ["v1-2026-01-05-11:00:00.1", "v1-2026-01-06-21:30:15.2",
                                   "v1-2026-01-06-21:30:15.3"]  # fmt: skip
        warnings = [m for _, level, m, _ in reopened.events() if level == "WARNING"]
        assert warnings == [  # in the order their runs fell due
            "Schedule hourly of volume v1 missed 34 runs, from 2026-01-05 12:00:00 to 2026-01-06 21:00:00 (the group"
            " was not running); one snapshot, v1-2026-01-06-21:30:15.2, was taken now instead.",
            "Schedule daily of volume v1 missed its run at 2026-01-06 09:00:00 (the group was not running);"
            " one snapshot, v1-2026-01-06-21:30:15.3, was taken now instead.",
        ]
        assert reopened.schedule("v1", "hourly").next_run == "2026-01-06T22:00:00"
        assert reopened.schedule("v1", "daily").next_run == "2026-01-07T09:00:00"
        assert reopened.run_schedules() == 0


def test_one_run_due_is_taken_at_the_time_the_runner_looks(group: Group, clock: SimulatedClock) -> None:
    """As under serve on real time: the background step looks about once a second."""
    group.create_schedule("v1", "hourly", "hourly", time(10, 0))
    clock.set(START + HOUR - timedelta(seconds=1))
    group.background_step()
    assert names(group) == []
    clock.set(START + HOUR + timedelta(seconds=1))
    group.background_step()
    assert names(group) == ["v1-2026-01-05-11:00:01.1"]
    assert not any(level == "WARNING" for _, level, _, _ in group.events())


def test_a_disabled_schedule_takes_nothing_and_goes_on_from_now_when_enabled(group: Group) -> None:
    group.create_schedule("v1", "off", "hourly", time(10, 0), enabled=False)
    group.advance_clock(3 * HOUR)
    assert names(group) == []
    schedule = group.schedule("v1", "off")
    assert (schedule.enabled, schedule.next_run) == (False, "")
    group.set_schedule_enabled(schedule, True)
    assert group.schedule("v1", "off").next_run == "2026-01-05T14:00:00"
    group.advance_clock(HOUR)
    assert names(group) == ["v1-2026-01-05-14:00:00.1"]
    group.set_schedule_enabled(group.schedule("v1", "off"), False)
    group.advance_clock(5 * HOUR)
    assert len(names(group)) == 1


def test_a_daily_window_ends_at_its_end_time_and_skips_days_by_frequency(group: Group) -> None:
    """BP1027's every two hours from 07:00 to 19:00, here every other day from the 6th."""
    group.create_schedule("v1", "day", "daily", time(7, 0), start_date=date(2026, 1, 6), end_time=time(19, 0),
                          repeat=2 * HOUR, every_days=2, max_keep=100)  # fmt: skip
    group.advance_clock(timedelta(days=4))
    taken = sorted(s.created for s in group.schedule_snapshots(group.schedule("v1", "day")))
    assert taken == [f"2026-01-{day:02}T{hour:02}:00:00" for day in (6, 8) for hour in range(7, 20, 2)]


def test_an_end_date_ends_the_schedule(group: Group) -> None:
    group.create_schedule("v1", "short", "hourly", time(22, 0), end_date=date(2026, 1, 5), repeat=HOUR)
    group.advance_clock(timedelta(days=2))
    assert names(group) == ["v1-2026-01-05-22:00:00.1", "v1-2026-01-05-23:00:00.2"]
    assert group.schedule("v1", "short").next_run == ""


def test_once_runs_once_and_a_time_of_day_passed_means_tomorrow(group: Group) -> None:
    group.create_schedule("v1", "soon", "once", time(10, 30))
    group.create_schedule("v1", "tomorrow", "once", time(9, 0))
    assert group.schedule("v1", "tomorrow").start == "2026-01-06T09:00:00"
    with pytest.raises(InvalidRequest, match="would never run"):
        group.create_schedule("v1", "past", "once", time(9, 0), start_date=date(2026, 1, 5))
    group.advance_clock(timedelta(days=3))
    assert names(group) == ["v1-2026-01-05-10:30:00.1", "v1-2026-01-06-09:00:00.2"]
    assert [s.next_run for s in group.schedules("v1")] == ["", ""]


def test_a_run_that_cannot_snapshot_is_an_event_and_the_schedule_goes_on(group: Group) -> None:
    group.create_volume("nosnaps", 100 * MiB, snap_reserve=0)
    group.create_schedule("nosnaps", "h", "hourly", time(10, 0))
    group.advance_clock(2 * HOUR)
    assert names(group, "nosnaps") == []
    assert messages(group).count(
        "Schedule h of volume nosnaps took no snapshot: Volume nosnaps has no snapshot reserve; set snap-reserve first."
    ) == 2
    assert group.schedule("nosnaps", "h").next_run == "2026-01-05T13:00:00"


def test_deleting_a_schedule_keeps_its_snapshots_deleting_the_volume_its_schedules(group: Group) -> None:
    group.create_schedule("v1", "h", "hourly", time(10, 0))
    group.advance_clock(2 * HOUR)
    group.delete_schedule(group.schedule("v1", "h"))
    assert len(names(group)) == 2
    with pytest.raises(NotFound, match="Schedule h does not exist for volume v1"):
        group.schedule("v1", "h")
    group.create_schedule("v1", "h", "hourly", time(10, 0))
    group.advance_clock(HOUR)
    group.set_volume_online("v1", False)
    group.delete_volume("v1")
    assert group.catalog.db.execute("SELECT count(*) FROM schedules").fetchone() == (0,)
    assert group.catalog.db.execute("SELECT count(*) FROM schedule_snapshots").fetchone() == (0,)
    group.create_volume("v1", 100 * MiB)
    assert group.schedules("v1") == []


def test_schedule_requests_are_checked(group: Group) -> None:
    group.create_schedule("v1", "h", "hourly", time(10, 0))
    with pytest.raises(AlreadyExists):
        group.create_schedule("v1", "h", "daily", time(10, 0))
    group.create_volume("v2", 100 * MiB)
    group.create_schedule("v2", "h", "daily", time(10, 0))  # names are per volume
    for bad, match in (({"max_keep": 0}, "max-keep"), ({"max_keep": 513}, "max-keep"),
                       ({"kind": "weekly"}, "Bad schedule type"), ({"name": "no spaces"}, "schedule name")):  # fmt: skip
        request = {"volume": "v1", "name": "x", "kind": "hourly", "start_time": time(10, 0), **bad}
        with pytest.raises(InvalidRequest, match=match):
            group.create_schedule(**request)  # type: ignore[arg-type]
    assert [s.name for s in group.schedules("v1")] == ["h"]
    for n in range(SCHEDULES_MOST - 1):
        group.create_schedule("v1", f"s{n}", "daily", time(10, 0))
    with pytest.raises(InvalidRequest, match="already has 64 schedules"):
        group.create_schedule("v1", "one-too-many", "daily", time(10, 0))


def test_a_refused_change_raises_invalid_request_and_leaves_the_row(group: Group) -> None:
    """``change_schedule``'s own checks (the CLI's parser refuses a bad max-keep before it is called)."""
    group.create_schedule("v1", "o", "once", time(18, 0))
    before = group.schedule("v1", "o")
    for bad, match in (({"start_date": date(2026, 1, 4)}, "Schedule o would never run"),
                       ({"max_keep": 0}, "max-keep"), ({"max_keep": 513}, "max-keep"),
                       ({"start_time": time(19, 0), "max_keep": 0}, "max-keep"),
                       ({"repeat": HOUR}, "once schedule does not take repeat-interval")):  # fmt: skip
        with pytest.raises(InvalidRequest, match=match):
            group.change_schedule(before, **bad)  # type: ignore[arg-type]
        assert group.schedule("v1", "o") == before
    group.change_schedule(before, start_time=time(19, 0), max_keep=3)
    after = group.schedule("v1", "o")
    assert (after.start, after.max_keep, after.next_run) == ("2026-01-05T19:00:00", 3, "2026-01-05T19:00:00")


# ----------------------------------------------------------------------------------- the clock


def test_the_simulated_clock_is_kept_in_the_catalog_and_resumed(tmp_path: Path, clock: SimulatedClock) -> None:
    group = make_group(tmp_path / "g", clock)
    assert group.start_simulated_clock() == START
    group.advance_clock(timedelta(days=1, hours=2))
    group.close()
    resumed = SimulatedClock(datetime(2030, 1, 1))
    with Group.open(tmp_path / "g", resumed) as again:
        assert again.start_simulated_clock() == datetime(2026, 1, 6, 12, 0)
        assert again.clock() == datetime(2026, 1, 6, 12, 0)
    with Group.open(tmp_path / "g", SimulatedClock(START)) as again:
        assert again.start_simulated_clock(datetime(2027, 3, 1, 8, 0)) == datetime(2027, 3, 1, 8, 0)
        assert again.catalog.param("simulated_clock") == "2027-03-01T08:00:00"


def test_a_real_clock_cannot_be_moved(tmp_path: Path) -> None:
    with Group.init(tmp_path / "real", member_size=1 * GiB, raid_policy="file") as group:
        assert not group.clock_is_simulated
        with pytest.raises(InvalidRequest, match="real time"):
            group.advance_clock(HOUR)


def test_setting_the_clock_back_lets_schedules_run_again_from_there(group: Group) -> None:
    group.create_schedule("v1", "h", "hourly", time(10, 0))
    group.create_schedule("v1", "o", "once", time(10, 30))
    group.advance_clock(2 * HOUR)
    assert group.set_clock(START) == 0
    assert group.schedule("v1", "h").next_run == "2026-01-05T11:00:00"
    group.advance_clock(HOUR)
    assert len(group.schedule_snapshots(group.schedule("v1", "h"))) == 3
    assert len(group.schedule_snapshots(group.schedule("v1", "o"))) == 1  # a once schedule has run


def test_a_move_past_too_many_runs_is_refused_whole(group: Group) -> None:
    group.create_schedule("v1", "fast", "hourly", time(10, 0), repeat=timedelta(minutes=5))
    with pytest.raises(InvalidRequest, match="smaller steps"):
        group.advance_clock(timedelta(minutes=5 * (MAX_STEPPED_RUNS + 1)))
    assert group.clock() == START
    assert names(group) == []


def test_migration_steps_are_in_order() -> None:
    """Steps written by several hands must stay in version order (migrations.py rule 2)."""
    versions = [version for version, _ in MIGRATIONS]
    assert versions == sorted(set(versions))


# ------------------------------------------------------------------------------- collections


def test_a_collection_schedule_takes_snapshot_collections_and_keeps_max_keep_of_them(group: Group) -> None:
    group.create_volume("v2", 100 * MiB)
    group.create_collection("c1", ["v1", "v2"])
    group.create_schedule("v1", "own", "hourly", time(10, 0), max_keep=10)
    schedule = group.create_collection_schedule("c1", "sets", "hourly", time(10, 0), max_keep=2)
    group.advance_clock(4 * HOUR)
    kept = group.schedule_snapshot_collections(schedule)
    assert [s.name for s in kept] == ["c1-2026-01-05-13:00:00.3", "c1-2026-01-05-14:00:00.4"]
    assert all(s.complete and s.created[11:13] in ("13", "14") for s in kept)
    assert len(group.schedule_snapshots(group.schedule("v1", "own"))) == 4  # the volume's own schedule: untouched
    assert len(names(group, "v2")) == 2
    assert "Snapshot collection c1-2026-01-05-11:00:00.1 of collection c1 deleted by schedule sets (max-keep 2)." in (
        messages(group)
    )
    # A snapshot collection deleted by hand leaves the count; one cut short by a snapshot deleted still counts.
    group.delete_snapshot_collection("c1", kept[0].name)
    group.delete_snapshot("v2", group.snapcol_snapshots(kept[1])[1].name)
    group.advance_clock(HOUR)
    assert [s.name for s in group.schedule_snapshot_collections(schedule)] == [
        "c1-2026-01-05-14:00:00.4", "c1-2026-01-05-15:00:00.5",
    ]  # fmt: skip
    assert [s.name for s in group.collection_schedules("c1")] == ["sets"]
    group.delete_collection("c1")
    assert group.catalog.db.execute("SELECT count(*) FROM schedules WHERE collection_id IS NOT NULL").fetchone() == (0,)


def test_a_collection_schedule_that_cannot_take_its_set_takes_none(group: Group) -> None:
    group.create_volume("bare", 100 * MiB, snap_reserve=0)
    group.create_collection("c1", ["v1", "bare"])
    group.create_collection_schedule("c1", "sets", "daily", time(11, 0))
    group.advance_clock(2 * HOUR)
    assert names(group) == []
    assert any(m.startswith("Schedule sets of collection c1 took no snapshot: Volume bare has no snapshot reserve")
               for m in messages(group))  # fmt: skip
    assert group.collection_schedule("c1", "sets").next_run == "2026-01-06T11:00:00"
