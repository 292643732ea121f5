"""Shared helpers for the Group Manager CLI tests.

Two ways in, both real interfaces:

* the sans-IO ``Session`` (``firmware_model.cli.session``) on a ``Group``
  opened in this process: fast, used for breadth;
* the ``array-sim`` console command of this virtualenv, run as a
  subprocess (one-shot ``array-sim cli --dir D <words>`` and interactive
  sessions fed on stdin): used for the checks that need the real process.

Helpers are handed out as fixtures because pytest runs with
``--import-mode=importlib`` (test modules cannot import each other).

A module marked ``simulated_clock`` (``pytestmark = pytest.mark.simulated_clock``: the schedule
tests) gets its ``group`` on a ``SimulatedClock`` at ``CLOCK_START``, with one file member.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from array_sim import Group
from array_sim.clock import SimulatedClock
from array_sim.member_admin import DEFAULT_RAID_POLICY, FILE_LAYOUT
from array_sim.units import GiB
from firmware_model.cli.session import Session

ARRAY_SIM = Path(sys.executable).parent / "array-sim"
ERROR_PREFIX = "% Error - "
#: Any prompt the CLI prints: ``group-0> `` or ``group-0(volume_v1)> ``.
PROMPT_RE = re.compile(r"[A-Za-z0-9-]+(?:\([^)\n]*\))?> ")
#: Where the clock of a ``simulated_clock`` module's ``group`` starts.
CLOCK_START = datetime(2026, 1, 5, 10, 0)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "simulated_clock: the group fixture runs on a simulated clock at CLOCK_START, on one file member"
    )


def _simulated(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("simulated_clock") is not None


def is_error(lines: list[str]) -> bool:
    return any(line.startswith("% Error") for line in lines)


def key_values(lines: list[str]) -> dict[str, str]:
    """``Key: Value`` lines (``formatoutput off``) as a dict; other lines are ignored."""
    values: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if sep and not key.startswith(" ") and key not in values:
            values[key] = value
        elif line.endswith(":") and " " not in line.strip(":").strip() and line[:-1] not in values:
            values[line[:-1]] = ""
    return values


def table_rows(lines: list[str]) -> list[list[str]]:
    """Rows of a CLI table (after the dashes line), with continuation lines re-joined.

    A continuation line is indented two spaces inside its column; every
    column's pieces are concatenated, as Proxmox/XenRT/Flocker re-join them.
    """
    dashes = next(i for i, line in enumerate(lines) if line.startswith("---"))
    widths = [len(part) for part in lines[dashes].split(" ")]
    starts = [sum(widths[:i]) + i for i in range(len(widths))]
    rows: list[list[str]] = []
    for line in lines[dashes + 1 :]:
        if not line.strip():
            break
        cells = [line[start : start + width].strip() for start, width in zip(starts, widths, strict=True)]
        if line[0] == " " and rows:
            for i, cell in enumerate(cells):
                rows[-1][i] += cell
        else:
            rows.append(cells)
    return rows


class Cli:
    """A sans-IO CLI session with assertion helpers."""

    def __init__(self, group: Group, account: str = "grpadmin", interactive: bool = False) -> None:
        self.group = group
        self.account = account
        self.session = Session(group, account, interactive=interactive)

    @property
    def prompt(self) -> str:
        return self.session.prompt

    def run(self, line: str) -> list[str]:
        out = self.session.execute(line)
        assert isinstance(out, list) and all(isinstance(text, str) for text in out), out
        return out

    def ok(self, line: str) -> list[str]:
        """Run a command that must succeed."""
        out = self.run(line)
        assert not is_error(out), (line, out)
        return out

    def quiet(self, line: str) -> None:
        """Run a command that must succeed and print nothing."""
        out = self.run(line)
        assert out == [], (line, out)

    def error(self, line: str) -> str:
        """Run a command that must be refused with exactly one ``% Error - ...`` line."""
        out = self.run(line)
        assert len(out) == 1 and out[0].startswith(ERROR_PREFIX) and len(out[0]) > len(ERROR_PREFIX), (line, out)
        return out[0]

    def values(self, line: str) -> dict[str, str]:
        return key_values(self.ok(line))

    def rows(self, line: str) -> list[list[str]]:
        return table_rows(self.ok(line))


def group_state(group: Group, account: str = "grpadmin") -> dict[str, object]:
    """Everything a refused command must leave alone: what the CLI shows, and the catalog rows."""
    viewer = Session(group, account, interactive=False)
    commands = ["volume show", "pool show", "member show", "chapuser show", "grpparams show", "cli-settings show"]
    commands += [f"pool select {name} show" for name in sorted(group.pools.values())]
    for vol in group.volume_list():
        base = f"volume select {vol.name}"
        commands += [f"{base} show", f"{base} snapshot show", f"{base} access show"]
        commands += [f"{base} snapshot select {snap.name} show" for snap in group.snapshots_of(vol)]
    state: dict[str, object] = {command: viewer.execute(command) for command in commands}
    tables = [
        name
        for (name,) in group.catalog.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name != "events"
    ]
    for table in tables:
        state[f"table {table}"] = sorted(repr(row) for row in group.catalog.db.execute(f"SELECT * FROM {table}"))
    return state


@pytest.fixture
def raid_policy(request: pytest.FixtureRequest) -> str:
    """The RAID policy of the ``group`` fixture's member: the default (RAID 6 over 12 disks), ``"file"``
    (one sparse file) in a ``simulated_clock`` module.

    Another module that tests no RAID overrides this fixture with ``"file"``.
    """
    return FILE_LAYOUT if _simulated(request) else DEFAULT_RAID_POLICY


@pytest.fixture
def group(tmp_path: Path, raid_policy: str, request: pytest.FixtureRequest) -> Iterator[Group]:
    """A fresh group: pool ``default`` with one 10GB member (of ``raid_policy``), group IP 10.1.2.3; on real
    time, or on a simulated clock at ``CLOCK_START`` in a ``simulated_clock`` module."""
    clock = SimulatedClock(CLOCK_START) if _simulated(request) else datetime.now
    g = Group.init(tmp_path / "g", member_size=10 * GiB, group_ip="10.1.2.3", clock=clock, raid_policy=raid_policy)
    try:
        yield g
    finally:
        g.close()


@pytest.fixture
def make_cli(group: Group) -> Callable[..., Cli]:
    """``make_cli(account=..., interactive=..., script=True)``; ``script`` turns confirmation and formatoutput off."""

    def make(account: str = "grpadmin", interactive: bool = False, script: bool = True) -> Cli:
        cli = Cli(group, account, interactive)
        if script:
            cli.quiet("cli-settings confirmation off")
            cli.quiet("cli-settings formatoutput off")
        return cli

    return make


@pytest.fixture
def cli(make_cli: Callable[..., Cli]) -> Cli:
    """A script-style session (confirmation and formatoutput off) of grpadmin."""
    return make_cli()


@pytest.fixture
def vol(cli: Cli) -> Cli:
    """``cli`` with a volume ``v1`` of 1GB (a module may define its own ``vol``)."""
    cli.ok("volume create v1 1GB")
    return cli


@dataclass
class Console:
    """The ``array-sim`` console command, run as a subprocess."""

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "ARRAY_SIM_DIR"}
        for _ in range(20):
            result = subprocess.run(
                [str(ARRAY_SIM), *args],
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )
            # scripts/test re-runs ``pip install -e`` when pyproject.toml changed, which
            # rewrites the console script; a concurrent run can catch it missing for a moment.
            if not (
                result.returncode in (2, 126, 127) and ("can't open file" in result.stderr or not ARRAY_SIM.exists())
            ):
                return result
            time.sleep(0.25)
        return result

    def init(self, directory: Path, *options: str) -> None:
        result = self.run("init", "--dir", str(directory), *options)
        assert result.returncode == 0, result
        assert result.stderr == ""

    def cli(
        self, directory: Path, *words: str, account: str | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """One-shot ``array-sim cli``; checks the exit status against the output."""
        extra = ["--account", account] if account else []
        result = self.run("cli", "--dir", str(directory), *extra, *words, input=input)
        expected = 1 if is_error(result.stdout.splitlines()) else 0
        assert result.returncode == expected, result
        return result

    def lines(self, directory: Path, *words: str, account: str | None = None) -> list[str]:
        return self.cli(directory, *words, account=account).stdout.splitlines()

    def interactive(self, directory: Path, lines: list[str], account: str | None = None) -> list[tuple[str, list[str]]]:
        """Feed lines to an interactive ``array-sim cli``; returns (prompt, output lines) per prompt shown.

        With stdin not a terminal nothing is echoed, so each command's output
        follows the prompt it was typed at.
        """
        extra = ["--account", account] if account else []
        result = self.run("cli", "--dir", str(directory), *extra, input="".join(f"{line}\n" for line in lines))
        assert result.returncode == 0, result
        assert result.stderr == "", result.stderr
        prompts = list(PROMPT_RE.finditer(result.stdout))
        assert prompts, result.stdout
        chunks = []
        for i, match in enumerate(prompts):
            end = prompts[i + 1].start() if i + 1 < len(prompts) else len(result.stdout)
            chunks.append((match.group(), result.stdout[match.end() : end].splitlines()))
        return chunks


@pytest.fixture(scope="session")
def console() -> Console:
    assert ARRAY_SIM.exists(), f"{ARRAY_SIM} is missing; run scripts/test (it installs the project)"
    return Console()


@pytest.fixture(scope="session")
def helpers() -> object:
    """Module-level helpers for test modules (they cannot import conftest)."""

    class Helpers:
        Cli = Cli
        ERROR_PREFIX = ERROR_PREFIX
        group_state = staticmethod(group_state)
        is_error = staticmethod(is_error)
        key_values = staticmethod(key_values)
        table_rows = staticmethod(table_rows)

    return Helpers
