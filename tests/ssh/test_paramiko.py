"""The Group Manager over SSH, driven by paramiko as the Cinder PS driver drives it (research/ps-cli.md
1.3-1.8), and as other scripts do: shells with and without a terminal, exec channels, logins refused."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import paramiko
import pytest

pytestmark = pytest.mark.slow  # a real serve with SSH per module: the whole suite runs it

INITIATOR = "iqn.1993-08.org.debian:01:2227dab76162"


def parse_connection(initiator: str, out: list[str]) -> str | None:
    """The driver's ``_parse_connection`` (ps-cli.md 1.6): blank-filtered lines, two per record."""
    lines = [line for line in out if line != ""]
    for i in range(0, len(lines), 2):
        try:
            int(lines[i][0])
            if len(lines[i + 1].split()) == 1:
                check = lines[i].split()[1] + lines[i + 1].strip()
                if initiator == check:
                    return lines[i].split()[0]
        except (IndexError, ValueError):
            pass
    return None


def shell(client: paramiko.SSHClient, pty: bool = False) -> paramiko.Channel:
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
    if pty:
        chan.get_pty(width=200)
    chan.invoke_shell()
    return chan


def test_the_cinder_pattern_finds_its_access_record(serve: Any) -> None:
    """MOTD, ``stty columns 255``, the command, read to the prompt; nothing echoed, nothing paged."""
    account = serve.account()
    client = serve.connect(account, "Pass-1234")
    try:
        chan = shell(client)
        motd = serve.read_to_prompt(chan)
        assert motd.endswith(serve.PROMPT) and motd.count(serve.PROMPT) == 1
        chan.close()
        for setting in ("confirmation", "paging", "events", "formatoutput"):  # do_setup, a session each
            assert serve.cinder_command(client, f"cli-settings {setting} off") == ["", serve.PROMPT]
        group_ip = next(line for line in serve.cinder_command(client, "grpparams show")
                        if line.startswith("Group-Ipaddress:"))  # fmt: skip
        assert group_ip.rstrip().partition(" ")[-1] == "127.0.0.1"
        name = f"volume-{uuid.uuid4()}"
        created = serve.cinder_command(client, f"volume create {name} 1G thin-provision")
        assert created[0] == "" and created[-1] == serve.PROMPT
        prefix = "iSCSI target name is "
        iqn = next(line for line in created if line.startswith(prefix))[len(prefix) : -1]  # the driver's [:-1]
        assert iqn.endswith(name)
        assert serve.cinder_command(client, f"volume select {name} multihost-access enable") == ["", serve.PROMPT]
        out = serve.cinder_command(client, f"volume select {name} access show")
        assert parse_connection(INITIATOR, out) is None
        serve.cinder_command(client, f"volume select {name} access create initiator {INITIATOR}")
        out = serve.cinder_command(client, f"volume select {name} access show")
        assert out[0] == "" and out[-1] == serve.PROMPT and "access show" not in "".join(out)  # no echo
        assert parse_connection(INITIATOR, out) == "1"
        assert serve.cinder_command(client, f"volume select {name} offline") == ["", serve.PROMPT]
        deleted = serve.cinder_command(client, f"volume delete {name}")
        assert deleted[1] == "Volume deletion succeeded."  # eayunstack's check: result[1]
    finally:
        client.close()


def test_every_line_ending_works_and_an_empty_line_is_a_fresh_prompt(serve: Any) -> None:
    client = serve.connect()
    try:
        chan = shell(client)
        serve.read_to_prompt(chan)
        for text in ("whoami\r", "whoami\r\n", "whoami\n", "whoami\x1a"):
            chan.send(text)
            assert serve.read_to_prompt(chan) == f"\r\ngrpadmin\r\n{serve.PROMPT}"
        chan.send("whoami\r")
        assert serve.read_to_prompt(chan).endswith(serve.PROMPT)
        chan.send("\n")  # the LF of that CR LF, late: no second prompt
        chan.send("\r\n")  # an empty line: a fresh prompt only
        assert serve.read_to_prompt(chan) == f"\r\n{serve.PROMPT}"
        chan.send("whoami\rstty show\rwhoami\r")  # several commands at once (XenRT, Eucalyptus)
        out = ""
        while out.count(serve.PROMPT) < 3:
            out += chan.recv(65536).decode()
        assert out == (f"\r\ngrpadmin\r\n{serve.PROMPT}\r\ncolumns: 80\r\nhardwrap: on\r\n{serve.PROMPT}"
                       f"\r\ngrpadmin\r\n{serve.PROMPT}")  # fmt: skip
    finally:
        client.close()


