"""``array-sim serve``: open (or create) the group and serve it on the group IP until Ctrl-C or SIGTERM.

A portal that cannot be listened on (in use, not an address of this host),
or a control socket that cannot be made, is one line on stderr and exit
status 1, never a traceback.

The group is opened on the main thread before the loop starts and closed
after the engine owner's worker has ended; in between only that worker
touches it (``targets.engine_owner`` rule 1): the iSCSI commands, the CLI
commands, the portal's inventory and the background steps
(``Group.background_step``: RAID reconstruction) are all submitted to it.
Every group event is printed on the log as it is committed, and the targets
are refreshed after it (a member that went off-line takes its volumes'
sessions with it). ``ARRAY_SIM_LOOP_LAG=1`` logs, every second, the
longest pause of the event loop (``benchmarks/loop_pause.py`` reads it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import uvloop

from array_sim import Group
from array_sim.clock import SimulatedClock, format_clock_time
from targets.engine_owner import EngineOwner
from targets.iscsi.server import TargetServer
from targets.lio.frontend import LioFrontend, LioUnavailable
from targets.netns_lab import LabError, NetnsLab
from targets.port_network import Loopback, PortNetwork
from targets.portal import GroupPortal

from .control import ControlServer

__all__ = ["serve", "parse_portal"]

DEFAULT_PORT = 3260
#: Bytes of background work (reconstruction) one step may do: a few ms, so I/O waits little.
BACKGROUND_BUDGET = 1 << 20
#: Bytes a Unix socket path may hold on Linux, its terminating NUL included (unix(7): sun_path).
_UNIX_PATH_MAX = 108


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


def serve(
    directory: Path,
    portal: str | None,
    nop_interval: float,
    redirect: bool = True,
    netns: bool = False,
    frontend: str = "embedded",
    clock: str = "real",
    clock_start: datetime | None = None,
    ssh_port: int | None = None,
    ssh: bool = True,
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    # The group's clock: real time, or with --clock simulated one that moves only when told (array_sim.clock).
    group_clock = SimulatedClock(clock_start or datetime.now()) if clock == "simulated" else datetime.now
    if (directory / "catalog.sqlite3").exists():
        group = Group.open(directory, group_clock)
    else:
        group = Group.init(directory, clock=group_clock)
    if clock == "simulated":
        logging.getLogger("array_sim").info(
            "clock: simulated, at %s (moved by 'simulate clock advance|set')",
            format_clock_time(group.start_simulated_clock(clock_start)),
        )
    try:
        host, port = parse_portal(portal or f"{group.group_ip}:{DEFAULT_PORT}")
    except ValueError as error:
        group.close()
        print(f"array-sim: {error}")
        return 2
    if host != group.group_ip:
        group.set_group_param("group_ip", host)
    try:
        network = _network(group, netns)
        try:
            # uvloop: the event loop in C, and writev for a PDU's pieces instead of joining them;
            # asyncio.Runner rather than uvloop.run: Debian 12's uvloop (0.17, the LIO guest's) has no run().
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_serve(group, host, port, nop_interval, redirect, network, frontend, ssh_port, ssh))
        finally:
            network.close()
    except (ListenError, LabError, LioUnavailable) as error:
        print(f"array-sim: {error}", file=sys.stderr)
        return 1
    finally:
        group.close()
    return 0


def _network(group: Group, netns: bool) -> PortNetwork:
    """Loopback addresses, or with ``--netns`` the group's SAN built in network namespaces."""
    if not netns:
        return Loopback()
    lab = NetnsLab(group.name)
    lab.open(lab.address(group.group_ip))
    return lab


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _why(error: OSError) -> str:
    """``address already in use``: the system's words for the error, as one clause."""
    return os.strerror(error.errno).lower() if error.errno else str(error)


async def _serve(
    group: Group, host: str, port: int, nop_interval: float, redirect: bool, network: PortNetwork, frontend: str,
    ssh_port: int | None = None, ssh: bool = True,
) -> None:
    owner = EngineOwner(asyncio.get_running_loop())
    owner.quiet.append(group.settle)  # engine_owner rule 7
    try:
        await _serve_owned(group, owner, network.address(host), port, nop_interval, redirect, network, frontend,
                           ssh_port, ssh)  # fmt: skip
    finally:
        owner.stop()


