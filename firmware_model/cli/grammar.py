"""The Group Manager's command grammar as data, and everything read from it.

One tree of ``Node`` (``commands.TREE``) says, for every command, its keywords, arguments, options
and help. From it come parsing (``parse``), ``?`` anywhere on a line (``what_next``, shown by
``help_lines``), ``help [command]`` and ``tree`` (``usage``, ``tree_lines``), and tab completion
(``complete``). Rules of this module:

1. A node is a keyword. After it come, in order: its arguments (positional; the optional ones
   last), then either its options (keywords in any order, each a flag or followed by a value) or
   one of its children. A line may end after a node's arguments and options only if the node
   runs (``run``) or opens a sub-mode (``mode``: ``volume select V`` alone).
2. Keywords match by any unambiguous prefix (``vol sel v1 sh``), case-insensitively, as on the
   array (``words.match_keyword``). Arguments are converted and checked by their ``convert``.
   An argument that is one of a few keywords (``enable|disable``, ``choice_arg``) says so in its
   ``keywords``: ``?`` and completion offer them, and a missing one is an incomplete command
   (``Incomplete command; expected one of: enable, disable.``), as a missing keyword is.
3. Parsing runs nothing: it returns the node and its arguments, which the session runs as one
   transaction. Every refusal is a ``CliError`` in the words the CLI always used (``Missing X.``,
   ``Bad command ...; expected one of: ...``, ``Unexpected argument ...``).
4. ``?`` as a word, or at the end of one (``vol?``), asks what may come there; nothing runs.
5. Every command is in the tree: there is no node that reads its own words, so ``?``, ``help``,
   ``tree`` and completion reach every word of every command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from array_sim.naming import shown

from .words import CliError, match_keyword

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "Arg", "Option", "Node", "Parsed", "Expect", "parse", "what_next", "help_lines", "complete", "usage",
    "tree_lines", "choice", "choice_arg",
]  # fmt: skip

#: Run a parsed command: (session, its arguments by name) -> the lines to print.
Run = Callable[["Session", dict[str, Any]], list[str]]


def _text(token: str) -> str:
    return token


@dataclass(frozen=True)
class Arg:
    """A positional argument: ``name`` in the arguments, ``help`` in messages (``Missing <help>.``)."""

    name: str
    help: str
    convert: Callable[[str], Any] = _text
    #: What completion offers here (volume names, snapshot names...), read from the session.
    choices: Callable[[Session, dict[str, Any]], Iterable[str]] | None = None
    optional: bool = False
    #: Takes every word left on the line (``help volume create``).
    rest: bool = False
    #: The keywords this argument is one of (rule 2: ``enable``, ``disable``), offered by ``?`` and
    #: completion; ``convert`` still reads them (``choice_arg`` makes both).
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Option:
    """A keyword option: a flag that sets ``dest`` to ``const``, or a keyword followed by ``value``."""

    word: str
    help: str
    dest: str
    value: Arg | None = None
    const: Any = True


@dataclass(frozen=True)
class Node:
    word: str
    help: str
    args: tuple[Arg, ...] = ()
    options: tuple[Option, ...] = ()
    children: tuple[Node, ...] = ()
    run: Run | None = None
    #: ``volume select V`` alone: checks the arguments and names the sub-mode (``volume_V``).
    mode: Callable[[Session, dict[str, Any]], str] | None = None
    #: Given to ``run`` as fixed arguments (one handler for ``online`` and ``offline``).
    preset: dict[str, Any] = field(default_factory=dict)
    #: What its children are called when a word is none of them (``Bad fault 'explode'; ...``).
    children_are: str = "command"

    @property
    def can_end(self) -> bool:
        return self.run is not None or self.mode is not None

    def child(self, word: str) -> Node:
        return next(c for c in self.children if c.word == word)


@dataclass
class Parsed:
    """A command read to its end: the node it ends at, its arguments, and how many words were keywords
    and arguments up to that node's own (for a sub-mode's prefix)."""

    node: Node
    args: dict[str, Any]
    words: int


@dataclass(frozen=True)
class Expect:
    """What the grammar accepts at one position (rule 4)."""

    node: Node
    keywords: tuple[tuple[str, str], ...] = ()
    arg: Arg | None = None
    can_end: bool = False
    args: dict[str, Any] = field(default_factory=dict)


class _Stop(Exception):
    def __init__(self, expect: Expect) -> None:
        self.expect = expect


def choice(words: Sequence[str], what: str) -> Callable[[str], str]:
    """A converter for an argument that is one of ``words`` (by prefix, rule 2)."""

    def convert(token: str) -> str:
        found = match_keyword(token, words)
        if found is None:
            raise CliError(f"Bad {what} '{shown(token)}'; expected one of: {', '.join(words)}.")
        return found

    return convert


def choice_arg(
    name: str, help: str, words: Sequence[str], what: str, then: Callable[[str], Any] = _text
) -> Arg:
    """An argument that is one of ``words`` (rule 2), given to ``run`` as ``then(word)``: ``enable`` and
    ``disable`` as a bool, say. ``what`` names it in a refusal (``Bad <what> 'x'; expected one of: ...``)."""
    match = choice(words, what)
    return Arg(name, help, lambda token: then(match(token)), keywords=tuple(words))


def _expect_arg(node: Node, arg: Arg, can_end: bool, args: dict[str, Any]) -> Expect:
    """What ``?`` and completion offer where ``arg`` comes: its keywords if it is one of them."""
    if arg.keywords:
        return Expect(node, tuple((word, arg.help) for word in arg.keywords), can_end=can_end, args=args)
    return Expect(node, arg=arg, can_end=can_end, args=args)


def _missing(arg: Arg) -> CliError:
    if arg.keywords:
        return CliError(f"Incomplete command; expected one of: {', '.join(arg.keywords)}.")
    return CliError(f"Missing {arg.help}.")


def _keyword(token: str, choices: Sequence[str], what: str) -> str:
    found = match_keyword(token, choices)
    if found is None:
        raise CliError(f"Bad {what} '{shown(token)}'; expected one of: {', '.join(choices)}.")
    return found


def _walk(root: Node, tokens: Sequence[str], stop: int | None) -> Parsed:
    """Read ``tokens`` from ``root`` (rules 1-3); at index ``stop`` (or at a ``?``), raise ``_Stop`` with
    what is expected there instead."""
    node, args = root, dict(root.preset)
    i, consumed = 0, 0

    def at_stop(expect: Expect) -> None:
        if i == stop or (i < len(tokens) and tokens[i] == "?"):
            raise _Stop(expect)

    while True:
        for arg in node.args:
            at_stop(_expect_arg(node, arg, arg.optional and node.can_end, args))
            if i >= len(tokens):
                if arg.optional:
                    break
                raise _missing(arg)
            if arg.rest:
                if stop is not None and stop > i:  # another word of the rest: the same argument again
                    raise _Stop(Expect(node, arg=arg, can_end=node.can_end, args=args))
                args[arg.name] = [arg.convert(t) for t in tokens[i:]]
                i = len(tokens)
                break
            args[arg.name] = arg.convert(tokens[i])
            i += 1
        consumed = i
        if node.options:
            words = [o.word for o in node.options]
            while True:
                at_stop(Expect(node, tuple((o.word, o.help) for o in node.options), can_end=node.can_end, args=args))
                if i >= len(tokens):
                    break
                option = next(o for o in node.options if o.word == _keyword(tokens[i], words, "option"))
                i += 1
                if option.value is None:
                    args[option.dest] = option.const
                    continue
                at_stop(_expect_arg(node, option.value, False, args))
                if i >= len(tokens):
                    raise _missing(option.value)
                args[option.dest] = option.value.convert(tokens[i])
                i += 1
            return Parsed(node, args, consumed)
        keywords = tuple((c.word, c.help) for c in node.children)
        at_stop(Expect(node, keywords, can_end=node.can_end, args=args))
        if i >= len(tokens):
            if not node.can_end:
                raise CliError(f"Incomplete command; expected one of: {', '.join(c.word for c in node.children)}.")
            return Parsed(node, args, consumed)
        if not node.children:
            raise CliError(f"Unexpected argument '{shown(tokens[i])}'.")
        node = node.child(_keyword(tokens[i], [c.word for c in node.children], node.children_are))
        args.update(node.preset)
        i += 1


def parse(root: Node, tokens: Sequence[str]) -> Parsed:
    """The command ``tokens`` say (rules 1-3); CliError if the grammar refuses them."""
    return _walk(root, tokens, None)


def what_next(root: Node, tokens: Sequence[str]) -> Expect:
    """What may come after ``tokens`` (at their end, or at their first ``?``)."""
    try:
        _walk(root, tokens, len(tokens))
    except _Stop as stop:
        return stop.expect
    raise AssertionError("the walk always stops at the end")  # pragma: no cover - _walk checks stop at every end


def help_lines(root: Node, tokens: Sequence[str]) -> list[str]:
    """The answer to ``?`` (rule 4): ``vol sel v1 ?`` lists what may follow, ``vol?`` the words that start so."""
    partial = ""
    if tokens and tokens[-1].endswith("?") and tokens[-1] != "?":
        *tokens, last = tokens
        partial = last[:-1].lower()
    elif tokens and tokens[-1] == "?":
        tokens = tokens[:-1]
    if "?" in tokens:
        tokens = tokens[: tokens.index("?")]
    expect = what_next(root, tokens)
    lines = [f"{word:<24}{text}" for word, text in expect.keywords if word.lower().startswith(partial)]
    if expect.arg is not None and not partial:
        lines.append(f"{'<' + expect.arg.help + '>':<24}{'optional' if expect.arg.optional else 'required'}")
    if expect.can_end and not partial:
        lines.append(f"{'<cr>':<24}run the command")
    return lines or [f"% Error - Nothing here starts with '{shown(partial)}'."]


def complete(root: Node, session: Session, tokens: Sequence[str], partial: str) -> list[str]:
    """Words that may complete ``partial`` after ``tokens`` (tab completion)."""
    try:
        expect = what_next(root, tokens)
    except CliError:
        return []
    offered = [word for word, _ in expect.keywords]
    if expect.arg is not None and expect.arg.choices is not None:
        try:
            offered += sorted(expect.arg.choices(session, expect.args))
        except Exception:  # noqa: BLE001 - a name that does not exist yet: nothing to offer
            pass
    return [word for word in offered if word.lower().startswith(partial.lower())]


def _form(arg: Arg) -> str:
    """``<size>``, ``enable|disable`` (a keyword argument), inside ``[...]`` when optional."""
    text = "|".join(arg.keywords) if arg.keywords else arg.help
    if arg.rest:
        return f"[{text}...]"
    return f"[{text}]" if arg.optional else text if arg.keywords else f"<{text}>"


def _signature(node: Node) -> str:
    parts = [node.word, *(_form(arg) for arg in node.args)]
    for option in node.options:
        parts.append(f"[{option.word}" + (f" {_form(option.value)}]" if option.value else "]"))
    return " ".join(parts)


def usage(root: Node, tokens: Sequence[str]) -> list[str]:
    """``help COMMAND``: the command's form (with its parents' arguments), what it does, and what may
    follow it; ``help`` alone: the top-level commands."""
    node, path = root, []
    for token in tokens:
        if not node.children:
            raise CliError(f"Unexpected argument '{shown(token)}'.")
        node = node.child(_keyword(token, [c.word for c in node.children], "command"))
        path.append(node)
    lines = [" ".join(_signature(p) for p in path), node.help] if path else [node.help]
    lines += [f"  {c.word:<22}{c.help}" for c in node.children]
    lines += [f"  {o.word:<22}{o.help}" for o in node.options]
    return lines


def tree_lines(root: Node) -> list[str]:
    """``tree``: every command, one per line, indented under its parent."""
    lines: list[str] = []

    def visit(node: Node, depth: int) -> None:
        for child in node.children:
            lines.append(f"{'  ' * depth}{_signature(child)}")
            visit(child, depth + 1)

    visit(root, 0)
    return lines
