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


def _read_until(fd: int, text: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {text!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_tab_completes_keywords_and_names_and_history_recalls_a_line(tmp_path: Path) -> None:
    env = {**os.environ, "ARRAY_SIM_DIR": str(tmp_path / "g"), "TERM": "xterm"}
    subprocess.run([ARRAY_SIM, "init", "--member-size", "1GB"], env=env, check=True, capture_output=True)
    subprocess.run([ARRAY_SIM, "cli", "chapuser", "create", "alice", "password", "secret123456"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    main, side = os.openpty()
    cli = subprocess.Popen([ARRAY_SIM, "cli"], stdin=side, stdout=side, stderr=side, env=env, close_fds=True)
    os.close(side)
    try:
        _read_until(main, b"group-0> ")
        os.write(main, b"chapu\tsel\tal\tsh\t\r")  # -> chapuser select alice show
        shown = _read_until(main, b"Status: enable")
        assert b"chapuser select alice show" in shown and b"Name: alice" in shown
        _read_until(main, b"group-0> ")
        os.write(main, b"\x1b[A\r")  # the up arrow brings the last line back
        assert b"Name: alice" in _read_until(main, b"Status: enable")
        _read_until(main, b"group-0> ")
        os.write(main, b"chapuser ?\r")
        assert b"create a CHAP account" in _read_until(main, b"group-0> ")
        os.write(main, b"\x04")  # Ctrl-D ends the session
        assert cli.wait(timeout=20) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
        os.close(main)
