"""``array-sim serve``: open (or create) the group and serve it on the group IP until Ctrl-C or SIGTERM.

A portal that cannot be listened on (in use, not an address of this host),
or a control socket that cannot be made, is one line on stderr and exit
status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import uvloop

from array_sim import Group
from targets.iscsi.server import TargetServer
from targets.portal import GroupPortal

from .control import ControlServer

__all__ = ["serve", "parse_portal"]

DEFAULT_PORT = 3260


class ListenError(Exception):
    """The portal, or the control socket, cannot be listened on."""


def parse_portal(text: str) -> tuple[str, int]:
    """``IP[:PORT]`` (port 3260 by default)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid portal '{text}'")
    return host, int(port)


def serve(directory: Path, portal: str | None, nop_interval: float) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    group = Group.open(directory) if (directory / "catalog.sqlite3").exists() else Group.init(directory)
    try:
        host, port = parse_portal(portal or f"{group.group_ip}:{DEFAULT_PORT}")
    except ValueError as error:
        group.close()
        print(f"array-sim: {error}")
        return 2
    if host != group.group_ip:
        group.set_group_param("group_ip", host)
    try:
        # uvloop: the event loop in C, and writev for a PDU's pieces instead of joining them.
        uvloop.run(_serve(group, host, port, nop_interval))
    except ListenError as error:
        print(f"array-sim: {error}", file=sys.stderr)
        return 1
    finally:
        group.close()
    return 0


def _why(error: OSError) -> str:
    """``address already in use``: the system's words for the error, as one clause."""
    return os.strerror(error.errno).lower() if error.errno else str(error)


async def _serve(group: Group, host: str, port: int, nop_interval: float) -> None:
    portal = GroupPortal(group, f"{host}:{port}")
    server = TargetServer(portal, host, port, nop_interval)

    def after_command() -> None:
        portal.refresh()
        server.pump()

    control = ControlServer(group, portal, after_command)
    try:
        await server.start()
    except OSError as error:
        raise ListenError(f"cannot listen on {host}:{port}: {_why(error)}") from None
    try:
        await control.start()
    except OSError as error:
        await server.stop()
        raise ListenError(f"cannot open the control socket {control.path}: {_why(error)}") from None
    log = logging.getLogger("array_sim")
    log.info("serving group %s on %s:%d, %d targets; Ctrl-C to stop", group.name, host, port, len(portal.targets))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down")
    await control.stop()
    await server.stop()
    group.flush()
