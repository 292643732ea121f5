"""``?``, ``help``, ``tree`` and tab completion inside ``volume`` (its snapshots, access records, clones,
schedules) and ``simulate``, through the sans-IO session: every word of these commands is in the command
tree now, so what may come next is answered at any position, from the tree and the group's names."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def vol(cli: Any) -> Any:
    """``vol1`` with two snapshots (``a1``, ``a2``), an access record and a schedule; ``vol2`` without."""
    cli.ok("volume create vol1 1GB")
    cli.ok("volume create vol2 1GB")
    for name in ("a1", "a2"):
        taken = cli.ok("volume select vol1 snapshot create-now")[1].removeprefix("Snapshot name is ")
        cli.quiet(f"volume select vol1 snapshot rename {taken} {name}")
    cli.ok("volume select vol1 access create initiator iqn.1993-08.org.debian:01:2227dab76162")
    cli.ok("volume select vol1 schedule create nightly type daily start-time 23:00")
    return cli


def words(lines: list[str]) -> list[str]:
    """The first column of a ``?`` answer."""
    return [line.split()[0] for line in lines]


def test_question_mark_lists_a_volumes_subcommands_with_their_help(vol: Any) -> None:
    said = vol.run("volume select vol1 ?")
    assert words(said) == [
        "show", "offline", "online", "read-only", "read-write", "size", "multihost-access", "description", "clone",
        "access", "snapshot", "snap-depletion", "thin-provision", "iscsi-alias", "pool", "schedule",
        "snap-reserve", "snap-warn", "thin-min-reserve", "thin-warn-threshold", "thin-max-grow", "<cr>",
    ]  # fmt: skip
    assert said[0] == f"{'show':<24}show it, or the initiators connected to it"
    assert said[-1] == f"{'<cr>':<24}run the command"  # volume select vol1 alone: its sub-mode
    assert words(vol.run("volume ?")) == ["create", "delete", "rename", "select", "show"]
    assert words(vol.run("vol sel vol1 sn?")) == ["snapshot", "snap-depletion", "snap-reserve", "snap-warn"]
    assert vol.run("volume select ?") == [f"{'<volume name>':<24}required"]


def test_question_marks_deeper_in_volume(vol: Any) -> None:
    assert words(vol.run("volume select vol1 snapshot ?")) == ["create-now", "delete", "rename", "select", "show"]
    assert words(vol.run("volume select vol1 snapshot select a1 ?")) == [
        "show", "online", "offline", "read-only", "read-write", "clone", "restore", "description", "rename",
    ]  # fmt: skip
    assert words(vol.run("volume select vol1 access ?")) == ["create", "delete", "select", "show"]
    assert "apply-to" in words(vol.run("volume select vol1 access create ?"))
    assert words(vol.run("volume select vol1 multihost-access ?")) == ["enable", "disable"]
    assert words(vol.run("volume select vol1 size 2GB ?")) == ["no-snap", "<cr>"]
    clone_options = words(vol.run("volume select vol1 snapshot select a1 clone c1 ?"))
    assert clone_options[:3] == ["description", "online", "offline"]
    assert words(vol.run("volume select vol1 schedule select nightly ?"))[:3] == ["show", "enable", "disable"]
    assert words(vol.run("volume create v9 1GB snap-depletion ?")) == ["delete-oldest", "volume-offline", "borrow"]
    assert words(vol.run("show volume ?")) == ["<volume", "<cr>"]


def test_a_question_mark_runs_nothing_and_inside_quotes_is_text(vol: Any, helpers: Any) -> None:
    before = helpers.group_state(vol.group)
    vol.run("volume select vol1 offline ?")
    vol.run("volume delete vol2 ?")
    assert helpers.group_state(vol.group) == before
    vol.quiet('volume select vol1 description "ready?"')
    assert vol.values("volume select vol1 show")["Description"] == "ready?"


def test_completion_inside_volume_offers_the_groups_names(vol: Any) -> None:
    complete = vol.session.complete
    assert complete("volume select ") == ["vol1", "vol2"]
    assert complete("volume select vol1 snapshot select ") == ["a1", "a2"]
    assert complete("volume select vol1 snapshot select a") == ["a1", "a2"]
    assert complete("volume select vol2 snapshot select ") == []
    assert complete("volume select vol1 snapshot delete a2") == ["a2"]
    assert complete("volume select vol1 sn") == ["snapshot", "snap-depletion", "snap-reserve", "snap-warn"]
    assert complete("volume select vol1 multihost-access ") == ["enable", "disable"]
    assert complete("volume select vol1 access delete ") == ["1"]
    assert complete("volume select vol1 access create authmethod ") == ["chap", "none"]
    assert complete("volume select vol1 schedule select ") == ["nightly"]
    assert complete("volume select vol1 pool ") == ["default"]
    assert complete("volume select nosuch snapshot select ") == []  # nothing to offer, no error
    assert complete("show volume v") == ["vol1", "vol2"]


def test_completion_and_question_marks_in_a_volumes_sub_mode(vol: Any) -> None:
    vol.quiet("volume select vol1")
    assert vol.prompt == "group-0(volume_vol1)> "
    assert vol.session.complete("snapshot select ") == ["a1", "a2"]
    assert words(vol.run("snapshot ?")) == ["create-now", "delete", "rename", "select", "show"]
    vol.quiet("exit")


def test_help_and_tree_reach_inside_volume_and_simulate(vol: Any) -> None:
    assert vol.run("help volume select size") == [
        "volume select <volume name> size <size> [no-snap]",
        "resize it (a snapshot is taken first, unless no-snap)",
        f"  {'no-snap':<22}take no snapshot first",
    ]
    assert vol.run("help vol sel multihost")[0] == "volume select <volume name> multihost-access enable|disable"
    assert vol.run("help simulate member select power")[0] == "simulate member select <member name> power on|off"
    tree = vol.run("tree")
    assert "    snapshot" in tree and "      create-now [description <description>]" in tree
    assert "      power on|off" in tree and "    advance <duration (6h, 90m, 1d12h)>" in tree


def test_question_marks_and_completion_inside_simulate(vol: Any) -> None:
    assert words(vol.run("simulate ?")) == ["member", "clock"]
    assert words(vol.run("simulate member select member-1 ?")) == ["disk", "verify", "power", "eth"]
    assert words(vol.run("simulate member select member-1 disk 0 ?")) == ["fail", "replace", "bad-sectors"]
    assert words(vol.run("simulate member select member-1 power ?")) == ["on", "off"]
    assert words(vol.run("simulate member add m2 ?")) == ["disks", "disk-size", "pool", "<cr>"]
    assert words(vol.run("simulate clock ?")) == ["show", "advance", "set"]
    complete = vol.session.complete
    assert complete("sim") == ["simulate"]
    assert complete("simulate member select ") == ["member-1"]
    assert complete("simulate member select member-1 eth 0 ") == ["up", "down"]
    assert complete("simulate clock a") == ["advance"]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        # a keyword argument left out is an incomplete command, as before the tree
        ("volume select vol1 multihost-access", "Incomplete command; expected one of: enable, disable."),
        ("volume create v9 1GB snap-depletion", "Incomplete command; expected one of: delete-oldest, volume-offline,"),
        ("simulate member select member-1 power", "Incomplete command; expected one of: on, off."),
        ("simulate member select member-1 power sideways", "Bad power state 'sideways'; expected one of: on, off."),
        ("simulate member select member-1 disk 0 explode", "Bad fault 'explode'; expected one of: fail, replace,"),
        ("simulate volume", "Bad object 'volume'; expected one of: member, clock."),
        ("volume select vol1 size 2GB now", "Bad option 'now'; expected one of: no-snap."),
    ],
)
def test_refusals_in_the_converted_nouns(vol: Any, line: str, error: str) -> None:
    assert vol.error(line).startswith(f"% Error - {error}")
