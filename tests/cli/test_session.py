"""Session behaviour: prompt, abbreviations, sub-command mode, confirmations, terminal wrapping."""

from __future__ import annotations

from typing import Any

import pytest

from array_sim.member_admin import FILE_LAYOUT


@pytest.fixture
def raid_policy() -> str:
    """No RAID is tested here: the ``group`` fixture's member is one sparse file (quicker to make, flush and delete)."""
    return FILE_LAYOUT


def test_prompt_and_empty_lines(cli: Any) -> None:
    assert cli.prompt == "group-0> "
    assert cli.run("") == []
    assert cli.run("   ") == []
    assert cli.prompt == "group-0> "


@pytest.mark.parametrize(
    ("short", "full"),
    [
        ("vol sel v1 show", "volume select v1 show"),
        ("vol sel v1 sh", "volume select v1 show"),
        ("VOLUME SHOW", "volume show"),
        ("vol show", "volume show"),
        ("vo sho", "volume show"),
        ("vol sel v1 snapsh sh", "volume select v1 snapshot show"),
        ("vol sel v1 acc sh", "volume select v1 access show"),
        ("po sel default sh", "pool select default show"),
        ("grp sh", "grpparams show"),
        ("cli-s sh", "cli-settings show"),
        ("mem sh", "member show"),
        ("chap sh", "chapuser show"),
        ("who", "whoami"),
    ],
)
def test_abbreviations(cli: Any, short: str, full: str) -> None:
    cli.ok("volume create v1 1G")
    assert cli.ok(short) == cli.ok(full)


def test_abbreviated_create_and_settings(cli: Any) -> None:
    assert cli.ok("vol cr v2 1G thin-p")[0] == "Volume creation succeeded."
    cli.quiet("vol sel v2 snap-res 50")
    cli.quiet("vol sel v2 multi en")
    cli.quiet("vol sel v2 off")
    values = cli.values("volume select v2 show")
    assert (values["Thin-Provision"], values["Snap-Reserve"], values["MultiHostAccess"], values["Status"]) == (
        "enabled", "50%", "enabled", "offline",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("line", "choices"),
    [
        ("s", ["stty", "show"]),
        ("vol s", ["select", "show"]),
        ("volume select v1 s", ["show", "size", "snapshot"]),
        ("volume select v1 snap", ["snapshot", "snap-depletion"]),
        ("volume select v1 o", ["offline", "online"]),
        ("volume select v1 read", ["read-only", "read-write"]),
        ("grpparams def-thin", ["def-thin-min-reserve", "def-thin-growth-warn", "def-thin-growth-max"]),
    ],
)
def test_ambiguous_abbreviations(cli: Any, line: str, choices: list[str]) -> None:
    cli.ok("volume create v1 1G")
    error = cli.error(line)
    assert "Ambiguous" in error
    for choice in choices:
        assert choice in error


def test_sub_command_mode(cli: Any) -> None:
    cli.ok("volume create v1 1G")
    cli.ok("volume create v2 1G")
    assert cli.run("volume select v1") == []
    assert cli.prompt == "group-0(volume_v1)> "
    assert cli.values("show")["Name"] == "v1"
    assert cli.ok("show connections")[0].startswith("Initiator Address")
    cli.quiet("offline")
    cli.quiet("description relative")
    assert cli.run("access create ipaddress 10.0.0.9") == ["Access control record created with ID 1."]
    assert cli.ok("snapshot create-now")[0] == "Snapshot creation succeeded."
    assert cli.prompt == "group-0(volume_v1)> "
    assert cli.run("exit") == []
    assert cli.prompt == "group-0> "
    values = cli.values("volume select v1 show")
    assert (values["Status"], values["Description"], values["Snapshots"]) == ("offline", "relative", "1")
    assert cli.values("volume select v2 show")["Status"] == "online"  # only v1 was touched
    # Abbreviated, and an error inside the mode keeps the mode.
    assert cli.run("vol sel v2") == []
    assert cli.prompt == "group-0(volume_v2)> "
    assert "Bad command" in cli.error("bogus")
    assert cli.prompt == "group-0(volume_v2)> "
    assert cli.run("exit") == []
    assert cli.prompt == "group-0> "
    assert "does not exist" in cli.error("volume select nosuch")
    assert cli.prompt == "group-0> "


