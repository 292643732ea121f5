"""The local control channel: ``array-sim cli`` reaching the group that ``array-sim serve`` has open.

Only one process may open a group's files. While a server runs, the CLI
talks to it over a Unix socket in the group directory instead: one JSON
object per line each way. The client says who it is
(``{"account": ..., "interactive": ...}``), then sends ``{"line": ...}``
for each input line (or ``{"words": [...]}`` for a command already split, or
``{"complete": ...}`` for the words that may complete a line, given as its ``lines``)
and gets ``{"lines": [...], "prompt": ..., "asking": ..., "closed": ...}``
back. Each client connection is one CLI ``Session`` inside the server, so
modes and confirmations work as they do locally;
after every command the server brings its targets in line with the group.

Every CLI command, and the session's creation and prompt, runs on the
engine owner (``targets.engine_owner``), in turn with the iSCSI commands:
the loop only reads and writes the socket, so a slow command (a volume
created, a snapshot restored) stalls no iSCSI session and never runs
alongside one. ``after_command`` is awaited before the reply.

A request line longer than ``MAX_REQUEST`` bytes is read to its end and
dropped, and answered ``% Error - ...``; so is one that is not a JSON
object. The session and the server go on either way.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from array_sim import Group
from targets.engine_owner import EngineOwner

from .cli.session import Live, Session

__all__ = ["SOCKET_NAME", "ControlServer", "RemoteSession"]

SOCKET_NAME = "control.sock"
#: Longest request line the server reads (1 MiB): far beyond any CLI command, and the bound
#: of what one client can make the server hold.
MAX_REQUEST = 1 << 20


class _BadRequest(Exception):
    """A request line that is too long or not a JSON object; the message is for the CLI user."""


async def _request(reader: asyncio.StreamReader) -> dict[str, object] | None:
    """The next request, None at end of input.

    Raises:
        _BadRequest: the line is over ``MAX_REQUEST`` bytes (it is read to its end and dropped)
            or is not a JSON object.
    """
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as end:
        if not end.partial:
            return None
        raw = end.partial
    except asyncio.LimitOverrunError as overrun:
        while True:
            await reader.readexactly(overrun.consumed)  # drop what was looked at, up to the newline
            try:
                await reader.readuntil(b"\n")
                break
            except asyncio.LimitOverrunError as more:
                overrun = more
            except asyncio.IncompleteReadError:
                break
        raise _BadRequest(f"The command line is too long (more than {MAX_REQUEST} bytes).") from None
    try:
        request = json.loads(raw)
    except ValueError:
        raise _BadRequest("The control request is not valid JSON.") from None
    if not isinstance(request, dict):
        raise _BadRequest("The control request is not a JSON object.")
    return request


class ControlServer:
    """Serves CLI sessions on ``<group dir>/control.sock``."""

    def __init__(
        self, group: Group, owner: EngineOwner, live: Live, after_command: Callable[[], Awaitable[None]]
    ) -> None:
        self.group = group
        self.owner = owner
        self.live = live
        self.after_command = after_command
        self.path = group.directory / SOCKET_NAME
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_REQUEST)
        self.path.chmod(0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                hello = await _request(reader) or {}
            except _BadRequest:
                hello = {}
            account, interactive = str(hello.get("account", "grpadmin")), bool(hello.get("interactive"))
            session = await self.owner.run(Session, self.group, account, interactive, self.live)
            reply = await self.owner.run(self._reply_to, session, [])
            await self._send(writer, reply)
            while not reply["closed"]:
                try:
                    request = await _request(reader)
                except _BadRequest as error:
                    await self._send(writer, await self.owner.run(self._reply_to, session, [f"% Error - {error}"]))
                    continue
                if request is None:
                    break
                reply = await self.owner.run(self._execute, session, request)
                await self.after_command()
                await self._send(writer, reply)
        except ConnectionError:
            pass
        finally:
            writer.close()

    @classmethod
    def _execute(cls, session: Session, request: dict[str, object]) -> dict[str, object]:
        """One request run on the engine owner, and the reply to it."""
        words = request.get("words")
        if "complete" in request:  # tab completion: the words that may come (as ``lines``)
            return cls._reply_to(session, session.complete(str(request["complete"])))
        if isinstance(words, list):
            lines = session.execute_words([str(word) for word in words])
        else:
            lines = session.execute(str(request.get("line", "")))
        return cls._reply_to(session, lines)

    @staticmethod
    def _reply_to(session: Session, lines: list[str]) -> dict[str, object]:
        """The reply (on the engine owner: the prompt names the group)."""
        return {"lines": lines, "prompt": session.prompt, "asking": session.asking, "closed": session.closed}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: dict[str, object]) -> None:
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()


class RemoteSession:
    """The client side: a CLI session running inside the server."""

    def __init__(self, directory: Path, account: str, interactive: bool) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.connect(str(directory / SOCKET_NAME))
        self._file = self._socket.makefile("rwb")
        self.prompt, self.asking, self.closed = "", False, False
        self._exchange({"account": account, "interactive": interactive})

    def _exchange(self, message: dict[str, object]) -> list[str]:
        self._file.write(json.dumps(message).encode() + b"\n")
        self._file.flush()
        raw = self._file.readline()
        if not raw:
            self.closed = True
            raise ConnectionError("the array-sim server closed the control channel")
        reply = json.loads(raw)
        self.prompt, self.asking, self.closed = reply["prompt"], reply["asking"], reply["closed"]
        return list(reply["lines"])

    def execute(self, line: str) -> list[str]:
        return self._exchange({"line": line})

    def execute_words(self, tokens: list[str]) -> list[str]:
        return self._exchange({"words": tokens})

    def complete(self, line: str) -> list[str]:
        return self._exchange({"complete": line})

    def close(self) -> None:
        self._file.close()
        self._socket.close()
