"""A qemu-io writer that keeps writing until the test has seen what it waits for, then verifies.

A fixed list of ``-c`` commands races the test: on a fast run qemu-io finishes its writes before a
cable is pulled or a member's data has moved away, and the re-login the test looks for never has to
happen. This writer drives one qemu-io through its stdin, one command at a time (it waits for the
``qemu-io>`` prompt after each), so the session is busy for as long as the test wants: it writes 4 MiB
patterns at successive offsets until ``until()`` holds (checked after every write), then writes a few
more, reads back every region with the pattern last written there, and quits. qemu-io exits 1 when
any command failed, and its output names the failure.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence

PROMPT = b"qemu-io> "
CHUNK_MIB = 4


class PatternWriter:
    """One qemu-io process over ``url`` (``prefix`` runs it, e.g. in a network namespace)."""

    def __init__(self, url: str, *, size_mib: int, prefix: Sequence[str] = ()) -> None:
        self.regions = size_mib // CHUNK_MIB
        self.proc = subprocess.Popen([*prefix, "qemu-io", "-f", "raw", url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        self.output: list[str] = [self._until_prompt(timeout=60)]
        self.written: dict[int, int] = {}  # region -> pattern
        self._next = 0

    def _until_prompt(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + timeout
        while not seen.endswith(PROMPT):
            assert time.monotonic() < deadline, f"qemu-io gave no prompt: {seen!r}"
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break  # qemu-io ended
            seen += chunk
        return seen.decode(errors="replace")

    def command(self, line: str, timeout: float = 120) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        out = self._until_prompt(timeout)
        self.output.append(out)
        return out

    def write_one(self) -> None:
        region = self._next % self.regions
        pattern = 0x20 + self._next % 200
        self.command(f"write -P 0x{pattern:02x} {region * CHUNK_MIB}M {CHUNK_MIB}M")
        self.written[region] = pattern
        self._next += 1

    def write_until(self, until: Callable[[], bool], *, then: int = 8, timeout: float = 240) -> None:
        """Write until ``until()`` holds, then ``then`` writes more (through the new session)."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline and self.proc.poll() is None, "".join(self.output[-5:])
            self.write_one()
        for _ in range(then):
            self.write_one()

    def verify_and_quit(self) -> tuple[int, str]:
        """Read back every region written; qemu-io's exit status and its whole output."""
        for region, pattern in sorted(self.written.items()):
            self.command(f"read -P 0x{pattern:02x} {region * CHUNK_MIB}M {CHUNK_MIB}M")
        rest, _ = self.proc.communicate(b"quit\n", timeout=60)  # closes the pipes
        self.output.append(rest.decode(errors="replace"))
        return self.proc.returncode, "".join(self.output)
