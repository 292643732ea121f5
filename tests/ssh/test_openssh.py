"""A person's ``ssh grpadmin@group``: OpenSSH's client, with a password (sshpass) or an Ed25519 key,
with and without a terminal (``-t``; the terminal is a pseudo-terminal this test holds)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.slow,  # an ssh process per test, a terminal driven keystroke by keystroke
    pytest.mark.skipif(not (shutil.which("ssh") and shutil.which("sshpass")), reason="needs ssh and sshpass"),
]

OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           "-o", "ConnectTimeout=30"]  # fmt: skip


def ssh(serve: Any, account: str, *args: str, password: str | None = "Pass-1234") -> list[str]:
    command = ["ssh", *OPTIONS, "-p", str(serve.port), *args, f"{account}@127.0.0.1"]
    if password is None:
        return command
    return ["sshpass", "-p", password, *command[:1], "-o", "PubkeyAuthentication=no", *command[1:]]


class Terminal:
    """``ssh -tt`` on a pseudo-terminal: keystrokes in, the screen's bytes out."""

    def __init__(self, command: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def expect(self, text: str, timeout: float = 20) -> str:
        """Everything up to and including ``text``."""
        wanted, deadline = text.encode(), time.monotonic() + timeout
        while wanted not in self.seen:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {text!r} on the screen; it shows {self.seen[-400:]!r}"
            try:
                self.seen += os.read(self.master, 65536)
            except OSError:
                raise AssertionError(f"ssh ended before {text!r}: {self.seen[-400:]!r}") from None
        end = self.seen.index(wanted) + len(wanted)
        screen, self.seen = self.seen[:end], self.seen[end:]
        return screen.decode(errors="replace")

    def close(self) -> int:
        try:
            return self.process.wait(timeout=20)
        finally:
            os.close(self.master)


def test_one_command_per_ssh_exits_with_its_status(serve: Any) -> None:
    account = serve.account()
    ok = subprocess.run(ssh(serve, account) + ["volume show"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("Name "), ok
    bad = subprocess.run(ssh(serve, account) + ["volume select absent show"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert bad.returncode == 1 and bad.stdout == "% Error - Volume absent does not exist.\n", bad
    wrong = subprocess.run(ssh(serve, account, password="Bad-pass12") + ["whoami"], capture_output=True, timeout=60)
    assert wrong.returncode != 0


def test_ssh_without_a_terminal_reads_commands_from_its_input(serve: Any) -> None:
    account = serve.account()
    result = subprocess.run(ssh(serve, account), input=b"whoami\nstty show\n", capture_output=True, timeout=60)
    assert result.returncode == 0, result
    out = result.stdout.decode()  # as it came: no echo, CR LF line ends, the prompt after every reply
    assert out.endswith(f"\r\n{account}\r\n{serve.PROMPT}\r\ncolumns: 80\r\nhardwrap: on\r\n{serve.PROMPT}"), out
    assert "Welcome to Group Manager" in out


def test_a_terminal_echoes_edits_completes_and_remembers(serve: Any) -> None:
    account = serve.account()
    term = Terminal(ssh(serve, account, "-tt"))
    try:
        assert "Welcome to Group Manager" in term.expect(serve.PROMPT)
        term.type("who")
        term.expect("who")
        term.type("\t")
        term.expect("whoami ")  # completed from the command tree
        term.type("\r")
        assert f"{account}\r\n" in term.expect(serve.PROMPT)
        term.type("cli-settings \t")
        assert "confirmation  paging" in term.expect("reprintBadInput")  # the choices, listed
        term.expect(serve.PROMPT + "cli-settings ")  # and the line, drawn again under them
        term.type("\x15")  # Ctrl-U: the line goes
        term.type("\x1b[A\r")  # Up: the last line run, again
        assert f"whoami \r\n{account}\r\n" in term.expect(serve.PROMPT)  # as completed: with its blank
        term.type("bogus\r")
        term.expect("% Error - Bad command 'bogus'")
        term.expect(serve.PROMPT + "bogus")  # reprintBadInput: the refused line, ready for editing
        term.type("\x03")  # Ctrl-C drops it
        term.expect("^C")
        term.type("volume create tty-vol 15MB\r")
        term.expect("Volume creation succeeded.")
        term.type("volume select tty-vol offline\r")
        term.expect(serve.PROMPT)
        term.type("volume delete tty-vol\r")
        term.expect("(y/n) [n] ")
        term.type("y\r")
        assert "Volume deletion succeeded." in term.expect(serve.PROMPT)
        term.type("logout\r")
        term.expect("(y/n) [n] ")
        term.type("y\r")
        assert term.close() == 0
    finally:
        if term.process.poll() is None:
            term.process.kill()


def test_exec_at_a_terminal_asks_its_question(serve: Any) -> None:
    account = serve.account()
    serve.admin("volume create asked-vol 15MB")
    serve.admin("volume select asked-vol offline")
    term = Terminal(ssh(serve, account, "-tt") + ["volume delete asked-vol"])
    term.expect("Do you really want to delete the volume asked-vol? (y/n) [n] ")
    term.type("n\r")
    assert "% Error - Not confirmed, nothing was done." in term.expect("nothing was done.")
    assert term.close() == 1
    assert serve.admin("volume select asked-vol show")


def test_an_ed25519_key_logs_in_without_a_password(serve: Any, tmp_path: Path) -> None:
    account = serve.account()
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@laptop", "-f", str(key)], check=True)
    serve.admin(f'account select {account} ssh-key add "{key.with_suffix(".pub").read_text().strip()}"')
    assert any("admin@laptop" in line for line in serve.admin(f"account select {account} ssh-key show"))
    args = ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    result = subprocess.run(ssh(serve, account, *args, password=None) + ["whoami"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (0, f"{account}\n"), result
    other = serve.account()
    refused = subprocess.run(ssh(serve, other, *args, password=None) + ["whoami"], capture_output=True, timeout=60)
    assert refused.returncode == 255
    deadline = time.monotonic() + 10  # the event is logged once the refused connection has ended
    while not any(f"account {other} from 127.0.0.1 refused: no key of the account was offered" in line
                  for line in serve.events()):  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.1)
