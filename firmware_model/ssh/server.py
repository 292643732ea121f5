"""``serve``'s SSH listener: the Group Manager CLI on the group IP, for the group's accounts.

Rules of this module:

1. The listener is on the group IP (where the network puts it: ``serve --netns`` listens inside
   the lab), port 22 unless ``serve --ssh-port N`` names another (0: any free port; the port is
   logged). Without ``--ssh-port``, a port 22 that cannot be listened on (taken by the host's
   sshd, or not root) is one log line and serve goes on without SSH; a port named that cannot be
   listened on stops serve with one line, as the iSCSI portal does. When the group IP moves
   (``grpparams group-ipaddress``) the listener follows it on the same port; connections already
   open stay.
2. Host keys (Ed25519 and ECDSA P-256, for clients from before Ed25519) are made once and kept in
   the group directory (``ssh_host_ed25519_key``, ``ssh_host_ecdsa_key``, mode 0600), so a client's
   known_hosts entry holds across restarts.
3. Logins: a password (or keyboard-interactive, which asyncssh ties to it) checked off the engine
   owner (``accounts`` rule 1), or the account's one public key. Every refused password is an
   event (``WARNING``, with the account and the address), answered after the guard's delay
   (``guard``); a connection is closed after ``MAX_TRIES`` refusals, and one address may hold at
   most ``MAX_UNAUTHENTICATED`` connections that have not logged in. A refused public key is no
   event (ssh offers every key it has before asking for a password); a connection that ends after
   only refused keys is one. A disabled or deleted account logs in no more; an account's channels
   read its type when they open.
4. Nothing but session channels: no port forwarding, agent or X11 forwarding, sftp or scp; at most
   ``MAX_CHANNELS`` channels open per connection.
5. ``stop`` closes every connection and waits for the channels' commands to complete before the
   engine owner stops (``channel`` rule 1).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh

from array_sim import Group
from array_sim.accounts import DEFAULT_ADMIN, Accounts, check_password, parse_public_key
from array_sim.naming import shown
from targets.port_network import PortNetwork

from ..cli.session import Live, Session
from .channel import MAX_EDITED, AccountSession, CliChannel
from .guard import LoginGuard

__all__ = ["SshServer", "SshListenError", "DEFAULT_SSH_PORT"]

log = logging.getLogger("array_sim")

DEFAULT_SSH_PORT = 22
MAX_TRIES = 6
MAX_UNAUTHENTICATED = 10
MAX_CHANNELS = 32
#: Seconds a client has to log in (the Cinder driver's connect timeout is 30 s).
LOGIN_TIMEOUT = 60
_HOST_KEYS = (("ssh_host_ed25519_key", "ssh-ed25519"), ("ssh_host_ecdsa_key", "ecdsa-sha2-nistp256"))


class SshListenError(Exception):
    """The SSH port named by ``--ssh-port`` cannot be listened on."""


def host_keys(directory: Path) -> list[asyncssh.SSHKey]:
    """The group's host keys, made the first time (rule 2)."""
    keys = []
    for name, algorithm in _HOST_KEYS:
        path = directory / name
        try:
            keys.append(asyncssh.read_private_key(str(path)))
            continue
        except FileNotFoundError:
            pass
        except (asyncssh.KeyImportError, OSError) as error:
            log.warning("SSH host key %s is unreadable (%s): a new one is made", path, error)
            path.unlink(missing_ok=True)
        key = asyncssh.generate_private_key(algorithm)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key.export_private_key())
        keys.append(key)
    return keys