@pytest.mark.parametrize(
    ("command", "question"),
    [
        ("volume delete v1", "Do you really want to delete the volume v1? (y/n) [n] "),
        ("volume select v1 snapshot delete s1", "Do you really want to delete the snapshot s1? (y/n) [n] "),
        ("volume select v1 access delete 1", "Do you really want to delete the access control record 1? (y/n) [n] "),
        ("volume select v1 snapshot select s1 restore",
         "Do you really want to restore the volume v1 from snapshot s1? (y/n) [n] "),
        ("chapuser delete bob", "Do you really want to delete the CHAP user bob? (y/n) [n] "),
    ],
)  # fmt: skip
def test_confirmations(make_cli: Any, helpers: Any, command: str, question: str) -> None:
    cli = make_cli(script=False)
    cli.quiet("cli-settings formatoutput off")
    cli.ok("volume create v1 1G")
    cli.ok("volume select v1 snapshot create-now description first")
    snap = cli.rows("volume select v1 snapshot show")[0][0]
    cli.quiet(f"volume select v1 snapshot rename {snap} s1")
    cli.ok("volume select v1 access create ipaddress 10.0.0.1")
    cli.ok("chapuser create bob")
    cli.quiet("volume select v1 offline")
    before = helpers.group_state(cli.group)
    for answer in ("n", "", "no", "maybe"):
        assert cli.run(command) == []
        assert cli.prompt == question
        assert cli.session.asking
        assert cli.run(answer) == []
        assert cli.prompt == "group-0> "
        assert helpers.group_state(cli.group) == before
    assert cli.run(command) == []
    out = cli.run("y")
    assert not helpers.is_error(out)
    assert helpers.group_state(cli.group) != before


def test_confirmation_off_does_not_ask(cli: Any) -> None:
    cli.ok("volume create v1 1G")
    cli.quiet("volume select v1 offline")
    assert cli.run("volume delete v1") == ["Volume deletion succeeded."]
    assert not cli.session.asking


def test_logout(make_cli: Any) -> None:
    cli = make_cli(script=False)
    assert cli.run("logout") == []
    assert cli.prompt == "Do you really want to logout? (y/n) [n] "
    assert cli.run("n") == []
    assert not cli.session.closed
    cli.run("logout")
    cli.run("y")
    assert cli.session.closed
    quick = make_cli()
    assert quick.run("logout") == []
    assert quick.session.closed


def test_exit_at_top_level_logs_out(cli: Any) -> None:
    assert cli.run("exit") == []
    assert cli.session.closed


def test_non_interactive_sessions_never_wrap(make_cli: Any) -> None:
    cli = make_cli(interactive=False)
    cli.quiet("stty columns 20")
    out = cli.ok("volume create a-very-long-volume-name-for-wrapping 1G")
    assert out[1].startswith("iSCSI target name is iqn.") and out[1].endswith("-a-very-long-volume-name-for-wrapping.")


def test_hardwrap_off_and_wide_terminals_do_not_wrap(make_cli: Any) -> None:
    cli = make_cli(interactive=True)
    cli.quiet("stty columns 255")
    out = cli.ok("volume create a-very-long-volume-name-for-wrapping 1G")
    assert len(out) == 2 and out[1].endswith("-a-very-long-volume-name-for-wrapping.")
    cli.quiet("stty columns 40")
    cli.quiet("stty hardwrap off")
    plain = cli.ok("volume select a-very-long-volume-name-for-wrapping show")
    assert any(len(line) > 40 for line in plain)


def test_hardwrap_wraps_at_the_terminal_width_like_a_terminal(make_cli: Any) -> None:
    """With hardwrap on, a line longer than the terminal continues on the next line at exactly the width.

    ps-cli.md 2.1: "With hardwrap on, long lines wrap at the terminal width"; the Flocker
    driver re-joins an ``iSCSI Name:`` value that "trailed into next line". A terminal
    breaks at the column, not at blanks or hyphens, and drops nothing.
    """
    cli = make_cli(interactive=True)
    cli.quiet("stty hardwrap off")
    cli.ok("volume create a-very-long-volume-name-for-wrapping 1G")
    plain = cli.ok("volume select a-very-long-volume-name-for-wrapping show")
    cli.quiet("stty hardwrap on")
    for columns in (80, 40):
        cli.quiet(f"stty columns {columns}")
        expected = [line[i : i + columns] for line in plain for i in range(0, max(len(line), 1), columns)]
        assert cli.ok("volume select a-very-long-volume-name-for-wrapping show") == expected
