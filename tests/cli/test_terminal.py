"""``array-sim cli`` on a real terminal (a pseudo-terminal): tab completion from the command tree, history
and ``?``, through the stdlib's readline, as a person types them."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two processes on a pseudo-terminal

ARRAY_SIM = str(Path(sys.executable).parent / "array-sim")


class Terminal:
    """The main side of a pseudo-terminal, read up to an expected text; what came after it is kept for
    the next read (a prompt often arrives in the same chunk as the output before it)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pending = fd, b""

    def read_until(self, text: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.pending:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r} in {self.pending!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.pending += os.read(self.fd, 4096)
                except OSError:
                    break  # the terminal closed
        assert text in self.pending, f"the terminal closed before {text!r}: {self.pending!r}"
        end = self.pending.find(text) + len(text)
        seen, self.pending = self.pending[:end], self.pending[end:]
        return seen


def test_tab_completes_keywords_and_names_and_history_recalls_a_line(tmp_path: Path) -> None:
    env = {**os.environ, "ARRAY_SIM_DIR": str(tmp_path / "g"), "TERM": "xterm"}
    subprocess.run([ARRAY_SIM, "init", "--member-size", "1GB"], env=env, check=True, capture_output=True)
    subprocess.run([ARRAY_SIM, "cli", "chapuser", "create", "alice", "password", "secret123456"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    main, side = os.openpty()
    cli = subprocess.Popen([ARRAY_SIM, "cli"], stdin=side, stdout=side, stderr=side, env=env, close_fds=True)
    os.close(side)
    terminal = Terminal(main)
    try:
        terminal.read_until(b"group-0> ")
        os.write(main, b"chapu\tsel\tal\tsh\t\r")  # -> chapuser select alice show
        shown = terminal.read_until(b"Status: enable")
        assert b"chapuser select alice show" in shown and b"Name: alice" in shown
        terminal.read_until(b"group-0> ")
        os.write(main, b"\x1b[A\r")  # the up arrow brings the last line back
        assert b"Name: alice" in terminal.read_until(b"Status: enable")
        terminal.read_until(b"group-0> ")
        os.write(main, b"chapuser ?\r")
        assert b"create a CHAP account" in terminal.read_until(b"group-0> ")
        os.write(main, b"\x04")  # Ctrl-D ends the session
        assert cli.wait(timeout=20) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.wait(timeout=20)
        os.close(main)