class SshFront:
    """What the listener and its channels share: the group through its owner, and the guard."""

    def __init__(
        self, group: Group, owner: Any, live: Live, after_command: Callable[[], Awaitable[None]]
    ) -> None:
        self.group, self.owner, self.live, self.after_command = group, owner, live, after_command
        self.guard = LoginGuard()
        self.accounts = Accounts(group.catalog, group.clock)
        #: The task of every open channel (``stop`` waits for them).
        self.channels: set[asyncio.Task[None]] = set()
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.waiting: Counter[str] = Counter()

    # on the engine owner

    def login_record(self, name: str) -> tuple[str, bool]:
        """(password record, the account may log in)."""
        account = self.accounts.find(name)
        return self.accounts.password_record(name), account is not None and account.enabled

    def public_key(self, name: str) -> bytes | None:
        account = self.accounts.find(name)
        if account is None or not account.enabled or not account.public_key:
            return None
        return parse_public_key(account.public_key).blob

    def open_session(self, name: str, interactive: bool, columns: int) -> tuple[Session, str] | str:
        """The CLI session of a channel and its first prompt, or why there is none (the account went
        since the login)."""
        account = self.accounts.find(name)
        if account is None or not account.enabled:
            return f"% Error - Account {name} does not exist or is disabled."
        session = AccountSession(self.group, name, interactive, self.live, account.read_only)
        session.columns = max(1, min(columns, 1024))
        return session, session.prompt


class _Login(asyncssh.SSHServer):
    """One connection's authentication (rule 3) and its channels (rule 4)."""

    def __init__(self, front: SshFront) -> None:
        self.front = front
        self.conn: asyncssh.SSHServerConnection | None = None
        self.address = "?"
        self.account = ""
        self.method = ""
        self.authenticated = False
        self.refusals = 0
        self.keys_refused = False
        self.password_tried = False
        self.open_channels = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self.front.connections.add(conn)
        self.front.waiting[self.address] += 1
        if self.front.waiting[self.address] > MAX_UNAUTHENTICATED:
            log.info("SSH connection from %s closed: %d others from there have not logged in yet",
                     self.address, MAX_UNAUTHENTICATED)  # fmt: skip
            conn.close()

    def connection_lost(self, exc: Exception | None) -> None:
        front = self.front
        front.connections.discard(self.conn)  # type: ignore[arg-type]
        if self.authenticated:
            log.info("SSH logout: %s from %s", self.account, self.address)
            return
        self._stop_waiting()
        if self.keys_refused and not self.password_tried and self.account:
            # rule 3: a login that ended after refused keys only is one refused attempt
            task = asyncio.get_running_loop().create_task(self._event("no key of the account was offered"))
            front.channels.add(task)
            task.add_done_callback(front.channels.discard)

    def begin_auth(self, username: str) -> bool:
        self.account = username
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        self.password_tried = True
        front = self.front
        record, may_log_in = await front.owner.run(front.login_record, username)
        matches = await asyncio.to_thread(check_password, record, password)
        if matches and may_log_in:
            self._accepted(username, "password")
            return True
        await self._refused(username, "wrong password" if may_log_in else "unknown or disabled account")
        return False

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        blob = await self.front.owner.run(self.front.public_key, username)
        if blob is not None and blob == key.public_data:
            self._accepted(username, "public key")
            return True
        self.keys_refused = True
        return False

    def auth_completed(self) -> None:
        self.authenticated = True
        self._stop_waiting()
        log.info("SSH login: %s from %s (%s)", self.account, self.address, self.method)

    def session_requested(self) -> asyncssh.SSHServerSession | bool:  # type: ignore[type-arg]
        if not self.authenticated or self.open_channels >= MAX_CHANNELS:
            return False
        self.open_channels += 1
        return CliChannel(self.front, self.account, self.address, self._channel_closed)

    def _channel_closed(self, we_closed_first: bool) -> None:
        self.open_channels -= 1
        if we_closed_first and self.conn is not None:
            self.conn.send_debug("")  # the client's CLOSE gets an answer for its ACK (channel rule 5)

    def _accepted(self, username: str, method: str) -> None:
        self.account, self.method = username, method
        self.front.guard.accepted(username, self.address)

    async def _refused(self, username: str, why: str) -> None:
        self.refusals += 1
        delay = self.front.guard.refused(username, self.address, asyncio.get_running_loop().time())
        await self._event(why)
        await asyncio.sleep(delay)
        if self.refusals >= MAX_TRIES and self.conn is not None:
            self.conn.close()

    async def _event(self, why: str) -> None:
        message = f"SSH login to account {shown(self.account, 32)} from {self.address} refused: {why}."
        await self.front.owner.run(self.front.group.log_event, "WARNING", message)

    def _stop_waiting(self) -> None:
        waiting = self.front.waiting
        if waiting[self.address] > 0:
            waiting[self.address] -= 1
            if not waiting[self.address]:
                del waiting[self.address]


