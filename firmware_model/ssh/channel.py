"""One SSH session channel: a Group Manager CLI ``Session`` of the logged-in account.

A shell channel is a conversation: the banner and the prompt, then a reply per input line until
``logout``/``exit``, the end of input, or a lost connection. An exec channel (``ssh grpadmin@host
'volume show'``) runs its one command and exits 1 if the command printed ``% Error``, else 0.

Rules of this module:

1. Every CLI call (the session's creation, each line, each completion) runs on the engine owner,
   and ``after_command`` is awaited after each line, as the control channel does
   (``firmware_model.control``): there is no second path into the catalog. The loop only moves
   text. A command is never abandoned half-way: a client that disconnects while its command runs
   loses the reply, the command completes, and the targets follow it.
2. Without a pseudo-terminal nothing is echoed and lines are framed as ``lines`` says (the Cinder
   driver's ``invoke_shell`` without ``get_pty``). With one, asyncssh's line editor echoes, edits
   and keeps a history; Tab completes from the command tree and the group's names
   (``Session.complete``); Ctrl-C drops the line being typed (and answers a question no); after a
   refused command the line is offered again for editing (``cli-settings reprintBadInput on``).
   The editor ends a line at CR and again at LF, so the LF of a CR LF that arrives with its CR
   (a script on a terminal sending ``\\r\\n``) is dropped rather than taken for an empty line.
3. A shell is interactive, with or without a terminal: a confirmation question is asked and the
   next line answers it. An exec channel without a terminal has nobody to answer, so a command
   that asks is refused (``% Error``, exit status 1) and nothing is done.
4. Input is bounded: a line is at most ``lines.MAX_LINE`` characters (``MAX_EDITED`` at a terminal,
   where the editor stops taking characters), and the channel stops reading (the SSH window closes)
   while more than ``INBOX_MOST`` characters wait. Output waits while the client does not read.
5. A channel we close first (the end of a command, of input, ``logout``) is followed, once the
   client's CLOSE has come, by an SSH debug message of nothing (``SSHServerConnection.send_debug``,
   which clients log at most): that CLOSE would otherwise have no answer for its TCP ACK to ride
   on, and the client's next message (the next command's channel) would wait behind it for the
   delayed ACK, 40 ms on Linux (Nagle's algorithm: paramiko sets no TCP_NODELAY). Measured before:
   every sequential ``exec_command`` and one Cinder-pattern command in seven paid it.

What the logged-in account may do in its session (``AccountSession``, kept importable from here) is
``account_session``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncssh

from ..cli.session import BANNER, Session
from .account_session import AccountSession
from .lines import LineReader, banner_text, exec_text, reply_text

if TYPE_CHECKING:
    from .server import SshFront

__all__ = ["AccountSession", "CliChannel", "MAX_EDITED", "INBOX_MOST"]

log = logging.getLogger("array_sim.ssh")

#: The longest line the terminal line editor takes; a line this long was cut by it and is refused.
MAX_EDITED = 8192
#: Characters of input waiting to be run beyond which the channel stops reading.
INBOX_MOST = 1 << 20
NOT_ANSWERED = (
    "% Error - The command asks for confirmation and this channel has no terminal to answer it; nothing was"
    " done. Run it in a shell (ssh -t), or turn cli-settings confirmation off."
)
NOT_CONFIRMED = "% Error - Not confirmed, nothing was done."
TOO_LONG = "% Error - The command line is too long; it was not run."


@dataclass
class _Reply:
    """A session's answer, read on the engine owner (the prompt names the group)."""

    lines: list[str]
    prompt: str
    asking: bool
    closed: bool
    reprint: bool = False


def _reply(session: Session, lines: list[str]) -> _Reply:
    return _Reply(lines, session.prompt, session.asking, session.closed)


def _execute(session: Session, line: str) -> _Reply:
    reply = _reply(session, session.execute(line))
    failed = any(text.startswith("% Error") for text in reply.lines)
    reply.reprint = failed and not reply.asking and session.setting("reprintBadInput")
    return reply