def test_stty_is_per_session_and_cli_settings_persist_per_account(serve: Any) -> None:
    account = serve.account()
    client = serve.connect(account, "Pass-1234")
    try:
        assert serve.cinder_command(client, "stty hardwrap off") == ["", serve.PROMPT]
        assert serve.cinder_command(client, "cli-settings displayinMB on") == ["", serve.PROMPT]
        assert serve.cinder_command(client, "stty show")[1:3] == ["columns: 255", "hardwrap: on"]  # a new session
        assert "displayinMB: on" in serve.cinder_command(client, "cli-settings show")
        assert "displayinMB: off" in serve.admin("cli-settings show")  # another account's own
    finally:
        client.close()


def test_exec_command_exits_non_zero_on_error(serve: Any) -> None:
    client = serve.connect()
    try:
        status, out = serve.exec_command(client, "volume show")
        assert status == 0 and out.splitlines()[0].startswith("Name ")
        status, out = serve.exec_command(client, "volume select no-such-volume show")
        assert status == 1 and out == "% Error - Volume no-such-volume does not exist.\n"
        status, out = serve.exec_command(client, "")
        assert (status, out) == (0, "")
    finally:
        client.close()


def test_a_confirmation_is_asked_over_a_shell_and_refused_cleanly_on_exec(serve: Any) -> None:
    account = serve.account()  # confirmation on: the array's default
    client = serve.connect(account, "Pass-1234")
    try:
        serve.exec_command(client, "volume create keepme 15MB")
        serve.exec_command(client, "volume select keepme offline")
        status, out = serve.exec_command(client, "volume delete keepme")
        assert status == 1 and "no terminal to answer it; nothing was done" in out
        assert serve.exec_command(client, "volume select keepme show")[0] == 0
        for pty in (False, True):
            serve.exec_command(client, "volume create askme 15MB")
            serve.exec_command(client, "volume select askme offline")
            chan = shell(client, pty)
            serve.read_to_prompt(chan)
            chan.send("volume delete askme\r")
            question = serve.read_to_prompt(chan, "(y/n) [n] ")
            assert question.endswith("Do you really want to delete the volume askme? (y/n) [n] ")
            chan.send("y\r")
            assert "Volume deletion succeeded." in serve.read_to_prompt(chan)
            chan.send("logout\r")
            serve.read_to_prompt(chan, "(y/n) [n] ")
            chan.send("y\r")
            assert chan.recv_exit_status() == 0
            assert serve.exec_command(client, "volume select askme show")[0] == 1
    finally:
        client.close()


def test_logout_and_exit_close_the_channel(serve: Any) -> None:
    account = serve.account()
    client = serve.connect(account, "Pass-1234")
    try:
        serve.exec_command(client, "cli-settings confirmation off")
        for word in ("logout", "exit"):
            chan = shell(client)
            serve.read_to_prompt(chan)
            chan.send(f"{word}\r")
            assert chan.recv_exit_status() == 0
            rest = b""
            while data := chan.recv(1024):
                rest += data
            assert serve.PROMPT.encode() not in rest
        chan = shell(client)
        serve.read_to_prompt(chan)
        chan.send("volume select nothing-here\r")
        assert "does not exist" in serve.read_to_prompt(chan)
    finally:
        client.close()


def test_a_terminal_echoes_and_takes_its_width(serve: Any) -> None:
    client = serve.connect()
    try:
        chan = shell(client, pty=True)
        serve.read_to_prompt(chan)
        chan.send("whoami\r")
        assert serve.read_to_prompt(chan) == f"whoami\r\ngrpadmin\r\n{serve.PROMPT}"
        chan.send("stty show\r")
        assert "columns: 200" in serve.read_to_prompt(chan)
        chan.resize_pty(width=132)
        time.sleep(0.2)
        chan.send("stty show\r")
        assert "columns: 132" in serve.read_to_prompt(chan)
    finally:
        client.close()