async def _serve_owned(
    group: Group, owner: EngineOwner, host: str, port: int, nop_interval: float, redirect: bool,
    network: PortNetwork, frontend: str, ssh_port: int | None = None, ssh: bool = True,
) -> None:
    log = logging.getLogger("array_sim")
    if frontend == "lio":
        redirect = False  # LIO cannot redirect a login (research/lio.md 9.6)
    if redirect and isinstance(network, Loopback) and not _is_loopback(host):
        log.info("logins are not redirected: member ports are 127.0.0.x addresses, which initiators reaching %s"
                 " from elsewhere could not connect to", host)  # fmt: skip
        redirect = False
    # Built on the owner: its first inventory reads the group (no connection exists yet).
    portal = await owner.run(GroupPortal, group, f"{host}:{port}", 1, redirect, network.address)
    portal.engine_call = lambda call: owner.submit(call)
    front: _Embedded | LioFrontend
    front = LioFrontend(portal, owner, host, port) if frontend == "lio" else _Embedded(portal, owner, network,
                                                                                         nop_interval)  # fmt: skip
    #: Set after a CLI command or an event: background work it started (a move) begins at once.
    wake = asyncio.Event()
    ssh_server = None

    async def after_change() -> None:
        await front.sync()
        if ssh_server is not None:
            await ssh_server.sync()  # the group IP may have moved
        wake.set()

    control = ControlServer(group, owner, front.live, after_change)
    if len(os.fsencode(control.path)) >= _UNIX_PATH_MAX:  # opened last (below): refuse before any port is bound
        raise ListenError(f"cannot open the control socket {control.path}: AF_UNIX path too long")
    try:
        await front.start()
    except OSError as error:
        raise ListenError(f"cannot listen on {host}:{port}: {_why(error)}") from None
    if ssh:  # the Group Manager CLI over SSH on the group IP (firmware_model.ssh)
        try:
            from .ssh import SshListenError, SshServer  # asyncssh: not where only Debian's packages are
        except ImportError as error:
            log.warning("no SSH access: %s (install asyncssh)", error)
        else:
            ssh_server = SshServer(group, owner, front.live, after_change, network, ssh_port)
            try:
                await ssh_server.start()
            except SshListenError as refused:
                await front.stop()
                raise ListenError(str(refused)) from None
    await front.sync()  # the targets and member ports, before anyone is told serve is ready
    # The control socket last: its existence says serve is ready (scripts and tests wait for it).
    try:
        await control.start()
    except OSError as error:
        if ssh_server is not None:
            await ssh_server.stop()
        await front.stop()
        raise ListenError(f"cannot open the control socket {control.path}: {_why(error)}") from None
    log.info(
        "serving group %s on %s:%d%s, %d targets, logins %s, %s; Ctrl-C to stop", group.name, host, port,
        " through LIO" if frontend == "lio" else "", len(portal.targets),
        "redirected to member ports" if redirect else "served where they arrive",
        "the kernel's iSCSI target" if frontend == "lio" else network.description,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    refreshes: set[asyncio.Task[None]] = set()

    def refresh() -> None:  # on the loop
        task = loop.create_task(after_change())
        refreshes.add(task)
        task.add_done_callback(refreshes.discard)

    def on_event(level: str, message: str, member: str) -> None:
        """Every event on the log as it is committed (on the owner), then the targets follow the group:
        a member that went off-line took its volumes off-line, and their sessions must end."""
        log.info("event %s%s: %s", level, f" ({member})" if member else "", message)
        loop.call_soon_threadsafe(refresh)

    group.event_listeners.append(on_event)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    watchers = [loop.create_task(_background(group, owner, wake))]
    if os.environ.get("ARRAY_SIM_LOOP_LAG"):
        watchers.append(loop.create_task(_watch_loop_lag()))
    await stop.wait()
    log.info("shutting down")
    for watcher in watchers:
        watcher.cancel()
    if ssh_server is not None:
        await ssh_server.stop()
    await control.stop()
    await front.stop()
    await owner.run(group.flush)


class _Embedded:
    """The embedded iSCSI target as a front end: the group IP, the member ports, the redirect."""

    def __init__(self, portal: GroupPortal, owner: EngineOwner, network: PortNetwork, nop_interval: float) -> None:
        self.portal, self.owner = portal, owner
        host, port = portal.host, portal.port
        self.server = TargetServer(portal, owner, host, port, nop_interval, network)

    @property
    def live(self) -> GroupPortal:
        """What the CLI asks a running target: the portal knows the sessions."""
        return self.portal

    async def start(self) -> None:
        await self.server.start()

    async def sync(self) -> None:
        """After a CLI command or an event: targets, the group IP, member ports, and sessions that must move."""
        inventory = await self.owner.run(self.portal.inventory)
        self.portal.apply(inventory)
        if inventory.group_ip is not None:
            await self.server.move_group_ip(inventory.group_ip)
        await self.server.sync_listeners(self.portal.member_hosts())
        self.server.rehome()

    async def stop(self) -> None:
        await self.server.stop()


async def _background(group: Group, owner: EngineOwner, wake: asyncio.Event, period: float = 1.0) -> None:
    """Keep ``group.background_step`` scheduled on the owner while it has work; look again every ``period``,
    or at once when ``wake`` is set (a command that starts work: a move, a vacate)."""
    step = group.background_step
    armed = False

    def run() -> bool:  # on the owner
        nonlocal armed
        armed = bool(step(BACKGROUND_BUDGET))
        return armed

    while True:
        if not armed:
            armed = True
            owner.submit_background(run)
        try:
            await asyncio.wait_for(wake.wait(), period)
        except TimeoutError:
            pass
        wake.clear()


async def _watch_loop_lag(period: float = 0.001) -> None:
    """Log, every second, the longest lateness of a ``period`` timer: how long the loop was busy."""
    log = logging.getLogger("array_sim.lag")
    loop = asyncio.get_running_loop()
    worst = overall = 0.0
    report = loop.time() + 1.0
    while True:
        before = loop.time()
        await asyncio.sleep(period)
        worst = max(worst, loop.time() - before - period)
        if loop.time() >= report:
            overall = max(overall, worst)
            log.info("loop lag: max %.1f ms (overall %.1f ms)", worst * 1e3, overall * 1e3)
            worst, report = 0.0, loop.time() + 1.0
