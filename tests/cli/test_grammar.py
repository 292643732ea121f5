"""The command grammar (firmware_model/cli/grammar.py) on a small tree of its own: parsing, ``?``, help,
tree and completion, pure (no group)."""

from __future__ import annotations

from typing import Any

import pytest

from firmware_model.cli.grammar import (
    Arg,
    Node,
    Option,
    choice,
    choice_arg,
    complete,
    help_lines,
    parse,
    tree_lines,
    usage,
    what_next,
)
from firmware_model.cli.words import CliError


def ran(session: Any, args: dict[str, Any]) -> list[str]:
    return [repr(sorted(args.items()))]


def names(session: Any, args: dict[str, Any]) -> list[str]:
    return ["vol1", "vol2", "other"]


NAME = Arg("volume", "volume name", choices=names)
TREE = Node("", "the test tree", children=(
    Node("volume", "volumes", children=(
        Node("create", "create a volume", args=(Arg("volume", "volume name"), Arg("size", "size", int)), options=(
            Option("thin-provision", "thin", "thin"),
            Option("online", "online", "online"),
            Option("offline", "offline", "online", const=False),
            Option("description", "a description", "description", Arg("description", "description")),
        ), run=ran),
        Node("show", "list or show", args=(Arg("volume", "volume name", optional=True, choices=names),), run=ran),
        Node("select", "work on a volume", args=(NAME,), mode=lambda s, a: f"volume_{a['volume']}", children=(
            Node("show", "show it", options=(Option("connections", "sessions", "connections"),), run=ran),
            Node("online", "set online", run=ran, preset={"online": True}),
            Node("offline", "set offline", run=ran, preset={"online": False}),
            Node("size", "resize", args=(Arg("size", "size", int),), options=(Option("no-snap", "no snap", "no_snap"),),
                 run=ran),
        )),
    )),
    Node("cli-settings", "settings", children=(
        Node("confirmation", "ask first", args=(Arg("value", "on or off", choice(["on", "off"], "value")),), run=ran),
    )),
    Node("help", "help", args=(Arg("words", "command", optional=True, rest=True),), run=ran),
))  # fmt: skip


def test_keywords_arguments_options_and_presets() -> None:
    parsed = parse(TREE, ["vol", "cr", "v1", "10", "desc", "a b", "thin", "off"])
    assert parsed.node.word == "create"
    assert parsed.args == {"volume": "v1", "size": 10, "description": "a b", "thin": True, "online": False}
    assert parse(TREE, ["volume", "select", "v1", "offline"]).args == {"volume": "v1", "online": False}
    assert parse(TREE, ["volume", "select", "v1", "show", "conn"]).args == {"volume": "v1", "connections": True}
    assert parse(TREE, ["volume", "show"]).args == {}
    assert parse(TREE, ["cli-settings", "conf", "of"]).args == {"value": "off"}
    assert parse(TREE, ["help", "volume", "create"]).args == {"words": ["volume", "create"]}


def test_a_mode_node_ends_a_line_and_says_how_many_words_are_its_prefix() -> None:
    parsed = parse(TREE, ["volume", "select", "v1"])
    assert parsed.node.word == "select" and parsed.words == 3 and parsed.node.mode is not None


@pytest.mark.parametrize(
    ("tokens", "says"),
    [
        (["volume", "create", "v1"], "Missing size."),
        (["volume", "create", "v1", "ten"], "invalid literal"),
        (["volume", "create", "v1", "1", "sideways"], "Bad option 'sideways'; expected one of: thin-provision,"),
        (["volume", "create", "v1", "1", "description"], "Missing description."),
        (["volume", "o"], "Bad command 'o'; expected one of: create, show, select."),
        (["volume", "s"], "Ambiguous command 's': show, select."),
        (["volume"], "Incomplete command; expected one of: create, show, select."),
        (["volume", "select", "v1", "online", "now"], "Unexpected argument 'now'."),
        (["cli-settings", "confirmation", "maybe"], "Bad value 'maybe'; expected one of: on, off."),
    ],
)
def test_refusals_say_what_is_wrong(tokens: list[str], says: str) -> None:
    with pytest.raises((CliError, ValueError)) as refused:
        parse(TREE, tokens)
    assert says in str(refused.value)