@pytest.mark.slow  # three refusals, each answered after the guard's delay: 2 s of waiting
def test_wrong_password_and_unknown_account_are_refused_slower_each_time_and_logged(serve: Any) -> None:
    account = serve.account()
    took = []
    for _ in range(2):
        start = time.monotonic()
        with pytest.raises(paramiko.AuthenticationException):
            serve.connect(account, "Wrong-pass1")
        took.append(time.monotonic() - start)
    assert took[0] >= 0.5 and took[1] >= took[0] + 0.3, took  # 0.5 s, then 1 s (firmware_model/ssh/guard.py)
    with pytest.raises(paramiko.AuthenticationException):
        serve.connect("nosuchuser", "Pass-1234")
    events = serve.events()
    refused = f"SSH login to account {account} from 127.0.0.1 refused: wrong password."
    assert sum(refused in line for line in events) == 2
    assert any("SSH login to account nosuchuser from 127.0.0.1 refused: unknown or disabled account." in line
               and ":WARNING:" in line for line in events)  # fmt: skip
    client = serve.connect(account, "Pass-1234")  # the right one still works at once
    client.close()


def test_a_disabled_account_cannot_log_in_and_a_read_only_one_only_shows(serve: Any) -> None:
    viewer = serve.account("read-only")
    client = serve.connect(viewer, "Pass-1234")
    try:
        status, out = serve.exec_command(client, "volume create nope 15MB")
        assert status == 1 and f"Account {viewer} is read-only" in out
        assert serve.exec_command(client, "volume show")[0] == 0
        assert serve.exec_command(client, "cli-settings paging off")[0] == 0
    finally:
        client.close()
    serve.admin(f"account select {viewer} disable")
    with pytest.raises(paramiko.AuthenticationException):
        serve.connect(viewer, "Pass-1234")


def test_an_rsa_key_logs_in_as_the_cinder_driver_would(serve: Any) -> None:
    """``san_private_key``: the driver loads an RSA key (``RSAKey.from_private_key_file``)."""
    account = serve.account()
    key = paramiko.RSAKey.generate(2048)
    serve.admin(f'account select {account} ssh-key add "ssh-rsa {key.get_base64()} cinder@controller"')
    client = serve.connect(account, None, pkey=key)
    try:
        assert serve.exec_command(client, "whoami") == (0, f"{account}\n")
    finally:
        client.close()
    with pytest.raises(paramiko.AuthenticationException):
        serve.connect(account, None, pkey=paramiko.RSAKey.generate(2048))


def test_hostile_input_and_lost_clients_leave_serve_serving(serve: Any) -> None:
    client = serve.connect()
    try:
        chan = shell(client)
        serve.read_to_prompt(chan)
        chan.sendall(b"x" * ((1 << 20) + 100) + b"\r")  # over the 1 MiB line bound
        assert "% Error - The command line is too long" in serve.read_to_prompt(chan, timeout=60)
        chan.send("whoami\r")
        assert "grpadmin" in serve.read_to_prompt(chan)
        chan.sendall(b"\xff\xfe bad utf-8 \xc3\r")
        assert "% Error" in serve.read_to_prompt(chan)
        lost = shell(client)
        serve.read_to_prompt(lost)
        lost.send("volume create lost-client 150MB\r")
        lost.close()  # gone before the reply: the command completes all the same
    finally:
        client.close()
    raw = socket.create_connection(("127.0.0.1", serve.port))
    raw.sendall(b"SSH-2.0-garbage\r\n" + b"\x00" * 5000)
    raw.close()
    deadline = time.monotonic() + 10
    while serve.exec_command(admin := serve.connect(), "volume select lost-client show")[0] != 0:
        admin.close()
        assert time.monotonic() < deadline, "the lost client's command did not complete"
        time.sleep(0.1)
    admin.close()
    assert serve.process.poll() is None
