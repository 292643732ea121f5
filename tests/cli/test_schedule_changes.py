"""``schedule select S <setting> <value>``: a schedule changed after its creation, for a volume and a
collection, through the sans-IO session on a simulated clock, and once through the ``array-sim cli``
console command (the parsing: firmware_model/cli/commands/schedule.py; the change:
array_sim/schedule_admin.py ``change_schedule``). The conftest's ``group`` is on a simulated clock at
2026-01-05 10:00 (``simulated_clock``), ``vol`` has a volume ``v1``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.simulated_clock


def snapshot_times(cli: Any, volume: str = "v1") -> list[str]:
    """``hh:mm`` of each snapshot of the volume, from its default name."""
    return [row[0][14:19] for row in cli.rows(f"volume select {volume} snapshot show")]


def details(cli: Any, schedule: str = "h") -> dict[str, str]:
    return cli.values(f"volume select v1 schedule select {schedule} show")


def test_a_new_start_time_moves_the_runs(vol: Any) -> None:
    vol.ok("volume select v1 schedule create h type hourly start-time 10:30")
    assert vol.run("volume select v1 schedule select h start-time 11:15") == []
    assert (details(vol)["StartTime"], details(vol)["NextRun"]) == ("11:15", "2026-01-05 11:15")
    vol.ok("simulate clock advance 3h")
    assert snapshot_times(vol) == ["11:15", "12:15"]
    vol.quiet("vol sel v1 sch sel h repeat 30mins")  # abbreviated, as every keyword
    assert details(vol)["RepeatInterval"] == "30mins"
    assert details(vol)["NextRun"] == "2026-01-05 13:15"  # from its next run after now
    vol.ok("simulate clock advance 1h")
    assert snapshot_times(vol)[2:] == ["13:15", "13:45"]


def test_a_daily_window_and_frequency_changed(vol: Any) -> None:
    vol.ok("volume select v1 schedule create d type daily start-time 07:00")
    vol.quiet("volume select v1 schedule select d repeat-interval 4hours")
    vol.quiet("volume select v1 schedule select d end-time 15:00")
    vol.quiet("volume select v1 schedule select d frequency 2days")
    vol.quiet("volume select v1 schedule select d start-date 2026-01-06")
    values = details(vol, "d")
    assert (values["StartDate"], values["RepeatInterval"], values["EndTime"], values["Frequency"]) == (
        "2026-01-06", "4hours", "15:00", "2days"
    )
    vol.ok("simulate clock set 2026-01-09 00:00")
    assert [row[0][3:19] for row in vol.rows("volume select v1 snapshot show")] == [
        "2026-01-06-07:00", "2026-01-06-11:00", "2026-01-06-15:00",
        "2026-01-08-07:00", "2026-01-08-11:00", "2026-01-08-15:00",
    ]  # fmt: skip
    vol.quiet("volume select v1 schedule select d end-date 2026-01-10")
    assert details(vol, "d")["EndDate"] == "2026-01-10"
    vol.ok("simulate clock set 2026-01-20 00:00")
    assert len(vol.rows("volume select v1 snapshot show")) == 9  # the 10th ran, then no more


def test_a_lower_max_keep_counts_the_snapshots_already_made(vol: Any) -> None:
    vol.ok("volume select v1 schedule create h type hourly start-time 11:00 max-keep 5")
    vol.ok("simulate clock advance 5h")
    assert snapshot_times(vol) == ["11:00", "12:00", "13:00", "14:00", "15:00"]
    vol.quiet("volume select v1 schedule select h max-keep 2")
    assert details(vol)["MaxKeep"] == "2" and details(vol)["NextRun"] == "2026-01-05 16:00"
    assert len(snapshot_times(vol)) == 5  # nothing is deleted until its next run
    vol.ok("simulate clock advance 1h")
    assert snapshot_times(vol) == ["15:00", "16:00"]


def test_a_disabled_schedule_stays_disabled_when_changed(vol: Any) -> None:
    vol.ok("volume select v1 schedule create h type hourly start-time 11:00 disable")
    vol.quiet("volume select v1 schedule select h start-time 10:45")
    assert (details(vol)["Status"], details(vol)["NextRun"]) == ("disabled", "none (disabled)")
    vol.quiet("volume select v1 schedule select h enable")
    assert details(vol)["NextRun"] == "2026-01-05 10:45"


def test_a_once_schedule_that_ran_runs_again_at_its_new_time(vol: Any) -> None:
    vol.ok("volume select v1 schedule create o type once start-time 11:00")
    vol.ok("simulate clock advance 2h")
    assert details(vol, "o")["NextRun"] == "none"
    vol.quiet("volume select v1 schedule select o start-time 13:00")
    vol.ok("simulate clock advance 2h")
    assert snapshot_times(vol) == ["11:00", "13:00"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("schedule select h frequency 2days", "A hourly schedule does not take frequency."),
        ("schedule select h end-time 12:00", "A hourly schedule does not take end-time."),
        ("schedule select h repeat-interval 13hours", "from 5 minutes to 12 hours"),
        ("schedule select h end-date 2026-01-04", "The end-date must not be before the start-date."),
        ("schedule select h start-time 25:00", "Invalid start-time '25:00'"),
        ("schedule select h max-keep 0", "Invalid max-keep '0'"),
        ("schedule select h max-keep", "Missing number of snapshots."),
        ("schedule select h start-time 10:00 max-keep 3", "Unexpected argument 'max-keep'."),
        ("schedule select o start-date 2026-01-04", "Schedule o would never run: its last run time has passed."),
        ("schedule select o repeat-interval 1hours", "A once schedule does not take repeat-interval."),
        ("schedule select d end-time 12:00", "end-time needs a repeat-interval"),
        ("schedule select nope max-keep 3", "Schedule nope does not exist for volume v1."),
        ("schedule select h type daily", "Bad command 'type'"),
    ],
)
def test_refused_changes_change_nothing(vol: Any, helpers: Any, line: str, message: str) -> None:
    vol.ok("volume select v1 schedule create h type hourly start-time 10:00")
    vol.ok("volume select v1 schedule create o type once start-time 18:00")
    vol.ok("volume select v1 schedule create d type daily start-time 07:00")
    before = helpers.group_state(vol.group)
    assert message in vol.error(f"volume select v1 {line}")
    assert helpers.group_state(vol.group) == before


def test_a_collections_schedule_is_changed_the_same_way(vol: Any) -> None:
    vol.ok("volume create v2 1GB")
    vol.ok("collection create db v1 v2")
    vol.ok("collection select db schedule create h type hourly start-time 10:30 max-keep 3")
    vol.quiet("collection select db schedule select h start-time 12:00")
    vol.quiet("collection select db schedule select h max-keep 1")
    values = vol.values("collection select db schedule select h show")
    assert (values["Collection"], values["StartTime"], values["MaxKeep"]) == ("db", "12:00", "1")
    vol.ok("simulate clock advance 4h")
    assert [row[0][3:19] for row in vol.rows("collection select db snapshot show")] == ["2026-01-05-14:00"]
    assert "Incomplete command" in vol.error("collection select db schedule select h")


def test_question_mark_and_completion_offer_the_settings(vol: Any) -> None:
    vol.ok("volume select v1 schedule create h type hourly start-time 10:30")
    offered = [line.split()[0] for line in vol.run("volume select v1 schedule select h ?")]
    assert offered == ["show", "enable", "disable", "delete", "start-time", "start-date", "end-date", "end-time",
                       "repeat-interval", "frequency", "max-keep"]  # fmt: skip
    assert vol.session.complete("volume select v1 schedule select h m") == ["max-keep"]
    assert vol.session.complete("volume select v1 schedule create x type ") == ["once", "hourly", "daily"]


def test_through_the_console_command(tmp_path: Path, console: Any, helpers: Any) -> None:
    """The real ``array-sim cli`` process, one command each, on the group's real-time clock."""
    directory = tmp_path / "g"
    console.init(directory)
    console.lines(directory, "cli-settings", "formatoutput", "off")  # one Key: Value a line
    console.lines(directory, "volume", "create", "v1", "1GB")
    console.lines(directory, "volume", "select", "v1", "schedule", "create", "n", "type", "daily", "start-time",
                  "23:00", "start-date", "2030-01-01")  # fmt: skip
    assert console.lines(directory, "volume select v1 schedule select n start-time 06:30") == []
    assert console.lines(directory, "volume select v1 schedule select n max-keep 7") == []
    values = helpers.key_values(console.lines(directory, "volume select v1 schedule select n show"))
    assert (values["StartTime"], values["MaxKeep"], values["NextRun"]) == ("06:30", "7", "2030-01-01 06:30")
    refused = console.cli(directory, "volume select v1 schedule select n end-time 12:00")
    assert refused.returncode == 1 and refused.stdout.startswith("% Error - end-time needs a repeat-interval")
