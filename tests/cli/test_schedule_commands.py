"""``volume select V schedule ...`` and ``simulate clock ...`` through the sans-IO session, and once through a
real ``array-sim serve --clock simulated`` process driven over its control socket. The conftest's ``group`` is
on a simulated clock at 2026-01-05 10:00 (``simulated_clock``), ``vol`` has a volume ``v1``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from array_sim import Group
from array_sim.member_admin import FILE_LAYOUT
from array_sim.units import GiB
from firmware_model.control import RemoteSession

ARRAY_SIM = str(Path(sys.executable).parent / "array-sim")
LIST_HEADER = "Name            Type   NextRun          MaxKeep Snapshots Status"

pytestmark = pytest.mark.simulated_clock


def snapshot_names(cli: Any, volume: str = "v1") -> list[str]:
    return [row[0] for row in cli.rows(f"volume select {volume} snapshot show")]


def test_create_show_and_the_snapshots_an_advance_takes(vol: Any) -> None:
    assert vol.run("volume select v1 schedule create hourly type hourly start-time 10:00 max-keep 3") == [
        "Schedule creation succeeded."
    ]
    vol.ok("volume select v1 schedule create nightly type daily start-time 11:30PM frequency 2days")
    assert vol.rows("volume select v1 schedule show") == [
        ["hourly", "hourly", "2026-01-05 11:00", "3", "0", "enabled"],
        ["nightly", "daily", "2026-01-05 23:30", "10", "0", "enabled"],
    ]
    assert vol.run("simulate clock advance 6h") == ["Clock: simulated", "Time: 2026-01-05 16:00:00", "ScheduledRuns: 6"]
    assert snapshot_names(vol) == ["v1-2026-01-05-14:00:00.4", "v1-2026-01-05-15:00:00.5", "v1-2026-01-05-16:00:00.6"]
    details = vol.values("volume select v1 schedule select hourly show")
    assert {k: details[k] for k in ("Name", "Volume", "Type", "Status", "StartDate", "StartTime", "RepeatInterval",
                                    "MaxKeep", "NextRun", "Snapshots")} == {  # fmt: skip
        "Name": "hourly", "Volume": "v1", "Type": "hourly", "Status": "enabled", "StartDate": "2026-01-05",
        "StartTime": "10:00", "RepeatInterval": "1hours", "MaxKeep": "3", "NextRun": "2026-01-05 17:00",
        "Snapshots": "3",
    }  # fmt: skip
    assert vol.values("volume select v1 schedule show nightly")["Frequency"] == "2days"
    assert vol.values("volume select v1 snapshot show v1-2026-01-05-16:00:00.6")["TimeStamp"] == "2026-01-05 16:00:00"
    events = vol.ok("show events")
    assert any(line.endswith(":Schedule hourly of volume v1 created snapshot v1-2026-01-05-11:00:00.1.")
               and ":2026-01-05T11:00:00:" in line for line in events)  # fmt: skip
    assert any("deleted by schedule hourly (max-keep 3)" in line for line in events)


def test_the_daily_window_and_the_other_spellings(vol: Any) -> None:
    vol.ok("volume select v1 schedule create work type daily start-time 7:00AM end-time 07:00pm"
           " repeat-interval 120mins start-date 01/06/2026 max-keep 20")  # fmt: skip
    values = vol.values("vol sel v1 sch sh work")
    assert (values["StartDate"], values["StartTime"], values["EndTime"], values["RepeatInterval"]) == (
        "2026-01-06", "07:00", "19:00", "2hours"
    )
    vol.ok("simulate clock set 2026-01-07 00:00")
    assert [name[3:19] for name in snapshot_names(vol)] == [f"2026-01-06-{h:02}:00" for h in range(7, 20, 2)]


def test_enable_disable_and_delete(make_cli: Any) -> None:
    cli = make_cli(script=False)
    cli.ok("volume create v1 1GB")
    cli.ok("volume select v1 schedule create h type hourly start-time 10:00 disable")
    assert cli.rows("volume select v1 schedule show")[0][2:] == ["", "10", "0", "disabled"]
    cli.ok("simulate clock advance 3h")
    assert snapshot_names(cli) == []
    cli.quiet("volume select v1 schedule select h enable")
    assert cli.rows("volume select v1 schedule show")[0][2] == "2026-01-05 14:00"
    cli.ok("simulate clock advance 1h")
    assert len(snapshot_names(cli)) == 1
    assert cli.run("volume select v1 schedule select h delete") == []  # asks first
    assert cli.prompt == "Do you really want to delete the schedule h? (y/n) [n] "
    assert cli.run("y") == ["Schedule deletion succeeded."]
    assert cli.rows("volume select v1 schedule show") == []
    assert len(snapshot_names(cli)) == 1  # its snapshot stays
    cli.ok("volume select v1 schedule create h type once start-time 11:00")
    cli.run("volume select v1 schedule delete h")
    assert cli.run("n") == []
    assert len(cli.rows("volume select v1 schedule show")) == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("schedule create s start-time 10:00", "Missing type (once, hourly or daily)."),
        ("schedule create s type hourly", "Missing start-time (HH:MM)."),
        ("schedule create s type weekly start-time 10:00", "Bad schedule type 'weekly'"),
        ("schedule create s type daily start-time 24:00", "Invalid start-time '24:00'"),
        ("schedule create s type daily start-time 13:00PM", "Invalid start-time '13:00PM'"),
        ("schedule create s type daily start-time 10:00 start-date 2026-02-30", "Invalid start-date"),
        ("schedule create s type hourly start-time 10:00 repeat-interval 3weeks", "Invalid repeat-interval"),
        ("schedule create s type hourly start-time 10:00 repeat-interval 2mins", "from 5 minutes to 12 hours"),
        ("schedule create s type daily start-time 10:00 frequency 2", "Invalid frequency '2'"),
        ("schedule create s type daily start-time 10:00 max-keep 0", "Invalid max-keep '0'"),
        ("schedule create s type daily start-time 10:00 max-keep 513", "Invalid max-keep '513'"),
        ("schedule create s type once start-time 10:00 frequency 1days", "A once schedule does not take frequency."),
        ("schedule create s type hourly start-time 10:00 end-time 12:00", "does not take end-time"),
        ("schedule create s type daily start-time 10:00 end-time 12:00", "end-time needs a repeat-interval"),
        ("schedule create s type once start-time 09:00 start-date 2026-01-05", "would never run"),
        ("schedule create s type daily start-time 10:00 end-date 2026-01-04", "end-date must not be before"),
        ("schedule create bad/name type daily start-time 10:00", "Invalid schedule name"),
        ("schedule create taken type daily start-time 10:00", "Schedule taken already exists for volume v1."),
        ("schedule select nope show", "Schedule nope does not exist for volume v1."),
        ("schedule select taken rename x", "Bad command 'rename'"),
    ],
)
def test_refused_requests_change_nothing(vol: Any, helpers: Any, line: str, message: str) -> None:
    vol.ok("volume select v1 schedule create taken type daily start-time 10:00")
    before = helpers.group_state(vol.group)
    assert message in vol.error(f"volume select v1 {line}")
    assert helpers.group_state(vol.group) == before


def test_the_clock_commands(vol: Any) -> None:
    assert vol.run("simulate clock show") == ["Clock: simulated", "Time: 2026-01-05 10:00:00"]
    assert vol.run("simulate clock set 2026-03-01 08:15:30")[1] == "Time: 2026-03-01 08:15:30"
    assert vol.run('simulate clock set "2026-03-01 09:00"')[1] == "Time: 2026-03-01 09:00:00"
    assert vol.run("simulate clock advance 1d12h30m")[1] == "Time: 2026-03-02 21:30:00"
    assert vol.run("volume select v1 snapshot create-now")[1] == "Snapshot name is v1-2026-03-02-21:30:00.1"
    assert "Invalid duration '6 hours'" in vol.error("simulate clock advance '6 hours'")
    assert "Invalid time '2026-13-01 00:00'" in vol.error("simulate clock set 2026-13-01 00:00")
    vol.ok("volume select v1 schedule create fast type hourly start-time 21:30 repeat-interval 5mins")
    assert "smaller steps" in vol.error("simulate clock advance 2w")
    assert vol.run("simulate clock show")[1] == "Time: 2026-03-02 21:30:00"


def test_on_real_time_the_clock_cannot_be_moved(tmp_path: Path, helpers: Any) -> None:
    with Group.init(tmp_path / "real", member_size=1 * GiB, raid_policy=FILE_LAYOUT) as real:
        cli = helpers.Cli(real)
        assert cli.ok("simulate clock show")[0] == "Clock: real time"
        assert "runs on real time" in cli.error("simulate clock advance 6h")


# ------------------------------------------------------------------------- through a real server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """``array-sim serve --clock simulated`` in a process of its own; the CLI reaches it over the control socket."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.directory = directory
        self.log = directory.with_suffix(".log")
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [ARRAY_SIM, "serve", "--dir", str(directory), "--portal", f"127.0.0.1:{_free_port()}",
                 "--clock", "simulated", *options],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not (directory / "control.sock").exists():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def cli(self, *words: str) -> list[str]:
        """``array-sim cli WORDS`` in a process of its own."""
        result = subprocess.run([ARRAY_SIM, "cli", "--dir", str(self.directory), *words],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0 and "% Error" not in result.stdout, result
        return result.stdout.splitlines()

    def run(self, line: str) -> list[str]:
        """One line through the CLI's own client of the control socket, in this process (no start-up cost)."""
        session = RemoteSession(self.directory, "grpadmin", interactive=False)
        try:
            lines = session.execute(line)
        finally:
            session.close()
        assert not any(text.startswith("% Error") for text in lines), lines
        return lines

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log.read_text()


def test_serve_clock_simulated_advanced_over_the_control_socket(tmp_path: Path) -> None:
    directory = tmp_path / "group"
    server = _Server(directory, "--clock-start", "2026-01-05 10:00")
    try:
        server.run("cli-settings formatoutput off")
        server.run("volume create v1 100MB")
        server.run("volume select v1 schedule create hourly type hourly start-time 10:00 max-keep 4")
        assert server.cli("simulate", "clock", "advance", "6h") == [
            "Clock: simulated", "Time: 2026-01-05 16:00:00", "ScheduledRuns: 6",
        ]  # fmt: skip
        listed = server.run("volume select v1 snapshot show")
        assert [line.split()[0] for line in listed[2:]] == [f"v1-2026-01-05-{h}:00:00.{n}" for h, n in
                                                           zip(range(13, 17), range(3, 7), strict=True)]  # fmt: skip
        assert "TimeStamp: 2026-01-05 16:00:00" in server.run("volume select v1 snapshot show v1-2026-01-05-16:00:00.6")
    finally:
        server.stop()
    log = server.log.read_text()
    assert "clock: simulated, at 2026-01-05 10:00:00" in log
    assert "event INFO: Snapshot v1-2026-01-05-12:00:00.2 of volume v1 deleted by schedule hourly (max-keep 4)." in log


@pytest.mark.slow
def test_serve_resumes_the_simulated_clock_after_a_restart(tmp_path: Path) -> None:
    """The simulated time is kept in the group: a restart resumes it, and the schedule goes on from it."""
    directory = tmp_path / "group"
    server = _Server(directory, "--clock-start", "2026-01-05 10:00")
    try:
        server.run("volume create v1 100MB")
        server.run("volume select v1 schedule create hourly type hourly start-time 10:00")
        server.run("simulate clock advance 6h")
    finally:
        server.stop()
    server = _Server(directory)
    try:
        assert server.run("simulate clock show")[1] == "Time: 2026-01-05 16:00:00"
        server.run("simulate clock advance 1h")
        assert server.run("volume select v1 snapshot show")[-1].split()[0] == "v1-2026-01-05-17:00:00.7"
    finally:
        server.stop()


def test_collection_schedules(vol: Any) -> None:
    vol.ok("volume create v2 1GB")
    vol.ok("collection create c1 v1 v2")
    assert vol.run("collection select c1 schedule create sets type hourly start-time 10:00 max-keep 2") == [
        "Schedule creation succeeded."
    ]
    vol.ok("simulate clock advance 3h")
    assert vol.rows("collection select c1 schedule show") == [
        ["sets", "hourly", "2026-01-05 14:00", "2", "2", "enabled"]
    ]
    details = vol.ok("collection select c1 schedule select sets show")
    assert "Collection: c1" in details
    assert details[-2:] == ["c1-2026-01-05-12:00:00.2                 2026-01-05 12:00:00",
                            "c1-2026-01-05-13:00:00.3                 2026-01-05 13:00:00"]  # fmt: skip
    assert [row[0] for row in vol.rows("collection select c1 snapshot show")] == [
        "c1-2026-01-05-12:00:00.2", "c1-2026-01-05-13:00:00.3",
    ]  # fmt: skip
    assert snapshot_names(vol, "v2") == ["v2-2026-01-05-12:00:00.2", "v2-2026-01-05-13:00:00.3"]
    assert "Schedule nope does not exist for collection c1." in vol.error("collection select c1 schedule show nope")
    vol.ok("collection select c1 schedule delete sets")
    assert vol.rows("collection select c1 schedule show") == []
