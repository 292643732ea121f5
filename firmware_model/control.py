"""The local control channel: ``array-sim cli`` reaching the group that ``array-sim serve`` has open.

Only one process may open a group's files. While a server runs, the CLI
talks to it over a Unix socket in the group directory instead: one JSON
object per line each way. The client says who it is
(``{"account": ..., "interactive": ...}``), then sends ``{"line": ...}``
for each input line (or ``{"words": [...]}`` for a command already split)
and gets ``{"lines": [...], "prompt": ..., "asking": ..., "closed": ...}``
back. Each client connection is one CLI ``Session`` inside the server, so
modes and confirmations work as they do locally;
after every command the server brings its targets in line with the group.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path

from array_sim import Group

from .cli.session import Live, Session

__all__ = ["SOCKET_NAME", "ControlServer", "RemoteSession"]

SOCKET_NAME = "control.sock"


class ControlServer:
    """Serves CLI sessions on ``<group dir>/control.sock``."""

    def __init__(self, group: Group, live: Live, after_command: Callable[[], None]) -> None:
        self.group = group
        self.live = live
        self.after_command = after_command
        self.path = group.directory / SOCKET_NAME
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        self.path.chmod(0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = json.loads(await reader.readline() or b"{}")
            session = Session(
                self.group, str(hello.get("account", "grpadmin")), bool(hello.get("interactive")), self.live
            )
            await self._reply(writer, session, [])
            while not session.closed:
                raw = await reader.readline()
                if not raw:
                    break
                request = json.loads(raw)
                if "words" in request:
                    lines = session.execute_words([str(word) for word in request["words"]])
                else:
                    lines = session.execute(str(request.get("line", "")))
                self.after_command()
                await self._reply(writer, session, lines)
        except (ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, session: Session, lines: list[str]) -> None:
        reply = {"lines": lines, "prompt": session.prompt, "asking": session.asking, "closed": session.closed}
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

    def close(self) -> None:
        self._file.close()
        self._socket.close()
