#!/usr/bin/env python3
"""Data moved between pools, and the group IP's login redirect, measured over iSCSI on one server.

    python benchmarks/pool_moves.py [--quick] [--dir DIR] [--reps N] [--seconds S] [--size 1GB]

``array-sim serve`` on two RAID 6 members, member-1 in pool ``default`` and member-2 in ``mirror``,
one thick volume filled through iSCSI (untimed); four same-run ratios (benchmarks/README.md):

1. ``volume select V pool P``, timed until ``volume select V show`` says ``Operation: none`` with
   only the new pool's member in ``Members:``, against a plain copy of as many bytes in the same
   directory (15 MiB ``pread``/``pwrite`` chunks, one ``fsync``): mover/plain, in MB/s.
2. 4 KiB random read and write QD32 (``qemu-img bench -t none``) while a thread keeps the volume
   moving, against idle, same request count: moving/idle (goal 0.5), and the mover's MB/s meanwhile.
3. Logins per second at the group IP (0x0101 to a member port, followed) against straight at that
   port, raw (one Login Request to full feature, a Logout) and with an ``iscsi-inq`` process each.
4. 4 KiB random read QD32, 1 MiB sequential read and write QD8: two ``qemu-img bench`` at once on the
   member's eth0 and eth1 (the second from mid-volume) against one on eth0; total over the longer run.

Rules: median (min-max) of ``--reps`` repetitions (3, 1 with ``--quick``), the two sides of a ratio
taking turns to go first, ratios paired per repetition: on the shared 2-vCPU development VM only
ratios within one run mean anything. Only 127.0.0.1 and 127.0.0.x are used; the server, initiators
and temporary directory (under ``--dir``) go at the end, on errors and Ctrl-C too. The CLI is spoken
over the control socket (``firmware_model/control.py``): an ``array-sim cli`` process per poll costs
0.4 s of CPU. ``--quick`` (240MB, 0.5 s runs) is for tests/benchmarks/test_pool_moves_bench.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import iscsi_peer  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
PAGE = 15 * MiB
RANDOM_STEP = 32436224  # 7919 x 4 KiB, as benchmarks/iscsi.py
POOLS = ("default", "mirror")
INITIATOR = "iqn.2026-12.bench:pool-moves"
REDIRECTED = 0x0101  # RFC 7143 11.13.5: target moved temporarily


# --------------------------------------------------------------------------- the CLI


def fields(lines: list[str]) -> dict[str, str]:
    """The ``Key: value`` pairs of a ``show`` (two columns a line, split on runs of spaces)."""
    found = {}
    for line in lines:
        for part in re.split(r"\s{2,}", line.strip()):
            key, sep, value = part.partition(":")
            if sep and key and " " not in key:
                found[key] = value.strip()
    return found


class Control:
    """One CLI session inside the running server: JSON lines over ``control.sock``."""

    def __init__(self, group_dir: Path) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.connect(str(group_dir / "control.sock"))
        self._file = self._socket.makefile("rwb")
        self._exchange({"account": "grpadmin", "interactive": False})

    def _exchange(self, message: dict[str, object]) -> list[str]:
        self._file.write(json.dumps(message).encode() + b"\n")
        self._file.flush()
        raw = self._file.readline()
        if not raw:
            raise ConnectionError("the server closed the control channel")
        return list(json.loads(raw)["lines"])

    def __call__(self, *words: str) -> list[str]:
        lines = self._exchange({"words": list(words)})
        if any(line.startswith("% Error") for line in lines):
            raise RuntimeError(f"{' '.join(words)}: {' '.join(lines)}")
        return lines

    def volume(self, name: str) -> dict[str, str]:
        return fields(self("volume", "select", name, "show"))

    def close(self) -> None:
        self._file.close()
        self._socket.close()


def percent(operation: str) -> int:
    match = re.search(r"(\d+)%", operation)
    return int(match.group(1)) if match else 0


def settled(state: dict[str, str], members: dict[str, str]) -> bool:
    """No move concerns the volume: no operation, and its data is on its pool's member alone."""
    return state["Operation"] == "none" and state["Members"] == members[state["Pool"]]


def wait_settled(ctl: Control, volume: str, members: dict[str, str], timeout: float = 1800) -> float | None:
    """Poll every 50 ms until ``volume`` is settled; seconds until a move first reported 1%, if one did."""
    start, first = time.perf_counter(), None
    while not settled(state := ctl.volume(volume), members):
        if first is None and percent(state["Operation"]):
            first = time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{volume} still moving after {timeout:.0f} s: {state['Operation']}")
        time.sleep(0.05)
    return first