def test_question_mark_lists_what_may_come_anywhere_on_the_line() -> None:
    assert help_lines(TREE, ["volume", "?"])[0].startswith("create")
    assert [line.split()[0] for line in help_lines(TREE, ["volume", "s?"])] == ["show", "select"]
    after_select = help_lines(TREE, ["volume", "select", "v1", "?"])
    assert [line.split()[0] for line in after_select] == ["show", "online", "offline", "size", "<cr>"]
    assert help_lines(TREE, ["volume", "select", "?"]) == [f"{'<volume name>':<24}required"]
    options = [line.split()[0] for line in help_lines(TREE, ["volume", "create", "v1", "1", "?"])]
    assert options == ["thin-provision", "online", "offline", "description", "<cr>"]
    assert help_lines(TREE, ["volume", "?", "create"])[0].startswith("create")  # the rest of the line is ignored
    assert help_lines(TREE, ["volume", "x?"]) == ["% Error - Nothing here starts with 'x'."]
    with pytest.raises(CliError):
        help_lines(TREE, ["nothing", "?"])


def test_completion_offers_keywords_and_names() -> None:
    assert complete(TREE, None, [], "v") == ["volume"]  # type: ignore[arg-type]
    assert complete(TREE, None, ["volume"], "s") == ["show", "select"]  # type: ignore[arg-type]
    assert complete(TREE, None, ["volume", "select"], "vol") == ["vol1", "vol2"]  # type: ignore[arg-type]
    assert complete(TREE, None, ["volume", "select", "vol1"], "o") == ["online", "offline"]  # type: ignore[arg-type]
    assert complete(TREE, None, ["volume", "create", "v", "1"], "th") == ["thin-provision"]  # type: ignore[arg-type]
    assert complete(TREE, None, ["nothing"], "") == []  # type: ignore[arg-type]


def test_help_and_tree_come_from_the_same_tree() -> None:
    assert usage(TREE, ["volume", "create"])[:2] == [
        "volume create <volume name> <size> [thin-provision] [online] [offline] [description <description>]",
        "create a volume",
    ]
    assert usage(TREE, ["vol", "sel", "size"])[0] == "volume select <volume name> size <size> [no-snap]"
    assert usage(TREE, [])[0] == "the test tree" and "  volume" in usage(TREE, [])[1]
    lines = tree_lines(TREE)
    assert lines[0] == "volume" and "  create <volume name> <size>" in lines[1]
    assert "    size <size> [no-snap]" in lines
    assert what_next(TREE, ["volume", "select", "v1"]).can_end


def test_a_session_completes_from_the_real_tree_and_the_groups_names(cli: Any) -> None:
    cli.ok("chapuser create alice password secret123456")
    cli.ok("chapuser create bob password secret123456")
    assert cli.session.complete("chap") == ["chapuser"]
    assert cli.session.complete("chapuser s") == ["select", "show"]
    assert cli.session.complete("chapuser select ") == ["alice", "bob"]
    assert cli.session.complete("chapuser select a") == ["alice"]
    assert cli.session.complete("chapuser select alice ") == ["show", "passwd", "enable", "disable"]
    assert cli.session.complete('chapuser "unbalanced') == []
    assert cli.session.complete("member select ") == ["member-1"]


def test_question_marks_and_help_in_a_session(cli: Any) -> None:
    assert cli.run("chapuser ?")[0].startswith("create")
    assert cli.run("chap?") == [f"{'chapuser':<24}local CHAP accounts"]
    assert cli.run("help chapuser create")[0] == "chapuser create <CHAP user name> [password <password>] [enable] [disable]"
    assert "chapuser" in cli.run("tree")
    cli.ok('grpparams description "why?"')  # a ? inside quotes is text
    assert cli.values("grpparams show")["Description"] == "why?"


def test_keyword_arguments_are_offered_and_a_missing_one_is_an_incomplete_command() -> None:
    tree = Node("", "root", children=(
        Node("power", "power", args=(choice_arg("on", "power state", ["on", "off"], "power state",
                                                lambda word: word == "on"),), run=ran),
        Node("disk", "disk", children=(Node("fail", "fail", run=ran),), children_are="fault"),
    ))  # fmt: skip
    assert parse(tree, ["power", "of"]).args == {"on": False}
    with pytest.raises(CliError, match=r"^Incomplete command; expected one of: on, off\.$"):
        parse(tree, ["power"])
    with pytest.raises(CliError, match=r"^Bad power state 'up'; expected one of: on, off\.$"):
        parse(tree, ["power", "up"])
    with pytest.raises(CliError, match=r"^Bad fault 'explode'; expected one of: fail\.$"):
        parse(tree, ["disk", "explode"])
    assert complete(tree, None, ["power"], "") == ["on", "off"]  # type: ignore[arg-type]
    assert [line.split()[0] for line in help_lines(tree, ["power", "?"])] == ["on", "off"]
    assert tree_lines(tree)[0] == "power on|off"
