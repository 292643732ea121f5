"""``serve``'s SSH listener as a process: where it listens, what it keeps, how it starts and stops."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest

from array_sim import Group

pytestmark = pytest.mark.slow  # servers of their own, started and stopped

ARRAY_SIM = str(Path(__file__).parents[2] / ".venv" / "bin" / "array-sim")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(directory: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = directory.with_suffix(".log")
    with log.open("w") as out:
        portal = f"127.0.0.1:{_free_port()}"
        process = subprocess.Popen([ARRAY_SIM, "serve", "--dir", str(directory), "--portal", portal, *args],
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    return process, log


def _wait_for(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
        time.sleep(0.05)
    return log.read_text()


def test_a_busy_port_22_is_one_line_and_serve_goes_on_without_ssh(tmp_path: Path) -> None:
    holder: socket.socket | None = socket.socket()
    try:
        holder.bind(("127.0.0.1", 22))  # root, and no sshd there: take it; else it is not ours to take anyway
        holder.listen()
    except OSError:
        holder.close()
        holder = None
    try:
        Group.init(tmp_path / "g", member_size=1 << 30, raid_policy="file").close()
        process, log = _serve(tmp_path / "g")
        text = _wait_for(log, "serving group", process)
        said = [line for line in text.splitlines() if "no SSH" in line]
        assert len(said) == 1 and "no SSH: cannot listen on 127.0.0.1:22 (" in said[0], text
        assert "serve --ssh-port N" in said[0] and "SSH: the Group Manager CLI" not in text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if holder is not None:
            holder.close()


def test_a_busy_ssh_port_named_stops_serve_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        Group.init(tmp_path / "g", member_size=1 << 30, raid_policy="file").close()
        port = holder.getsockname()[1]
        result = subprocess.run([ARRAY_SIM, "serve", "--dir", str(tmp_path / "g"), "--portal",
                                 f"127.0.0.1:{_free_port()}", "--ssh-port", str(port)], capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == f"array-sim: cannot listen for SSH on 127.0.0.1:{port}: address already in use\n"
    assert "Traceback" not in result.stdout
    bad = subprocess.run([ARRAY_SIM, "serve", "--dir", str(tmp_path / "g"), "--ssh-port", "70000"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "invalid port '70000'" in bad.stderr


def test_host_keys_are_kept_and_sigterm_ends_open_sessions(tmp_path: Path, make_serve: Callable[..., Any]) -> None:
    first = make_serve(tmp_path / "g")
    client = first.connect()
    fingerprint = client.get_transport().get_remote_server_key().get_fingerprint()  # type: ignore[union-attr]
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
    chan.invoke_shell()
    first.read_to_prompt(chan)
    started = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - started < 10
    chan.settimeout(10)
    assert chan.recv(1024) == b""  # the session ended with the server
    client.close()
    for name in ("ssh_host_ed25519_key", "ssh_host_ecdsa_key"):
        assert (tmp_path / "g" / name).stat().st_mode & 0o777 == 0o600
    again = make_serve(tmp_path / "g", init=False)
    client = again.connect()
    assert client.get_transport().get_remote_server_key().get_fingerprint() == fingerprint  # type: ignore[union-attr]
    client.close()


def test_first_serve_of_a_group_makes_grpadmin_and_says_its_password(
    tmp_path: Path, make_serve: Callable[..., Any]
) -> None:
    server = make_serve(tmp_path / "fresh", init=False)
    found = re.search(r"account grpadmin made for SSH logins, password (\S+) \(shown only now", server.log.read_text())
    assert found, server.log.read_text()
    server.password = found.group(1)
    assert server.admin("whoami") == ["grpadmin"]


def test_the_listener_follows_the_group_ip(tmp_path: Path, make_serve: Callable[..., Any]) -> None:
    server = make_serve(tmp_path / "g")
    server.admin("grpparams group-ipaddress 127.0.0.5")
    _wait_for(server.log, f"SSH moved from 127.0.0.1:{server.port} to 127.0.0.5:{server.port}", server.process)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.5", server.port, "grpadmin", password=server.password, look_for_keys=False,
                   allow_agent=False, timeout=30)  # fmt: skip
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