class CliChannel(asyncssh.SSHServerSession):  # type: ignore[type-arg]
    """The channel's callbacks feed an inbox; one task per channel serves it (rules 1-4)."""

    def __init__(
        self, front: SshFront, account: str, peer: str, closed: Callable[[bool], None] = lambda first: None
    ) -> None:
        self.front, self.account, self.peer, self._closed = front, account, peer, closed
        #: We closed the channel before the client did (rule 5).
        self._closed_first = False
        self.task: asyncio.Task[None] | None = None
        self._chan: Any = None
        self._terminal = False
        self._width = 80
        self._command: str | None = None
        self._inbox: deque[tuple[Any, ...]] = deque()
        self._queued = 0
        self._reading_paused = False
        self._arrived = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost = False
        self._line_just_ended = False
        #: Lines the editor has ended: a completion for a line already ended is dropped.
        self._lines_ended = 0
        self._session: Session | None = None

    # ------------------------------------------------------------- callbacks (on the loop)

    def connection_made(self, chan: Any) -> None:
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self._terminal = True
        self._width = term_size[0] or 80
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        return False  # no sftp, no netconf: the Group Manager CLI only

    def session_started(self) -> None:
        if self._terminal:
            self._chan.register_key("\t", self._tab)
        self.task = asyncio.get_running_loop().create_task(self._serve())
        self.front.channels.add(self.task)
        self.task.add_done_callback(self.front.channels.discard)

    def data_received(self, data: str, datatype: Any) -> None:
        if datatype is not None:
            return  # extended data from a client means nothing here
        if self._terminal:
            if data == "\n" and self._line_just_ended:
                return  # the LF of a CR LF (rule 2)
            self._line_just_ended = True
            self._lines_ended += 1
            asyncio.get_running_loop().call_soon(self._forget_line_end)
        self._put(("data", data), len(data))

    def eof_received(self) -> bool:
        self._put(("eof",))
        return True  # half open: the replies to what came before the end still go out

    def soft_eof_received(self) -> None:
        self._put(("eof",))  # Ctrl-D on an empty line at a terminal

    def break_received(self, msec: int) -> bool:
        self._put(("break",))
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._put(("size", width))

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(self._closed_first)
        self._lost = True
        self._writable.set()
        self._put(("lost",))

    def _forget_line_end(self) -> None:
        self._line_just_ended = False

    def _tab(self, line: str, pos: int) -> tuple[str, int]:
        """The editor's Tab key: completion runs on the owner, so it is queued; the line stays."""
        self._put(("tab", line, pos, self._lines_ended))
        return line, pos

    def _put(self, item: tuple[Any, ...], size: int = 0) -> None:
        self._inbox.append(item)
        self._queued += size
        if self._queued > INBOX_MOST and not self._reading_paused and not self._lost:
            self._reading_paused = True
            self._chan.pause_reading()
        self._arrived.set()

    async def _next(self) -> tuple[Any, ...]:
        while not self._inbox:
            self._arrived.clear()
            await self._arrived.wait()
        item = self._inbox.popleft()
        if item[0] == "data":
            self._queued -= len(item[1])
            if self._reading_paused and self._queued < INBOX_MOST // 2 and not self._lost:
                self._reading_paused = False
                self._chan.resume_reading()
        return item

    # ------------------------------------------------------------------ the channel's task

    async def _serve(self) -> None:
        status = 1
        try:
            opened = await self.front.owner.run(
                self.front.open_session, self.account, self._terminal or self._command is None, self._width
            )
            if isinstance(opened, str):
                await self._write(exec_text([opened]) if self._command is not None else f"{opened}\r\n")
            else:
                self._session, prompt = opened
                status = await (self._one_command(self._command) if self._command is not None else self._shell(prompt))
        except Exception:  # noqa: BLE001 - one channel's failure must never reach serve
            log.exception("SSH channel of %s from %s failed", self.account, self.peer)
        finally:
            self._exit(status)

    async def _run(self, line: str) -> _Reply:
        """One input line on the owner, then the targets follow the group (rule 1). Shielded: a
        connection that drops (or a serve that stops) does not cut the command off from its sync."""
        return await asyncio.shield(self._run_and_sync(line))

    async def _run_and_sync(self, line: str) -> _Reply:
        reply: _Reply = await self.front.owner.run(_execute, self._session, line)
        await self.front.after_command()
        return reply

    async def _shell(self, prompt: str) -> int:
        session = self._session
        assert session is not None
        await self._write(banner_text(BANNER, prompt, self._terminal))
        reader = LineReader()
        while True:
            item = await self._next()
            kind = item[0]
            if kind == "lost":
                return 0
            if kind in ("data", "eof"):
                lines = reader.feed(item[1]) if kind == "data" else reader.finish()
                for line in lines:
                    if await self._line(line):
                        return 0
                if kind == "eof":
                    return 0
            elif kind == "size":
                self._width = item[1]
                await self.front.owner.run(setattr, session, "columns", max(1, min(item[1], 1024)))
            elif kind == "break":
                await self._cancel_line()
            elif kind == "tab":
                await self._complete(item[1], item[2], item[3])

    async def _line(self, line: str | None) -> bool:
        """Run one line of a shell and send its reply; True once the session is closed (logout)."""
        session = self._session
        assert session is not None
        if line is None or (self._terminal and len(line) >= MAX_EDITED):
            reply = await self.front.owner.run(_reply, session, [TOO_LONG])
        else:
            reply = await self._run(line)
        if reply.closed:
            await self._write(exec_text(reply.lines) if self._terminal else reply_text(reply.lines, "", False))
            return True
        await self._write(reply_text(reply.lines, reply.prompt, self._terminal))
        if reply.reprint and self._terminal and line and not self._lost:
            self._set_input(line, len(line))
        return False

    async def _one_command(self, command: str) -> int:
        session = self._session
        assert session is not None
        reply = await self._run(command)
        lines = reply.lines
        if reply.asking:
            if not self._terminal:
                await self._run("n")
                lines = [*lines, NOT_ANSWERED]
            else:
                await self._write(exec_text(lines) + reply.prompt)
                answer = await self._read_answer()
                answered = await self._run(answer)
                confirmed = answer.strip().lower() in ("y", "yes")
                lines = answered.lines if confirmed else [NOT_CONFIRMED]
        await self._write(exec_text(lines))
        return 1 if any(text.startswith("% Error") for text in lines) else 0

    async def _read_answer(self) -> str:
        """The line that answers an exec channel's question at a terminal ('' if none comes)."""
        reader = LineReader(MAX_EDITED)
        while True:
            item = await self._next()
            if item[0] == "data":
                lines = reader.feed(item[1])
                if lines:
                    return lines[0] or ""
            elif item[0] in ("eof", "lost", "break"):
                return ""

    async def _cancel_line(self) -> None:
        """Ctrl-C at a terminal: the line typed so far goes; a question pending is answered no."""
        if not self._terminal or self._lost:
            return
        session = self._session
        assert session is not None
        self._chan.clear_input()
        if await self.front.owner.run(lambda: session.asking):
            reply = await self._run("n")
            await self._write("\n" + reply_text(reply.lines, reply.prompt, True))
        else:
            await self._write("^C\n" + await self.front.owner.run(lambda: session.prompt))

    async def _complete(self, line: str, pos: int, lines_ended: int) -> None:
        """Tab: one completion is taken, several are extended to what they share, then listed."""
        session = self._session
        assert session is not None
        typed = line[:pos]
        found: list[str] = await self.front.owner.run(session.complete, typed)
        if not found or self._lost or lines_ended != self._lines_ended:
            return  # nothing to offer, or the line was ended (Enter) before the answer came
        partial = "" if not typed or typed[-1] in " \t" else typed.split()[-1]
        start = pos - len(partial)
        common = os.path.commonprefix([word.lower() for word in found])
        if len(found) == 1:
            word = found[0] + " "
        elif len(common) > len(partial):
            word = found[0][: len(common)]
        else:
            prompt = await self.front.owner.run(lambda: session.prompt)
            await self._write("\n" + "  ".join(found) + "\n" + prompt)
            return
        self._set_input(line[:start] + word + line[pos:], start + len(word))

    def _set_input(self, line: str, pos: int) -> None:
        """Put ``line`` in the editor; an empty write makes the editor draw it (it draws only while it
        handles input or output)."""
        self._chan.set_input(line, pos)
        self._chan.write("")

    async def _write(self, text: str) -> None:
        if self._lost or not text:
            return
        try:
            self._chan.write(text)
        except (BrokenPipeError, ConnectionError, OSError):
            self._lost = True
            return
        await self._writable.wait()

    def _exit(self, status: int) -> None:
        if self._lost:
            return
        with contextlib.suppress(OSError):
            self._chan.exit(status)
            self._closed_first = True
