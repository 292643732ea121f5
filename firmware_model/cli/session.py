"""One Group Manager CLI session: prompt, sub-command modes, confirmations, settings.

The session is transport-free (sans-IO): ``execute(line)`` takes one input
line and returns the output lines; ``prompt`` says what to print next. The
local ``array-sim cli`` drives it from stdin/stdout here; the SSH front end
drives the same object later.

Rules from the array (research/ps-cli.md 1.8 and 2.1):

* the prompt is ``<group>> ``, or ``<group>(volume_<name>)> `` after a bare
  ``volume select <name>``; ``exit`` leaves that mode;
* every command runs as one catalog transaction: a refused command prints
  ``% Error - ...`` and changes nothing;
* ``cli-settings`` persist per account; ``stty`` lasts for the session;
* with ``confirmation on`` destructive commands ask ``(y/n) [n]`` first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from array_sim import EngineError, Group, Snapshot, Volume

from .commands import TREE
from .grammar import complete, help_lines, parse
from .words import CliError, help_asked, tokenize

__all__ = ["Session", "Confirm", "Live", "run_command_line", "run_interactive"]

BANNER = [
    "",
    "           Welcome to Group Manager (array-sim PS Series simulator)",
    "",
]


class Live:
    """What only a running target knows: who is connected. Without a server, nobody is."""

    def connections(self, volume: Volume, snapshot: Snapshot | None = None) -> list[tuple[str, str]]:
        """(initiator address, initiator name) of each connection to the volume or snapshot."""
        return []

    def port_sessions(self, address: str) -> int:
        """Sessions logged in through the member port at ``address``."""
        return 0

    def port_address(self, address: str) -> str:
        """Where initiators reach the member port the catalog names ``address`` (``serve --netns``)."""
        return address


@dataclass
class Confirm(Exception):
    """Raised by a command that must ask before it acts (``confirmation on``)."""

    question: str
    action: Callable[[], list[str]]


class Session:
    """A CLI session of one account on an open group."""

    def __init__(
        self, group: Group, account: str = "grpadmin", interactive: bool = True, live: Live | None = None
    ) -> None:
        self.group = group
        self.live = live or Live()
        self.account = account
        self.interactive = interactive
        self.modes: list[tuple[list[str], str]] = []
        self.columns = 80
        self.hardwrap = True
        self.closed = False
        self._pending: Confirm | None = None

    @property
    def prompt(self) -> str:
        if self._pending is not None:
            return self._pending.question + " "
        label = "".join(f"({name})" for _, name in self.modes[-1:])
        return f"{self.group.name}{label}> "

    @property
    def asking(self) -> bool:
        """True while a confirmation question waits for its answer."""
        return self._pending is not None

    def setting(self, key: str) -> bool:
        return self.group.cli_settings(self.account)[key] == "on"

    def confirm(self, question: str, action: Callable[[], list[str]]) -> list[str]:
        """Run ``action`` now, or first ask ``question`` when confirmations are on."""
        if self.setting("confirmation"):
            raise Confirm(f"{question} (y/n) [n]", action)
        return action()

    def enter_mode(self, prefix: list[str], label: str) -> None:
        self.modes.append((prefix, label))

    def execute(self, line: str) -> list[str]:
        """Run one input line; returns the lines to print."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            if line.strip().lower() in ("y", "yes"):
                return self._run(pending.action)
            return []
        try:
            tokens = tokenize(line)
        except CliError as error:
            return [f"% Error - {error}"]
        if help_asked(line):
            return self._help(tokens)
        return self.execute_words(tokens)

    def execute_words(self, tokens: list[str]) -> list[str]:
        """Run one command already split into words (a shell's argv keeps its quoting)."""
        if not tokens:
            return []
        if tokens[0].lower() == "exit" and len(tokens) == 1 and self.modes:
            self.modes.pop()
            return []
        if "?" in tokens:
            return self._help(tokens)
        prefix = self.modes[-1][0] if self.modes else []
        return self._run(lambda: self._command(prefix + tokens))

    def _command(self, tokens: list[str]) -> list[str]:
        """Read the command from the tree and run it, or enter its sub-mode (``volume select V``)."""
        parsed = parse(TREE, tokens)
        node = parsed.node
        if node.run is not None:
            return node.run(self, parsed.args)
        assert node.mode is not None
        self.enter_mode(tokens[: parsed.words], node.mode(self, parsed.args))
        return []

    def complete(self, line: str) -> list[str]:
        """Words that may complete the last word of ``line`` (all that may come next if the line ends
        in a blank): tab completion, from the command tree and the group's names."""
        try:
            tokens = tokenize(line)
        except CliError:
            return []
        partial = "" if not line or line[-1] in " \t" or not tokens else tokens.pop()
        prefix = self.modes[-1][0] if self.modes else []
        return complete(TREE, self, prefix + tokens, partial)

    def _help(self, tokens: list[str]) -> list[str]:
        """``?`` on a line (``grammar`` rule 4): what may come there; nothing runs."""
        prefix = self.modes[-1][0] if self.modes else []
        try:
            return help_lines(TREE, prefix + tokens)
        except CliError as error:
            return [f"% Error - {error}"]

    def _run(self, command: Callable[[], list[str]]) -> list[str]:
        try:
            with self.group.catalog.transaction():
                lines = command()
        except Confirm as ask:
            self._pending = ask
            return []
        except (CliError, EngineError, ValueError) as error:
            return [f"% Error - {error}"]
        return self._wrap(lines)

    def _wrap(self, lines: list[str]) -> list[str]:
        """Hard-wrap long lines at the terminal width (``stty hardwrap on``), as a terminal would."""
        if not (self.interactive and self.hardwrap):
            return lines
        width = self.columns
        return [line[i : i + width] for line in lines for i in range(0, max(len(line), 1), width)]