class SshServer:
    """The SSH listener of a running ``serve`` (rules 1 and 5)."""

    def __init__(
        self, group: Group, owner: Any, live: Live, after_command: Callable[[], Awaitable[None]],
        network: PortNetwork, port: int | None,
    ) -> None:  # fmt: skip
        self.front = SshFront(group, owner, live, after_command)
        self.network = network
        self.wanted_port = port
        self.host = ""
        self.port = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._keys: list[asyncssh.SSHKey] = []

    async def start(self) -> None:
        """Listen (rule 1); makes ``grpadmin`` first if the group has no such account.

        Raises:
            SshListenError: the port ``--ssh-port`` named cannot be listened on.
        """
        logging.getLogger("asyncssh").setLevel(logging.WARNING)  # one line per login is ours to log
        front = self.front
        group_ip = await front.owner.run(lambda: front.group.group_ip)
        host, port = self.network.address(group_ip), DEFAULT_SSH_PORT if self.wanted_port is None else self.wanted_port
        try:
            sock = await asyncio.to_thread(self.network.listen, host, port)
        except OSError as error:
            why = os.strerror(error.errno).lower() if error.errno else str(error)
            if self.wanted_port is not None:
                raise SshListenError(f"cannot listen for SSH on {host}:{port}: {why}") from None
            log.info("no SSH: cannot listen on %s:%d (%s); serve --ssh-port N listens on another port (0: any)",
                     host, port, why)  # fmt: skip
            sock = None
        password = await front.owner.run(front.accounts.ensure_default_admin)
        if password is not None:  # for this start or the next one that can listen
            log.info("account %s made for SSH logins, password %s (shown only now; 'account select %s passwd P'"
                     " changes it)", DEFAULT_ADMIN, password, DEFAULT_ADMIN)  # fmt: skip
        if sock is None:
            return
        try:
            self._keys = await asyncio.to_thread(host_keys, front.group.directory)
        except BaseException:
            sock.close()
            raise
        await self._listen(sock, host)
        log.info("SSH: the Group Manager CLI on %s:%d (accounts: 'account show')", self.host, self.port)

    async def _listen(self, sock: Any, host: str) -> None:
        old, self._acceptor = self._acceptor, await asyncssh.listen(
            sock=sock, server_factory=lambda: _Login(self.front), server_host_keys=self._keys,
            encoding="utf-8", errors="replace", line_editor=True, line_history=200,
            max_line_length=MAX_EDITED, login_timeout=LOGIN_TIMEOUT, allow_scp=False,
            agent_forwarding=False, x11_forwarding=False, server_version="array_sim",
        )  # fmt: skip
        if old is not None:
            old.close()
        self.host, self.port = host, self._acceptor.get_port()

    async def sync(self) -> None:
        """After a CLI command or an event: follow the group IP (rule 1)."""
        if self._acceptor is None:
            return
        group = self.front.group
        host = self.network.address(await self.front.owner.run(lambda: group.group_ip))
        if host == self.host:
            return
        try:
            sock = await asyncio.to_thread(self.network.listen, host, self.port)
        except OSError as error:
            log.warning("cannot listen for SSH on the new group IP %s:%d (%s): SSH stays at %s:%d",
                        host, self.port, error.strerror or error, self.host, self.port)  # fmt: skip
            return
        old_host = self.host
        await self._listen(sock, host)
        log.info("SSH moved from %s:%d to %s:%d", old_host, self.port, host, self.port)

    async def stop(self) -> None:
        """Rule 5."""
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        for conn in list(self.front.connections):
            conn.close()
        deadline = asyncio.get_running_loop().time() + 30
        await asyncio.sleep(0)  # the connections' ends run: their channels (and last events) are in the set
        while pending := [task for task in self.front.channels if not task.done()]:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning("SSH: %d channels still busy at shutdown", len(pending))
                break
            await asyncio.wait(pending, timeout=left)
