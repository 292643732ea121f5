"""``array-sim serve`` as a real process: CLI through the control channel, targets appearing and
disappearing without a restart, hostile connections, clean shutdown on SIGTERM and Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targets.iscsi.pdu import AsyncMessage, DataIn, LoginResponse, ScsiResponse

from .initiator import Initiator, SocketLink

pytestmark = pytest.mark.slow

ARRAY_SIM = str(Path(sys.executable).parent / "array-sim")
INITIATOR = "iqn.2026-11.test:server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.log = directory.with_suffix(".log")
        self.links: list[SocketLink] = []
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [ARRAY_SIM, "serve", "--dir", str(directory), "--portal", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while not (directory / "control.sock").exists():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def cli(self, *words: str) -> str:
        result = subprocess.run(
            [ARRAY_SIM, "cli", "--dir", str(self.directory), *words], capture_output=True, text=True, timeout=30
        )
        assert "% Error" not in result.stdout, result.stdout
        return result.stdout

    def iqn(self, volume: str) -> str:
        return next(
            line.split(": ", 1)[1]
            for line in self.cli("volume", "select", volume, "show").splitlines()
            if line.startswith("iSCSI Name:")
        )

    def link(self) -> SocketLink:
        link = SocketLink("127.0.0.1", self.port)
        self.links.append(link)
        return link

    def initiator(self, name: str = INITIATOR) -> Initiator:
        return Initiator(self.link(), name=name)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        for link in self.links:
            link.close()
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path / "group")
    server.cli("cli-settings", "confirmation", "off")
    server.cli("cli-settings", "formatoutput", "off")
    yield server
    if server.process.poll() is None:
        server.stop(signal.SIGKILL)
    for link in server.links:
        link.close()


def discovered(server: Server) -> list[str]:
    if shutil.which("iscsi-ls") is None:
        pytest.skip("iscsi-ls (libiscsi-bin) is not installed")
    out = subprocess.run(["iscsi-ls", f"iscsi://127.0.0.1:{server.port}"], capture_output=True, text=True, timeout=30)
    return [line.split()[0].removeprefix("Target:") for line in out.stdout.splitlines() if line.startswith("Target:")]


def test_targets_follow_the_cli_without_a_restart(server):
    server.cli("volume", "create", "v1", "100MB")
    server.cli("volume", "select", "v1", "access", "create", "ipaddress", "*.*.*.*")
    iqn = server.iqn("v1")
    assert discovered(server) == [iqn]

    ini = server.initiator()
    assert ini.login(iqn)[-1].status_class == 0
    assert "127.0.0.1" in server.cli("volume", "select", "v1", "show", "connections")
    assert "Connections: 1" in server.cli("volume", "select", "v1", "show")

    server.cli("volume", "select", "v1", "offline")
    goodbye = ini.exchange()
    assert any(isinstance(p, AsyncMessage) and p.async_event == 2 for p in goodbye)
    assert ini.link.closed
    assert discovered(server) == []

    server.cli("volume", "select", "v1", "online")
    snap = server.cli("volume", "select", "v1", "snapshot", "create-now").splitlines()[1].split()[-1]
    server.cli("volume", "select", "v1", "snapshot", "select", snap, "online")
    snap_iqn = next(
        line.split(": ", 1)[1]
        for line in server.cli("volume", "select", "v1", "snapshot", "select", snap, "show").splitlines()
        if line.startswith("iSCSI Name:")
    )
    assert sorted(discovered(server)) == sorted([iqn, snap_iqn])


def test_hostile_connections_do_not_hurt_the_server_or_the_data(server):
    server.cli("volume", "create", "v1", "100MB")
    server.cli("volume", "select", "v1", "access", "create", "initiator", INITIATOR)
    iqn = server.iqn("v1")
    ini = server.initiator()
    assert ini.login(iqn)[-1].status_class == 0
    ini.command(bytes(6))  # consume the power-on unit attention
    ini.command(bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), write=b"K" * 512)

    for garbage in (b"\xff" * 48, os.urandom(4096), b"\x43" + b"\x00" * 3 + b"\xff\xff\xff\xff" + bytes(40)):
        server.link().send(garbage)
    stranger = server.initiator("iqn.2026-11.test:stranger")
    assert stranger.login(iqn)[-1].status_detail == 0x02  # authorization failure

    replies = ini.command(bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), read=512)
    assert b"".join(bytes(r.data) for r in replies if isinstance(r, DataIn)) == b"K" * 512
    assert server.process.poll() is None
    log = server.log.read_text()
    assert "login refused" in log and "stranger" in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_is_clean_and_data_survives_a_restart(tmp_path, signum):
    server = Server(tmp_path / "group")
    server.cli("volume", "create", "v1", "100MB")
    server.cli("volume", "select", "v1", "access", "create", "initiator", INITIATOR)
    iqn = server.iqn("v1")
    ini = server.initiator()
    ini.login(iqn)
    ini.command(bytes(6))
    ini.command(bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), write=b"Z" * 512)
    assert server.stop(signum) == 0
    assert "shutting down" in server.log.read_text()
    assert not (server.directory / "control.sock").exists()

    for link in server.links:
        link.close()
    again = Server(tmp_path / "group")
    try:
        ini = again.initiator()
        response = ini.login(iqn)[-1]
        assert isinstance(response, LoginResponse) and response.status_class == 0
        ini.command(bytes(6))
        replies = ini.command(bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), read=512)
        assert b"".join(bytes(r.data) for r in replies if isinstance(r, DataIn)) == b"Z" * 512
    finally:
        again.stop()


def test_a_session_asked_to_move_that_stays_is_dropped_after_the_deadline(server):
    server.cli("simulate", "member", "add", "m2", "disks", "6", "disk-size", "400MB")
    server.cli("member", "select", "m2", "raid-policy", "raid10")
    server.cli("volume", "create", "v1", "100MB")
    server.cli("volume", "select", "v1", "access", "create", "ipaddress", "*.*.*.*")
    ini = server.initiator()
    assert ini.login(server.iqn("v1"))[-1].status_class == 0  # redirected to a member port and served there
    port = ini.link.sock.getpeername()[0]
    member = "member-1" if port in server.cli("member", "select", "member-1", "show") else "m2"
    server.cli("member", "select", member, "delete")
    asked = ini.exchange()
    assert any(isinstance(p, AsyncMessage) and (p.async_event, p.parameter3) == (1, 10) for p in asked), asked
    deadline = time.monotonic() + 20
    goodbye: list = []
    while not ini.link.closed and time.monotonic() < deadline:  # this initiator does not log out
        goodbye += ini.exchange()
    assert ini.link.closed and any(isinstance(p, AsyncMessage) and p.async_event == 2 for p in goodbye)
    assert "did not log out when asked to" in server.log.read_text()


def test_grpparams_group_ipaddress_moves_the_running_servers_group_ip(server):
    server.cli("volume", "create", "v1", "100MB")
    server.cli("volume", "select", "v1", "access", "create", "ipaddress", "*.*.*.*")
    iqn = server.iqn("v1")
    ini = server.initiator()
    assert ini.login(iqn)[-1].status_class == 0
    server.cli("grpparams", "group-ipaddress", "127.0.0.77")
    assert "Group-Ipaddress: 127.0.0.77" in server.cli("grpparams", "show")
    moved = subprocess.run(["iscsi-ls", "-s", f"iscsi://127.0.0.77:{server.port}"], capture_output=True, text=True,
                           timeout=30)  # fmt: skip
    assert f"Target:{iqn} Portal:127.0.0.77:{server.port}" in moved.stdout, moved.stdout + moved.stderr
    with pytest.raises(ConnectionRefusedError):  # nothing listens on the old group IP
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    tur = ini.command(bytes(6))  # TEST UNIT READY: a session already logged in goes on
    assert any(isinstance(p, ScsiResponse) and p.status == 0 for p in tur), tur
    # An address that cannot be listened on (taken): the old one stays, and the log says why.
    with socket.socket() as taken:
        taken.bind(("127.0.0.88", server.port))
        taken.listen()
        server.cli("grpparams", "group-ipaddress", "127.0.0.88")
        assert "cannot listen on the new group IP 127.0.0.88" in server.log.read_text()
        assert discovered_at(server, "127.0.0.77") == [iqn]


def discovered_at(server: Server, host: str) -> list[str]:
    out = subprocess.run(["iscsi-ls", f"iscsi://{host}:{server.port}"], capture_output=True, text=True, timeout=30)
    return [line.split()[0].removeprefix("Target:") for line in out.stdout.splitlines() if line.startswith("Target:")]


def test_tab_completion_reaches_the_running_server(server):
    from firmware_model.control import RemoteSession

    server.cli("chapuser", "create", "alice", "password", "secret123456")
    server.cli("volume", "create", "v1", "100MB")
    remote = RemoteSession(server.directory, "grpadmin", interactive=True)
    try:
        assert remote.complete("chapuser select ") == ["alice"]
        assert remote.complete("vol") == ["volume"]
        assert any("alice" in line for line in remote.execute("chapuser show"))  # the session goes on
    finally:
        remote.close()