class CliSession(Protocol):
    """A session the terminal loops drive: local (``Session``) or in a running server (``control``)."""

    prompt: str
    asking: bool
    closed: bool

    def execute(self, line: str) -> list[str]: ...

    def execute_words(self, tokens: list[str]) -> list[str]: ...

    def complete(self, line: str) -> list[str]: ...


#: What a one-shot command prints when its question was not answered yes (research/review.md A3:
#: a script must not believe that a delete it never confirmed was done).
NOT_CONFIRMED = "% Error - Not confirmed, nothing was done; answer y, or run array-sim cli --yes."


def run_command_line(
    session: CliSession, words: list[str], source: TextIO, out: TextIO, assume_yes: bool = False
) -> int:
    """``array-sim cli COMMAND``: one command; a confirmation question is answered from ``source``.

    With ``assume_yes`` (``--yes``) the question is answered ``y``. An answer
    other than yes, or none (end of input), fails the command: exit status 1.
    """
    lines = session.execute(words[0]) if len(words) == 1 else session.execute_words(words)
    if session.asking:
        out.write(session.prompt)
        out.flush()
        answer = "y\n" if assume_yes else source.readline()
        if assume_yes or not source.isatty():
            out.write(answer.strip() + "\n")
        confirmed = answer.strip().lower() in ("y", "yes")
        lines = session.execute(answer)
        if not confirmed:
            lines = [NOT_CONFIRMED]
    for text in lines:
        out.write(text + "\n")
    return 1 if any(text.startswith("% Error") for text in lines) else 0


def _terminal(session: CliSession) -> Callable[[str], str]:
    """Line editing, history and tab completion (the stdlib's readline) for a session on a terminal."""
    import readline

    def completer(text: str, state: int) -> str | None:
        if state == 0:
            completer.found = session.complete(readline.get_line_buffer()[: readline.get_endidx()])  # type: ignore[attr-defined]
        found: list[str] = completer.found  # type: ignore[attr-defined]
        return found[state] + " " if state < len(found) else None

    readline.set_completer_delims(" \t")
    readline.set_completer(completer)
    readline.parse_and_bind("tab: complete")

    def read(prompt: str) -> str:
        try:
            return input(prompt) + "\n"
        except EOFError:
            return ""

    return read


def run_interactive(session: CliSession, source: TextIO, out: TextIO) -> int:
    """An interactive session, ending at ``logout``/``exit`` or end of input; on a terminal with line
    editing, history and tab completion."""
    out.write("\n".join(BANNER) + "\n")
    read = _terminal(session) if source.isatty() and out.isatty() else None
    while not session.closed:
        if read is not None:
            line = read(session.prompt)
        else:
            out.write(session.prompt)
            out.flush()
            line = source.readline()
        if not line:
            out.write("\n")
            break
        for text in session.execute(line.rstrip("\r\n")):
            out.write(text + "\n")
    return 0
