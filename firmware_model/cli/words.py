"""Reading a Group Manager command line: tokens, keywords with abbreviations, errors.

The array accepts any unambiguous prefix of a keyword (``vol sel v show``)
and double-quoted arguments (the Cinder driver sends ``description "OpenStack
Managed"``). Every refusal is a ``CliError`` whose text the session prints as
``% Error - <text>``; a refused command changes nothing.

Nothing typed is dropped silently: a backslash is an ordinary character (not
a shell escape), so ``vol\1`` stays ``vol\1`` and is refused as a name; a
line ending (CR, LF or CRLF, as SSH and telnet clients send) ends the line,
and any other control character refuses the whole line.
"""

from __future__ import annotations

import shlex
import unicodedata
from collections.abc import Sequence

from array_sim.naming import shown

__all__ = ["CliError", "help_asked", "match_keyword", "tokenize"]


class CliError(Exception):
    """A command the group refuses; printed as ``% Error - <message>``."""


def tokenize(line: str) -> list[str]:
    """Split a command line on blanks, keeping quoted strings whole."""
    line = line.removesuffix("\n").removesuffix("\r")
    control = next((c for c in line if c != "\t" and unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise CliError(f"The command contains a control character ({shown(control)}); it is not accepted.")
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.whitespace = " \t"
    lexer.commenters = ""
    lexer.escape = ""
    try:
        return list(lexer)
    except ValueError:
        raise CliError("Unbalanced quotation marks in the command.") from None


def help_asked(line: str) -> bool:
    """True if the line asks for help: a ``?`` outside quotes that ends a word (``volume ?``, ``vol?``),
    as on the array; ``description "why?"`` does not."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "?" and not quoted and (i + 1 == len(line) or line[i + 1] in " \t\r\n"):
            return True
    return False


def match_keyword(token: str, choices: Sequence[str]) -> str | None:
    """Exact match first, then the one choice that starts with ``token``."""
    lowered = token.lower()
    if lowered in (c.lower() for c in choices):
        return next(c for c in choices if c.lower() == lowered)
    matches = [c for c in choices if c.lower().startswith(lowered)]
    if len(matches) > 1:
        raise CliError(f"Ambiguous command '{token}': {', '.join(matches)}.")
    return matches[0] if matches else None
