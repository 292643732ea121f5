"""What a CLI channel reads and writes, without I/O: input lines, and replies framed as clients expect.

Rules (research/ps-cli.md 1.8):

1. Input lines end with CR, CR LF or LF (the Cinder driver sends CR, the ganeti class CR LF,
   Proxmox LF), or with Ctrl-Z (0x1A, which JSch-based Eucalyptus put between batched commands).
   CR LF is one end of line even when the CR ends one read and the LF starts the next, so a client
   that sends CR LF never gets an extra prompt for an empty line it did not send.
2. A line is at most ``MAX_LINE`` characters (the control channel's ``MAX_REQUEST``); a longer one
   is read to its end and dropped, and ``feed`` returns ``None`` in its place (the caller answers
   ``% Error - ...``): the reader never holds more than ``MAX_LINE`` characters.
3. Without a terminal nothing is echoed, and a reply is ``\\r\\n``, the output lines each ended by
   ``\\r\\n``, then the prompt: the blank line stands where a terminal's echo would be, which keeps
   the Cinder driver's ``access show`` records at even indexes (1.6, 1.8 item 4). With a terminal
   the line editor has echoed the line and its CR LF, and turns every LF written into CR LF, so a
   reply is the lines each ended by ``\\n``, then the prompt. The prompt ends every reply of a
   shell; a one-command (exec) channel gets the lines alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..control import MAX_REQUEST

__all__ = ["MAX_LINE", "LineReader", "banner_text", "reply_text", "exec_text"]

MAX_LINE = MAX_REQUEST
_END = re.compile(r"[\r\n\x1a]")


class LineReader:
    """Splits a channel's input into lines (rules 1 and 2)."""

    def __init__(self, most: int = MAX_LINE) -> None:
        self.most = most
        self._pieces: list[str] = []
        self._size = 0
        self._dropping = False
        self._after_cr = False

    @property
    def pending(self) -> int:
        """Characters held of a line not ended yet."""
        return self._size

    def feed(self, text: str) -> list[str | None]:
        """The lines that ``text`` ends, in order; ``None`` for one that was too long."""
        lines: list[str | None] = []
        start = 1 if self._after_cr and text.startswith("\n") else 0
        self._after_cr = False
        while True:
            found = _END.search(text, start)
            if found is None:
                self._add(text[start:])
                return lines
            end = found.start()
            self._add(text[start:end])
            lines.append(self._take())
            start = end + 1
            if text[end] == "\r":
                if start < len(text):
                    start += text[start] == "\n"
                else:
                    self._after_cr = True

    def finish(self) -> list[str | None]:
        """At the end of input: a last line that had no line ending (``echo -n`` piped into ssh)."""
        if self._size or self._dropping:
            return [self._take()]
        return []

    def _add(self, piece: str) -> None:
        if self._dropping or not piece:
            return
        if self._size + len(piece) > self.most:
            self._pieces, self._size, self._dropping = [], 0, True
            return
        self._pieces.append(piece)
        self._size += len(piece)

    def _take(self) -> str | None:
        line = None if self._dropping else "".join(self._pieces)
        self._pieces, self._size, self._dropping = [], 0, False
        return line


def banner_text(banner: Sequence[str], prompt: str, terminal: bool) -> str:
    """What a shell channel starts with: the banner (the MOTD the Cinder driver reads), then the prompt."""
    end = "\n" if terminal else "\r\n"
    return "".join(line + end for line in banner) + prompt


def reply_text(lines: Sequence[str], prompt: str, terminal: bool) -> str:
    """A shell's reply to one line (rule 3)."""
    if terminal:
        return "".join(line + "\n" for line in lines) + prompt
    return "\r\n" + "".join(line + "\r\n" for line in lines) + prompt


def exec_text(lines: Sequence[str]) -> str:
    """A one-command channel's output (rule 3): lines, no prompt."""
    return "".join(line + "\n" for line in lines)
