"""The ``array-sim`` console command as a real process: init, one-shot commands, interactive sessions.

Each process start costs a few hundred milliseconds, so set-up and checks that
are not about the process itself go through an in-process session on the
group between the processes (the group is closed again before the next one).
The fast loop runs the exit codes, one verbatim word and the interactive
session; the tests that start more processes are marked slow (the whole suite
runs them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from array_sim import Group
from array_sim.units import GiB

BANNER_LINE = "Welcome to Group Manager"


@pytest.fixture
def gdir(tmp_path: Path) -> Path:
    """A group directory (created in this process; ``array-sim init`` has its own test)."""
    directory = tmp_path / "g"
    Group.init(directory, member_size=10 * GiB).close()
    return directory


@pytest.fixture
def local(gdir: Path, helpers: Any) -> Any:
    """``with local() as cli:`` a script-style in-process session (another account, so grpadmin's settings stay)."""

    @contextmanager
    def opened(account: str = "admin2") -> Iterator[Any]:
        group = Group.open(gdir)
        try:
            cli = helpers.Cli(group, account)
            cli.quiet("cli-settings confirmation off")
            cli.quiet("cli-settings formatoutput off")
            yield cli
        finally:
            group.close()

    return opened


@pytest.mark.slow
def test_init_creates_a_group_once(tmp_path: Path, console: Any, helpers: Any) -> None:
    directory = tmp_path / "new"
    result = console.run(
        "init", "--dir", str(directory), "--name", "eql", "--member-size", "5GB", "--group-ip", "10.9.8.7"
    )
    assert result.returncode == 0, result
    assert result.stdout.startswith("Group eql created in ")
    again = console.run("init", "--dir", str(directory))
    assert again.returncode != 0
    assert "already exists" in again.stderr and again.stderr.startswith("array-sim: ")
    assert "Traceback" not in again.stderr
    assert console.run("init", "--dir", str(directory), "--if-missing").returncode == 0
    with Group.open(directory) as group:
        cli = helpers.Cli(group)
        assert cli.prompt == "eql> "
        assert cli.ok("grpparams show")[1].startswith("Group-Name: eql ")
        assert "Group-Ipaddress: 10.9.8.7" in cli.ok("show")
        assert cli.ok("member show")[2].split()[4] == "5GB"  # 341 pages of 15MB: 4.995GB
    bad = console.run("init", "--dir", str(tmp_path / "bad"), "--member-size", "1XB")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and bad.stderr.startswith("array-sim: ")


def test_one_shot_success_and_error_exit_codes(gdir: Path, console: Any, local: Any, helpers: Any) -> None:
    ok = console.cli(gdir, "volume", "create", "v1", "1G")
    assert ok.returncode == 0 and ok.stderr == ""
    assert ok.stdout.splitlines()[0] == "Volume creation succeeded."
    assert ok.stdout.splitlines()[1].startswith("iSCSI target name is iqn.2001-05.com.equallogic:0-8a0906-")
    with local() as cli:
        cli.ok("volume select v1 snapshot create-now")
        before = helpers.group_state(cli.group, "grpadmin")
    for words in (["volume", "create", "v1", "1G"], ["bogus"], ["volume", "create", "v2", "1XB"],
                  ['volume select v1 description "open']):  # fmt: skip
        bad = console.cli(gdir, *words)
        assert bad.returncode == 1
        lines = bad.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("% Error - "), lines
        assert "Traceback" not in bad.stderr
    with local() as cli:
        assert helpers.group_state(cli.group, "grpadmin") == before
    # A command that prints nothing succeeds quietly.
    quiet = console.cli(gdir, "volume", "select", "v1", "offline")
    assert (quiet.returncode, quiet.stdout) == (0, "")


@pytest.mark.slow
def test_one_shot_words_and_whole_lines(gdir: Path, console: Any, local: Any) -> None:
    with local() as cli:
        cli.ok("volume create v1 1G")
    # Several words, one of them with blanks.
    assert console.cli(gdir, "volume", "select", "v1", "description", "two words").stdout == ""
    with local() as cli:
        assert cli.values("volume select v1 show")["Description"] == "two words"
    # The whole line as one word, quotes included: how the Cinder driver's text arrives.
    assert console.cli(gdir, 'vol sel v1 description "OpenStack Managed"').stdout == ""
    with local() as cli:
        assert cli.values("volume select v1 show")["Description"] == "OpenStack Managed"


@pytest.mark.parametrize(
    "text", [pytest.param("it's", marks=pytest.mark.slow), 'say "hi"', pytest.param("50% off", marks=pytest.mark.slow)]
)
def test_one_shot_words_are_taken_verbatim(gdir: Path, console: Any, local: Any, text: str) -> None:
    """Each COMMAND word of ``array-sim cli`` is one argument, whatever quote characters it holds."""
    with local() as cli:
        cli.ok("volume create v1 1G")
    result = console.cli(gdir, "volume", "select", "v1", "description", text)
    assert result.stdout == "", result.stdout
    with local() as cli:
        assert cli.values("volume select v1 show")["Description"] == text


@pytest.mark.slow
def test_one_shot_confirmation_reads_the_answer_from_stdin(gdir: Path, console: Any, local: Any, helpers: Any) -> None:
    with local() as cli:
        cli.ok("volume create v1 1G")
        cli.quiet("volume select v1 offline")
    for answer in ("n\n", "", "no thanks\n"):
        # Not confirmed (answered no, or stdin at its end as in a script): it fails, visibly (review.md A3).
        result = console.cli(gdir, "volume", "delete", "v1", input=answer)
        assert result.stdout.startswith("Do you really want to delete the volume v1? (y/n) [n] "), result.stdout
        assert "Volume deletion succeeded." not in result.stdout
        assert result.stdout.splitlines()[-1].startswith("% Error - Not confirmed, nothing was done"), result.stdout
        assert "--yes" in result.stdout
        assert result.returncode == 1
        with local() as cli:
            assert "v1" in [row[0] for row in cli.rows("volume show")]
    result = console.cli(gdir, "volume", "delete", "v1", input="y\n")
    assert result.stdout.startswith("Do you really want to delete the volume v1? (y/n) [n] ")
    assert result.stdout.splitlines()[-1].endswith("Volume deletion succeeded.")
    with local() as cli:
        assert cli.rows("volume show") == []
        cli.ok("volume create v2 1G")
        cli.quiet("volume select v2 offline")
        # The account in the next process has confirmation off: nothing is asked.
        helpers.Cli(cli.group, "grpadmin").quiet("cli-settings confirmation off")
    assert console.cli(gdir, "volume", "delete", "v2").stdout == "Volume deletion succeeded.\n"


@pytest.mark.slow
def test_one_shot_yes_answers_the_question(gdir: Path, console: Any, local: Any) -> None:
    """``array-sim cli --yes`` confirms without reading stdin (a script's /dev/null)."""
    with local() as cli:
        cli.ok("volume create v1 1G")
        cli.quiet("volume select v1 offline")
    result = console.cli(gdir, "--yes", "volume", "delete", "v1")
    assert result.stdout == "Do you really want to delete the volume v1? (y/n) [n] y\nVolume deletion succeeded.\n"
    assert result.returncode == 0
    with local() as cli:
        assert cli.rows("volume show") == []
    # A refusal stays a refusal with --yes (exit 1, one error line).
    refused = console.cli(gdir, "--yes", "volume", "delete", "v1")
    assert refused.returncode == 1 and refused.stdout.startswith("% Error - "), refused


@pytest.mark.slow
def test_cli_settings_persist_across_processes_per_account(gdir: Path, console: Any, local: Any) -> None:
    chunks = console.interactive(gdir, ["cli-settings formatoutput off", "cli-settings confirmation off"])
    assert [out for _, out in chunks] == [[], [], [""]]  # end of input: a final newline
    later = console.lines(gdir, "cli-settings", "show")
    assert "formatoutput: off" in later and "confirmation: off" in later and "paging: on" in later
    # Another account has its own settings, and they shape its output.
    with local() as cli:
        cli.ok("volume create v1 1G")
    formatted = console.lines(gdir, "volume", "select", "v1", "show", account="monitor")
    assert formatted[1].startswith("Name: v1 ") and formatted[1].endswith("Size: 1GB")
    plain = console.lines(gdir, "volume", "select", "v1", "show")
    assert plain[1:3] == ["Name: v1", "Size: 1GB"]


def test_interactive_session_on_stdin(gdir: Path, console: Any) -> None:
    chunks = console.interactive(
        gdir,
        [
            "cli-settings formatoutput off",
            "volume create v1 1G",
            "volume select v1",
            "show",
            "show connections",
            "offline",
            "exit",
            "volume delete v1",
            "n",
            "volume show",
            "volume delete v1",
            "y",
            "volume show",
            "bogus",
            "whoami",
            "logout",
            "y",
        ],
        account="operator",
    )
    prompts = [prompt for prompt, _ in chunks]
    assert prompts == ["group-0> "] * 3 + ["group-0(volume_v1)> "] * 4 + ["group-0> "] * 7
    outputs = [out for _, out in chunks]
    assert outputs[0] == []
    assert outputs[1][0] == "Volume creation succeeded."
    assert outputs[2] == []
    assert outputs[3][1] == "Name: v1"
    assert outputs[4][0].startswith("Initiator Address")
    assert outputs[5] == [] and outputs[6] == []
    assert outputs[7] == ["Do you really want to delete the volume v1? (y/n) [n] "]
    assert outputs[8][2].startswith("v1 ") and " offline " in outputs[8][2]
    assert outputs[9] == ["Do you really want to delete the volume v1? (y/n) [n] Volume deletion succeeded."]
    assert outputs[10][2:] == []
    assert len(outputs[11]) == 1 and outputs[11][0].startswith("% Error - ")
    assert outputs[12] == ["operator"]
    assert outputs[13] == ["Do you really want to logout? (y/n) [n] "]


def test_interactive_banner_and_end_of_input(gdir: Path, console: Any) -> None:
    result = console.run("cli", "--dir", str(gdir), input="whoami\n")
    assert result.returncode == 0
    assert BANNER_LINE in result.stdout.splitlines()[1]
    assert result.stdout.endswith("group-0> \n")  # end of input ends the session
    assert result.stdout.count("group-0> ") == 2


@pytest.mark.slow
def test_cli_without_a_group(tmp_path: Path, console: Any) -> None:
    missing = tmp_path / "nothing-here"
    for words in (["volume", "show"], []):
        result = console.run("cli", "--dir", str(missing), *words, input="volume show\n")
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert "no group" in result.stderr and "array-sim init" in result.stderr, result.stderr
        assert result.stdout == ""
    assert not missing.exists()


@pytest.mark.slow
def test_cli_on_a_group_open_in_another_process(gdir: Path, console: Any) -> None:
    with Group.open(gdir):
        for words in (["volume", "show"], []):
            result = console.run("cli", "--dir", str(gdir), *words, input="volume show\n")
            assert result.returncode != 0
            assert "open in another process" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
            assert result.stdout == ""
    # Released: usable again.
    assert console.lines(gdir, "whoami") == ["grpadmin"]


@pytest.mark.slow
def test_refused_commands_change_nothing_across_processes(gdir: Path, console: Any, local: Any, helpers: Any) -> None:
    with local() as cli:
        cli.ok("volume create v1 1G")
        cli.ok("volume select v1 snapshot create-now")
        helpers.Cli(cli.group, "grpadmin").quiet("cli-settings confirmation off")
        before = helpers.group_state(cli.group)
    for words in (
        ["volume", "delete", "v1"],
        ["volume", "select", "v1", "size", "500MB"],
        ["volume", "create", "big", "20G"],
    ):
        result = console.cli(gdir, *words)
        assert result.returncode == 1
        assert len(result.stdout.splitlines()) == 1 and result.stdout.startswith("% Error - ")
    with local() as cli:
        assert helpers.group_state(cli.group) == before
