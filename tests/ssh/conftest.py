"""A real ``array-sim serve`` with its SSH listener, and the clients that reach it.

One server for the whole ``tests/ssh`` run (``serve``): a group made by ``array-sim init
--admin-password``, served on 127.0.0.1 with an iSCSI portal on a free port and ``--ssh-port 0``
(any free port; the test reads it from the log line ``SSH: ... on 127.0.0.1:PORT``). Tests that
change per-account settings or count login refusals use accounts of their own
(``serve.account(...)``), so they share the server without seeing each other.

``cinder_command`` is the Cinder PS driver's ``_ssh_execute`` as research/ps-cli.md 1.3 gives it:
a new channel on the pooled connection, ``invoke_shell`` without a PTY, the MOTD read up to the
prompt, ``stty columns 255\\r``, the command with ``\\r``, everything read up to the prompt (found
anywhere in what came, with the trailing blank) and split into lines, the channel closed.
"""

from __future__ import annotations

import itertools
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

ARRAY_SIM = str(Path(sys.executable).parent / "array-sim")
ADMIN_PASSWORD = "Cinder-1234"
GROUP = "group-0"
PROMPT = f"{GROUP}> "
_SSH_LINE = re.compile(r"SSH: the Group Manager CLI on 127\.0\.0\.1:(\d+)")
_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connect(port: int, account: str = "grpadmin", password: str | None = ADMIN_PASSWORD, **options: object
            ) -> paramiko.SSHClient:  # fmt: skip
    """A paramiko client logged in as Cinder's ``SSHPool.create`` does (``AutoAddPolicy``)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port, account, password=password, look_for_keys=False, allow_agent=False,
                   timeout=30, **options)  # type: ignore[arg-type]  # fmt: skip
    return client


def read_to_prompt(chan: paramiko.Channel, ending: str = PROMPT, timeout: float = 30) -> str:
    """The driver's ``_get_output`` loop: receive until ``ending`` is anywhere in what came."""
    chan.settimeout(timeout)
    out = ""
    while out.find(ending) == -1:
        data = chan.recv(102400)
        if not data:
            raise ConnectionError(f"The PS array has closed the connection (after {out!r}).")
        out += data.decode()
    return out


def cinder_command(client: paramiko.SSHClient, command: str) -> list[str]:
    """One command the way the Cinder PS driver sends it (module header)."""
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
    try:
        chan.invoke_shell()
        read_to_prompt(chan)  # "Reading CLI MOTD"
        chan.send("stty columns 255\r")
        read_to_prompt(chan)
        chan.send(command + "\r")
        return read_to_prompt(chan).splitlines()
    finally:
        chan.close()


def exec_command(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    """``exec_command``: (exit status, output)."""
    stdin, stdout, _ = client.exec_command(command, timeout=30)
    stdin.close()
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out


class Serve:
    """The ``array-sim serve`` process of the run, with the helpers above (test modules cannot import
    this one: pytest runs with ``--import-mode=importlib``)."""

    PROMPT = PROMPT
    ADMIN_PASSWORD = ADMIN_PASSWORD
    cinder_command = staticmethod(cinder_command)
    exec_command = staticmethod(exec_command)
    read_to_prompt = staticmethod(read_to_prompt)

    def __init__(
        self, directory: Path, init: bool = True, ssh_port: str = "0", password: str = ADMIN_PASSWORD
    ) -> None:
        """``init`` with ``--admin-password``, then ``serve``; without ``init``, serve an existing group (a
        restart) or make one (serve's first run)."""
        self.directory = directory
        self.password = password
        self.log = directory.with_name(directory.name + f"-{next(_names)}.log")
        if init:
            init_args = ["--member-size", "20GB", "--raid-policy", "file", "--admin-password", password]
            subprocess.run([ARRAY_SIM, "init", "--dir", str(directory), *init_args], check=True, capture_output=True,
                           timeout=60)  # fmt: skip
        self.iscsi_port = free_port()
        self._admin: paramiko.SSHClient | None = None
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [ARRAY_SIM, "serve", "--dir", str(directory), "--portal", f"127.0.0.1:{self.iscsi_port}",
                 "--ssh-port", ssh_port], stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            found = _SSH_LINE.search(self.log.read_text())
            if found and (directory / "control.sock").exists():
                self.port = int(found.group(1))
                break
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "serve did not start:\n" + self.log.read_text()
            time.sleep(0.05)

    def connect(self, account: str = "grpadmin", password: str | None = "", **options: object
                ) -> paramiko.SSHClient:  # fmt: skip
        """Logged in as ``account`` (grpadmin with its password by default; ``password=None``: a key)."""
        return connect(self.port, account, self.password if password == "" else password, **options)

    def admin(self, command: str) -> list[str]:
        """A command of the administrator (exec, no terminal, on one connection kept open), which must
        succeed."""
        transport = self._admin.get_transport() if self._admin is not None else None
        if transport is None or not transport.is_active():
            self._admin = self.connect()
        status, out = exec_command(self._admin, command)
        assert status == 0, (command, out)
        return out.splitlines()

    def account(self, *options: str, password: str = "Pass-1234") -> str:
        """A new account of its own for one test (module header); returns its name."""
        name = f"user{next(_names)}"
        self.admin(" ".join(["account create", name, "password", password, *options]))
        return name

    def events(self) -> list[str]:
        return self.admin("show events")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def _end(server: Serve) -> None:
    if server._admin is not None:
        server._admin.close()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """The server the tests share (module header)."""
    server = Serve(tmp_path_factory.mktemp("ssh") / "group")
    try:
        yield server
    finally:
        _end(server)


@pytest.fixture
def own_serve(tmp_path: Path) -> Iterator[Serve]:
    """A server of the test's own, for one that counts the group's objects or stops the server."""
    server = Serve(tmp_path / "group")
    try:
        yield server
    finally:
        _end(server)


@pytest.fixture
def make_serve() -> Iterator[Callable[..., Serve]]:
    """``make_serve(directory, init=..., ssh_port=...)``: servers of the test's own, stopped at its end."""
    made: list[Serve] = []

    def make(directory: Path, **options: Any) -> Serve:
        made.append(Serve(directory, **options))
        return made[-1]

    try:
        yield make
    finally:
        for server in made:
            _end(server)