class KeepMoving(threading.Thread):
    """Keeps ``volume`` moving: whenever no move is under way, starts one to the other pool.

    ``progress`` is the percentage of the volume moved since the start (100 per move finished).
    """

    def __init__(self, group_dir: Path, volume: str, members: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.ctl, self.volume, self.members = Control(group_dir), volume, members
        self.progress, self.started, self.moves = 0, 0, 0
        self.halt, self.error = threading.Event(), None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                state = self.ctl.volume(self.volume)
                if settled(state, self.members):
                    self.moves += self.started > 0
                    other = next(p for p in POOLS if p != state["Pool"])
                    self.ctl("volume", "select", self.volume, "pool", other)
                    self.started += 1
                self.progress = 100 * self.moves + percent(state["Operation"])
                time.sleep(0.1)
        except Exception as error:  # reported by the main thread
            self.error = error
        finally:
            self.ctl.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        if self.error:
            raise RuntimeError(f"the move thread failed: {self.error}")


# --------------------------------------------------------------------------- initiators


def bench_command(url: str, count: int, size: int, depth: int, write: bool, random: bool, offset: int) -> list[str]:
    command = ["qemu-img", "bench", "-f", "raw", "-t", "none", "-d", str(depth), "-s", str(size), "-c", str(count)]
    command += ["-o", str(offset)] + (["-S", str(RANDOM_STEP)] if random else [])
    return command + (["-w", "--pattern=0x5a"] if write else []) + [url]


def run_benches(commands: list[list[str]]) -> list[float]:
    """Run the ``qemu-img bench`` commands at once; the seconds each reported."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands]
    try:
        outputs = [proc.communicate(timeout=900)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    seconds = []
    for proc, output in zip(procs, outputs, strict=True):
        match = re.search(r"Run completed in ([\d.]+) seconds", output)
        if proc.returncode != 0 or not match:
            raise RuntimeError(f"qemu-img bench failed ({proc.returncode}): {output.strip()}")
        seconds.append(max(float(match.group(1)), 1e-6))
    return seconds


def bench(url: str, count: int, size: int, depth: int, write: bool = False, random: bool = False) -> float:
    return run_benches([bench_command(url, count, size, depth, write, random, 0)])[0]


def calibrate(url: str, seconds: float, size: int, depth: int, write: bool = False, random: bool = False) -> int:
    """A request count that lasts about ``seconds`` (doubling from a small probe)."""
    count = 256 if size < MiB else 16
    while (elapsed := bench(url, count, size, depth, write, random)) < 0.25 and count < 1 << 22:
        count *= 2
    return max(4 * depth, int(count * seconds / elapsed))


def _pdu(stream: BinaryIO) -> tuple[bytes, bytes]:
    """(BHS, data segment) of the next PDU (no digests are negotiated)."""
    header = stream.read(48)
    length = int.from_bytes(header[5:8], "big") if len(header) == 48 else 0
    data = stream.read((length + 3) & ~3)
    if len(header) < 48 or len(data) < (length + 3) & ~3:
        raise ConnectionError("the target closed the connection")
    return header, data[:length]


def connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def login(stream: BinaryIO, iqn: str) -> tuple[int, dict[str, str], bytes]:
    """One Login Request, operational stage to full feature: (status, keys answered, response BHS)."""
    text = b"".join(f"{k}={v}\0".encode() for k, v in (("InitiatorName", INITIATOR), ("TargetName", iqn),
                                                       ("SessionType", "Normal")))  # fmt: skip
    isid = b"\x80\0\0\x42\0\1"  # random-type ISID; the same each time (a session reinstates the last)
    stream.write(struct.pack(">BBBBB3s6sHIHHII16x", 0x43, 0x87, 0, 0, 0, len(text).to_bytes(3, "big"), isid, 0, 1,
                             0, 0, 1, 0) + text + b"\0" * (-len(text) % 4))  # fmt: skip
    stream.flush()
    header, data = _pdu(stream)
    if header[0] & 0x3F != 0x23:
        raise RuntimeError(f"opcode {header[0]:#x} instead of a Login Response")
    keys = dict(pair.partition("=")[::2] for pair in data.decode().split("\0") if pair)
    return header[36] << 8 | header[37], keys, header


def login_logout(host: str, port: int, iqn: str, follow: bool = True) -> str | None:
    """Log in (following one redirect) and out; the ``TargetAddress`` redirected to, if one was."""
    with connect(host, port) as sock, sock.makefile("rwb") as stream:
        status, keys, header = login(stream, iqn)
        if status != REDIRECTED or not follow:
            if status != 0:
                raise RuntimeError(f"login to {host}:{port} refused: status {status:#06x}")
            stat_sn, cmd_sn = struct.unpack(">II", header[24:32])
            stream.write(struct.pack(">BBHB3s8xIHHII16x", 0x46, 0x80, 0, 0, bytes(3), 2, 0, 0, cmd_sn, stat_sn + 1))
            stream.flush()
            if _pdu(stream)[0][0] & 0x3F != 0x26:
                raise RuntimeError("no Logout Response")
            return None
    member_host, _, member_port = keys["TargetAddress"].partition(",")[0].rpartition(":")
    login_logout(member_host, int(member_port), iqn, follow=False)
    return keys["TargetAddress"]


def logins_per_second(once: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count < 5:
        once()
        count += 1
    return count / elapsed


def plain_copy(source: Path, target: Path, nbytes: int) -> float:
    """Seconds to copy ``nbytes`` of ``source`` to a new ``target`` in 15 MiB chunks, fsync included."""
    src, dst = os.open(source, os.O_RDONLY), os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start, offset = time.perf_counter(), 0
        while offset < nbytes:
            offset += os.pwrite(dst, os.pread(src, min(PAGE, nbytes - offset), offset), offset)
        os.fsync(dst)
        return time.perf_counter() - start
    finally:
        os.close(src)
        os.close(dst)
        target.unlink()


# --------------------------------------------------------------------------- the run


def fmt(values: list[float], digits: int = 0) -> str:
    med = f"{statistics.median(values):,.{digits}f}"
    return med if len(values) == 1 else f"{med} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def ratio_line(label: str, a: list[float], b: list[float], names: str, unit: str) -> str:
    """``label  A a-figures unit  B b-figures unit  A/B ratios`` (ratios paired per repetition)."""
    first, second = names.split("/")
    ratios = fmt([x / y for x, y in zip(a, b, strict=True)], 2)
    return f"{label:36} {first} {fmt(a)} {unit}  {second} {fmt(b)} {unit}  {names} {ratios}"


def paired(reps: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], list[float]]:
    """``reps`` results of ``a`` and of ``b``, which one goes first alternating from one repetition to the next."""
    results: tuple[list[float], list[float]] = ([], [])
    for rep in range(reps):
        for side in (0, 1) if rep % 2 == 0 else (1, 0):
            results[side].append((a, b)[side]())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 240MB volume, 1 repetition of ~0.5 s")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, 1 with --quick)")
    parser.add_argument("--seconds", type=float, help="length of one measured run (default 3, 0.5 with --quick)")
    parser.add_argument("--size", help="the volume (default 1GB, 240MB with --quick)")
    parser.add_argument("--dir", type=Path, help="parent of the temporary directory (default system temp)")
    args = parser.parse_args(argv)
    reps, seconds = args.reps or (1 if args.quick else 3), args.seconds or (0.5 if args.quick else 3.0)
    size = args.size or ("240MB" if args.quick else "1GB")
    nbytes = int(size[:-2]) << {"MB": 20, "GB": 30}[size[-2:]]
    for tool in ("qemu-img", "iscsi-inq"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the server, remove the files
    started = time.monotonic()
    gib = -(-(2 * nbytes + 2 * (1 << 30)) >> 30)  # the volume, its 100% snapshot reserve, room to spare
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pool-moves-", dir=args.dir)))
        target = stack.enter_context(
            iscsi_peer.our_target(tmp, size=size, member_size=f"{gib}GB", options=("multihost-access", "enable"))
        )
        ctl = Control(target.group_dir)
        stack.callback(ctl.close)
        ctl("pool", "create", POOLS[1])
        ctl("simulate", "member", "add", "member-2", "disk-size", f"{-(-gib // 8)}GB", "pool", POOLS[1])
        ctl("member", "select", "member-2", "raid-policy", "raid6")
        members = dict(zip(POOLS, ("member-1", "member-2"), strict=True))
        deadline = time.monotonic() + 300
        while fields(ctl("member", "select", "member-2", "show"))["RaidStatus"] != "ok":
            if time.monotonic() > deadline:
                raise TimeoutError("member-2's new RAID set was not verified within 300 s")
            time.sleep(0.2)  # the new RAID set is verified first
        volume, url = "bench", target.url()
        fill = bench(url, -(-nbytes // MiB), MiB, 8, write=True)
        print(f"# {size} thick volume filled through iSCSI in {fill:.1f} s; two RAID 6 members, one per pool;"
              f" {reps} reps of ~{seconds} s; load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip

        # 1. page mover against a plain copy
        source = tmp / "plain-source"
        with open(source, "wb") as f:
            chunk = os.urandom(PAGE)
            for offset in range(0, nbytes, PAGE):
                f.write(chunk[: nbytes - offset])
            os.fsync(f.fileno())
        first: list[float] = []  # seconds until the move reported 1%

        def mover_side() -> float:
            start = time.perf_counter()
            ctl("volume", "select", volume, "pool", next(p for p in POOLS if p != ctl.volume(volume)["Pool"]))
            to_first = wait_settled(ctl, volume, members)
            elapsed = time.perf_counter() - start
            first.append(elapsed if to_first is None else to_first)
            return nbytes / elapsed / 1e6

        mover, plain = paired(reps, mover_side, lambda: nbytes / plain_copy(source, tmp / "plain-copy", nbytes) / 1e6)
        source.unlink()
        print(ratio_line("1. page mover vs plain copy", mover, plain, "mover/plain", "MB/s"))
        print(f"   (1% of the move first reported after {fmt(first, 2)} s)", flush=True)

        # 2. 4 KiB QD32 random I/O while the volume moves
        for name, write in (("read", False), ("write", True)):
            wait_settled(ctl, volume, members)
            count = calibrate(url, seconds, 4 * KiB, 32, write=write, random=True)
            under_load, restarts = [], 0

            def idle_side() -> float:
                wait_settled(ctl, volume, members)
                return count / bench(url, count, 4 * KiB, 32, write=write, random=True)

            def moving_side() -> float:
                nonlocal restarts
                wait_settled(ctl, volume, members)
                keeper = KeepMoving(target.group_dir, volume, members)
                keeper.start()
                try:
                    deadline = time.monotonic() + 30
                    while keeper.progress < 1 and keeper.error is None and time.monotonic() < deadline:
                        time.sleep(0.02)  # the move has begun (the server looks for new work once a second)
                    before, begun = keeper.progress, keeper.started
                    elapsed = bench(url, count, 4 * KiB, 32, write=write, random=True)
                    moved, restarts = keeper.progress - before, restarts + keeper.started - begun
                finally:
                    keeper.stop()
                under_load.append(moved / 100 * nbytes / elapsed / 1e6)
                return count / elapsed

            idle, moving = paired(reps, idle_side, moving_side)
            print(ratio_line(f"2. 4 KiB rand {name} QD32, move", moving, idle, "moving/idle", "IOPS"))
            print(f"   (mover under that load {fmt(under_load, 1)} MB/s; moves restarted during the runs: {restarts})",
                  flush=True)  # fmt: skip
        wait_settled(ctl, volume, members)

        # 3. logins per second through the group IP's redirect and straight at the member port
        redirected_to = login_logout("127.0.0.1", target.port, target.iqn)
        if redirected_to is None:
            raise RuntimeError("a login at the group IP was not redirected to a member port")
        member_host = redirected_to.partition(",")[0].rpartition(":")[0]
        print(f"   (group IP 127.0.0.1:{target.port} redirects to {redirected_to})")
        drivers = {
            "raw login+logout": lambda host: login_logout(host, target.port, target.iqn),
            "iscsi-inq process": lambda host: subprocess.run(
                ["iscsi-inq", "-i", INITIATOR, f"iscsi://{host}:{target.port}/{target.iqn}/0"],
                check=True, capture_output=True, timeout=30,
            ),
        }  # fmt: skip
        for name, driver in drivers.items():
            via_group, direct = paired(reps, lambda: logins_per_second(lambda: driver("127.0.0.1"), seconds),
                                       lambda: logins_per_second(lambda: driver(member_host), seconds))  # fmt: skip
            print(ratio_line(f"3. logins/s, {name}", via_group, direct, "redirect/direct", "/s"), flush=True)

        # 4. two sessions on two member ports against one on one port
        member = ctl.volume(volume)["Members"]
        ports = re.findall(r"^eth\d+\s+(\S+)\s+up\b", "\n".join(ctl("member", "select", member, "show")), re.M)
        urls = [f"iscsi://{host}:{target.port}/{target.iqn}/0" for host in ports[:2]]
        print(f"   ({member}'s ports: {', '.join(ports)})")
        for name, io_size, depth, write, random, unit in (
            ("4 KiB rand read QD32", 4 * KiB, 32, False, True, "IOPS"),
            ("1 MiB seq read QD8", MiB, 8, False, False, "MB/s"),
            ("1 MiB seq write QD8", MiB, 8, True, False, "MB/s"),
        ):
            count = calibrate(urls[0], seconds, io_size, depth, write, random)
            scale = io_size / 1e6 if unit == "MB/s" else 1

            def run(n: int) -> float:
                commands = [bench_command(u, count, io_size, depth, write, random, i * nbytes // 2 // MiB * MiB)
                            for i, u in enumerate(urls[:n])]  # fmt: skip
                return n * count / max(run_benches(commands)) * scale

            one, two = paired(reps, lambda: run(1), lambda: run(2))
            print(ratio_line(f"4. {name}, 2 ports vs 1", two, one, "two/one", unit), flush=True)
    print(f"\ntotal time {time.monotonic() - started:.0f} s. Only ratios taken within one run mean anything.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
