"""The asyncio edge of the iSCSI target: sockets in, bytes to the sans-IO connections, bytes out.

This is the only module of the target that does network I/O. It listens on
the group IP and on every member port the portal names (``sync_listeners``:
a port that goes away takes its connections with it; one that cannot be
listened on is logged and left out, so nobody is redirected to it), with
sockets the port network makes (``targets.port_network``: loopback
addresses, or the namespaces of ``serve --netns``). Each TCP
connection gets a ``Connection`` that knows the address it came in at; received bytes land directly in its
receive buffer (``asyncio.BufferedProtocol``), and after every receive the
server sends what any connection has queued and closes those that asked to
be closed: a login in one connection can end another (session
reinstatement), and a CLI change can end many (a volume set offline).

Engine work: after every receive the server takes each connection's
``work_to_run()`` and submits it, as one batch per connection, to the
engine owner (``targets.engine_owner``); the owner hands finished batches
back on the loop, the connections are told ``completed``, and the server
sends what they queued. Only ``quick`` commands (small reads, writes
without FUA) run on the loop, and only while the owner is idle
(``engine_owner`` rule 6); so a SYNCHRONIZE CACHE or a slow CLI command
stalls no other session.

Moving sessions: ``rehome`` asks every session the portal finds misplaced (its member no
longer holds its volume's data) to log out and in again, with Async Message event 1 and
``LOGOUT_DEADLINE`` seconds to do it; one still there after that is dropped. A port whose
member left the group does the same to its sessions; a port that went down (a cable pulled,
a member powered off) drops them at once.

Flow control: when a transport's write buffer passes its high-water mark
(``pause_writing``) the connection stops reading and stops taking in the
PDUs it has already received; ``resume_writing`` takes them in again. A
connection that goes takes its pending tasks with it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..engine_owner import EngineOwner
from ..port_network import Loopback, PortNetwork
from ..portal import GroupPortal
from ..scsi import Result, SenseReason, Status
from ..scsi.sense import build_sense
from .connection import Connection

__all__ = ["TargetServer"]

log = logging.getLogger("array_sim.iscsi")

#: Seconds an initiator asked to log out has to do it (Async Message event 1, Parameter3).
LOGOUT_DEADLINE = 10

#: What a command whose engine call raised completes with (SAM-5 5.3.1, INTERNAL TARGET FAILURE).
_FAILED = Result(Status.CHECK_CONDITION, sense=build_sense(SenseReason.INTERNAL_TARGET_FAILURE, descriptor=False))


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, server: TargetServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.connection: Connection | None = None
        self.last_seen = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        portal = self.server.portal
        self.connection = Connection(portal, str(peer[0]), portal.new_tsih(), local_ip=str(local[0]))
        self.server.protocols.add(self)

    def get_buffer(self, size_hint: int) -> memoryview:
        assert self.connection is not None
        return self.connection.get_buffer(size_hint)

    def buffer_updated(self, nbytes: int) -> None:
        assert self.connection is not None
        self.last_seen = time.monotonic()
        self.connection.buffer_updated(nbytes)
        self.server.pump()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        assert self.connection is not None and self.transport is not None
        self.connection.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.connection is not None and self.transport is not None
        self.connection.paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()
        self.server.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.protocols.discard(self)
        connection = self.connection
        if connection is None:
            return
        ours = connection.close_reason
        reason = ours or (f"connection lost: {exc}" if exc else "connection closed")
        connection.drop(reason, warn_initiator=False)  # its writes waiting for Data-Out go with it
        session = connection.session
        if session is not None:
            self.server.portal.session_ended(connection)
            log.info("logout: %s (%s) from %s: %s", session.initiator, connection.peer_ip,
                     session.target or "discovery session", reason)  # fmt: skip
        elif connection.login.redirected_to:
            log.info("redirect: %s (%s) for %s to %s", connection.login.result.initiator, connection.peer_ip,
                     connection.login.result.target or "?", connection.login.redirected_to)  # fmt: skip
        elif ours:
            log.warning("login refused for %s: %s", connection.peer_ip, ours)


class TargetServer:
    """Serves a group's targets on one portal (the group IP and port)."""

    def __init__(
        self,
        portal: GroupPortal,
        owner: EngineOwner,
        host: str,
        port: int,
        nop_interval: float = 30.0,
        network: PortNetwork | None = None,
    ) -> None:
        self.portal = portal
        self.network = network or Loopback()
        self.owner = owner
        owner.delivered.append(self.pump)
        self.host = host
        self.port = port
        self.nop_interval = nop_interval
        self.logout_deadline = LOGOUT_DEADLINE
        self.protocols: set[_Protocol] = set()
        self._server: asyncio.Server | None = None
        #: Member port address -> its listener.
        self._members: dict[str, asyncio.Server] = {}
        self._pinger: asyncio.Task[None] | None = None
        self._syncing = asyncio.Lock()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = await asyncio.to_thread(self.network.listen, self.host, self.port)
        self._server = await loop.create_server(lambda: _Protocol(self), sock=sock)
        self._pinger = asyncio.create_task(self._ping_idle())

    async def move_group_ip(self, host: str) -> None:
        """Listen for logins on ``host`` instead of the group IP listened on until now (``grpparams
        group-ipaddress`` on the running server). Sessions on the old address go on until they log
        out; new logins there are refused by the system (nothing listens). Refused, with one log
        line and the old address kept, when ``host`` cannot be listened on."""
        if host == self.host:
            return
        async with self._syncing:
            try:
                sock = await asyncio.to_thread(self.network.listen, host, self.port)
            except OSError as error:
                log.warning("cannot listen on the new group IP %s:%d (%s): logins stay at %s:%d",
                            host, self.port, error.strerror or error, self.host, self.port)  # fmt: skip
                return
            old, self._server = self._server, await asyncio.get_running_loop().create_server(
                lambda: _Protocol(self), sock=sock
            )
            if old is not None:
                old.close()  # the listening socket only: its sessions keep their connections
            log.info("the group IP moved from %s:%d to %s:%d", self.host, self.port, host, self.port)
            self.host = host
            self.portal.move_group_ip(host)

    async def sync_listeners(self, hosts: set[str]) -> None:
        """Listen on exactly ``hosts`` (member ports) besides the group IP, on the same TCP port; one
        call at a time (two refreshes at once must not both start listening on a new port)."""
        async with self._syncing:
            await self._sync_listeners(hosts)

    async def _sync_listeners(self, hosts: set[str]) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.network.sync, self.portal.port_addresses(), hosts)
        for host in sorted(set(self._members) - hosts):
            listener = self._members.pop(host)
            listener.close()
            left = self.portal.member_left(host)
            for protocol in list(self.protocols):
                connection = protocol.connection
                if connection is None or connection.local_ip != host:
                    continue
                # A vacate moves sessions off before the member leaves; one still there is asked to go.
                if not (left and self._ask_to_move(connection, "its member left the group")):
                    connection.drop(f"port {host} went down", warn_initiator=False)
            log.info("member port %s:%d is no longer listened on", host, self.port)
        for host in sorted(hosts - set(self._members) - {self.host}):
            try:
                sock = await asyncio.to_thread(self.network.listen, host, self.port)
                self._members[host] = await loop.create_server(lambda: _Protocol(self), sock=sock)
            except OSError as error:
                log.warning("cannot listen on member port %s:%d: %s", host, self.port, error.strerror or error)
                continue
            log.info("listening on member port %s:%d", host, self.port)
        self.portal.listening = set(self._members)
        self.pump()

    def rehome(self) -> None:
        """Ask the portal's misplaced sessions to come back through the group IP (header)."""
        for connection, member in self.portal.misplaced():
            self._ask_to_move(connection, f"member {member} is no longer a home of its target")
        self.pump()

    def _ask_to_move(self, connection: Connection, why: str) -> bool:
        """Async Message event 1 to a normal session, dropped if still there after the deadline."""
        session = connection.session
        if session is None or session.discovery or not connection.request_logout(self.logout_deadline):
            return False
        log.info("asked %s (%s) at %s to log out and in again: %s (%s)",
                 session.initiator, connection.peer_ip, connection.local_ip, why, session.target)  # fmt: skip
        asyncio.get_running_loop().call_later(self.logout_deadline, self._overdue, connection)
        return True

    def _overdue(self, connection: Connection) -> None:
        if any(p.connection is connection for p in self.protocols) and not connection.closing:
            connection.drop("did not log out when asked to")
            self.pump()

    def pump(self) -> None:
        """Send everything queued on every connection; close the ones that are done."""
        for protocol in list(self.protocols):
            connection, transport = protocol.connection, protocol.transport
            if connection is None or transport is None or transport.is_closing():
                continue
            while True:
                self._submit(connection)
                out = connection.data_to_send()
                if out:
                    transport.writelines(out)  # may call pause_writing
                if connection.closing:
                    transport.close()
                    break
                if connection.paused or not connection.resume():
                    break

    def _submit(self, connection: Connection) -> None:
        """Hand the connection's engine work to the owner; its completions come back on the loop."""
        work = connection.work_to_run()
        while work and work[0].quick:  # while the owner idles, a quick command needs no hop
            ran, result = self.owner.run_inline(work[0].run)
            if not ran:
                break
            connection.completed(work.pop(0), result)
        if not work:
            return

        def done(results: list[object]) -> None:
            for item, result in zip(work, results, strict=True):
                failed = isinstance(result, Exception)
                connection.completed(item, _FAILED if failed and item.command else result)

        self.owner.submit_batch([item.run for item in work], done)

    async def _ping_idle(self) -> None:
        """NOP-In to connections idle for an interval; one silent for two is dropped (RFC 7143 11.19)."""
        while True:
            await asyncio.sleep(self.nop_interval)
            now = time.monotonic()
            for protocol in list(self.protocols):
                connection = protocol.connection
                if connection is None or connection.session is None:
                    continue
                idle = now - protocol.last_seen
                if idle > 2 * self.nop_interval:
                    connection.drop("no answer to NOP-In")
                elif idle > self.nop_interval:
                    connection.ping()
            self.pump()

    async def stop(self) -> None:
        """Stop listening, tell every initiator the connection will drop, and close."""
        if self._pinger is not None:
            self._pinger.cancel()
        if self._server is not None:
            self._server.close()
        for listener in self._members.values():
            listener.close()
        for protocol in list(self.protocols):
            if protocol.connection is not None:
                protocol.connection.drop("target shutting down")
        self.pump()
        await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()
