#!/usr/bin/env python3
"""The longest event-loop pause of ``array-sim serve`` while SYNCHRONIZE CACHE runs on a busy volume,
or while a RAID 6 member reconstructs under reads.

    python benchmarks/loop_pause.py [--seconds S] [--write-mib N] [--rebuild [--fill-mib N]] [--iops]

Starts ``array-sim serve`` (a thick volume open to any IP, multi-host access enabled, on member-1,
RAID 6 over 12 disk files) with ``ARRAY_SIM_LOOP_LAG=1``, which makes the server log, every second,
the longest lateness of a 1 ms timer on its event loop. One initiator (``qemu-img bench``, 4 KiB
random reads at queue depth 1) keeps a read load going for ``--seconds``, and:

* by default another (``qemu-io``) writes ``--write-mib`` MiB and then flushes (SYNCHRONIZE CACHE,
  which fsyncs the member's disk files), over and over;
* with ``--rebuild``, the 2GB volume is first filled with ``--fill-mib`` MiB of 1 MiB writes, then
  disk 3 of member-1 is failed through the CLI (``simulate member select member-1 disk 3 fail``, on
  the server's control socket): the spare takes its place and the server's background steps
  rebuild it while the reads go on. The run ends after ``--seconds`` or when the server logs that
  reconstruction finished, whichever comes first.

Printed: the loop's longest pause over the run and per second (median, and how many seconds had one
of 10 ms or more), the reads completed, the write+flush rounds or how far reconstruction got; and
the same pause figures of an idle event loop in another process measured the same way during the
same run: the machine's floor (a pause there is the VM not running us, and nothing the server can
remove). A pause is what every session waits for while the loop is busy with something else.

``--iops`` instead runs 4 KiB random read and write at queue depth 1 and 32 and 1 MiB sequential
read and write at queue depth 8 (``qemu-img bench -t none``, about ``--seconds`` each), for a
before/after comparison of the target itself when tgt is not installed (``benchmarks/iscsi.py``
needs it). Run it with ``PYTHONPATH`` pointing at another checkout to measure that one.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

import iscsi_peer  # the script's directory is on sys.path
import uvloop

MiB = 1 << 20
LAG = re.compile(rb"loop lag: max ([0-9.]+) ms")
RUN = re.compile(r"Run completed in ([0-9.]+) seconds")
#: The event line ``array-sim serve`` logs when a spare is rebuilt.
FINISHED = re.compile(rb"Reconstruction of RAID set [0-9]+ finished")
#: The disk failed by ``--rebuild`` (any disk in a role will do; the spare takes its place).
FAILED_DISK = 3


def _url(target: iscsi_peer.OurTarget) -> str:
    return f"iscsi://127.0.0.1:{target.ports[0]}/{target.iqn}/{target.lun}"


def _bench(url: str, size: int, depth: int, count: int, write: bool, random: bool) -> float:
    """Requests per second of one ``qemu-img bench`` run."""
    args = ["qemu-img", "bench", "-f", "raw", "-t", "none", "-c", str(count), "-d", str(depth), "-s", str(size)]
    args += ["-S", str(7919 * 4096)] if random else []
    args += ["-w"] if write else []
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True, timeout=600).stdout
    match = RUN.search(out)
    assert match, out
    return count / float(match.group(1))


def iops(target: iscsi_peer.OurTarget, seconds: float) -> None:
    url = _url(target)
    subprocess.run(["qemu-img", "bench", "-f", "raw", "-t", "none", "-w", "-c", "1024", "-d", "8", "-s", str(MiB),
                    url], check=True, capture_output=True, timeout=600)  # fmt: skip
    for name, size, depth, write, random in [
        ("4 KiB rand read QD1", 4096, 1, False, True),
        ("4 KiB rand read QD32", 4096, 32, False, True),
        ("4 KiB rand write QD1", 4096, 1, True, True),
        ("4 KiB rand write QD32", 4096, 32, True, True),
        ("1 MiB seq read QD8", MiB, 8, False, False),
        ("1 MiB seq write QD8", MiB, 8, True, False),
    ]:
        rate = _bench(url, size, depth, 200, write, random)  # calibrate to about ``seconds``
        samples = [_bench(url, size, depth, max(200, int(rate * seconds)), write, random) for _ in range(3)]
        unit, scale = ("MB/s", size / 1e6) if size == MiB else ("IOPS", 1)
        figures = sorted(s * scale for s in samples)
        print(f"{name:24} {figures[1]:10.0f} {unit} ({figures[0]:.0f}-{figures[2]:.0f})", flush=True)


# ------------------------------------------------------------------ pause figures


def _floor_probe(stop: Event, out: Connection) -> None:
    """In a process of its own: what ``array-sim serve`` logs with ARRAY_SIM_LOOP_LAG (the longest
    lateness of a 1 ms timer per second, on uvloop), for an event loop with nothing else to do."""

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        worst, lags, report = 0.0, [], loop.time() + 1.0
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - before - 0.001)
            if loop.time() >= report:
                lags.append(worst * 1e3)
                worst, report = 0.0, loop.time() + 1.0
        out.send(lags)

    uvloop.run(watch())


class Floor:
    """The idle event loop of another process, measured while the ``with`` block runs."""

    def __enter__(self) -> Floor:
        self._stop = multiprocessing.Event()
        self._receive, send = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.Process(target=_floor_probe, args=(self._stop, send), daemon=True)
        self._process.start()
        self.lags: list[float] = []
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.lags = self._receive.recv() if self._receive.poll(10) else []
        self._process.join(10)


def _server_lags(target: iscsi_peer.OurTarget, start: int) -> list[float]:
    time.sleep(1.2)  # the next per-second lag line
    assert target.log is not None
    with open(target.log, "rb") as log:
        log.seek(start)
        return [float(m) for m in LAG.findall(log.read())]


def _print_pauses(server: list[float], floor: list[float]) -> None:
    for name, lags in (("server", server), ("idle loop in another process (the machine's floor)", floor)):
        if lags:
            long = sum(lag >= 10 for lag in lags)
            print(f"event-loop pause, {name}: max {max(lags):.1f} ms; per second median {statistics.median(lags):.1f}"
                  f" ms, {long} of {len(lags)} seconds with a pause of 10 ms or more")  # fmt: skip
        else:
            print(f"event-loop pause, {name}: no figures (is ARRAY_SIM_LOOP_LAG honoured by this checkout?)")


def _reads(url: str, seconds: float, going: Callable[[], bool] = lambda: True) -> tuple[int, float]:
    """(count, seconds) of 4 KiB random reads at QD1, in rounds of 500, for ``seconds`` or while ``going()``."""
    began = time.monotonic()
    reads = 0
    while time.monotonic() - began < seconds and going():
        _bench(url, 4096, 1, 500, False, True)
        reads += 500
    return reads, time.monotonic() - began


def pause(target: iscsi_peer.OurTarget, seconds: float, write_mib: int) -> None:
    url = _url(target)
    done = threading.Event()
    rounds = 0

    def writer() -> None:
        nonlocal rounds
        offset = 0
        while not done.is_set():
            write = f"write -P {rounds % 250 + 1} {offset} {write_mib}M"
            subprocess.run(["qemu-io", "-f", "raw", "-t", "none", "-c", write, "-c", "flush", url], check=True,
                           capture_output=True, timeout=600)  # fmt: skip
            offset = (offset + write_mib * MiB) % (512 * MiB)
            rounds += 1

    assert target.log is not None
    start = target.log.stat().st_size
    thread = threading.Thread(target=writer)
    with Floor() as floor:
        thread.start()
        reads, elapsed = _reads(url, seconds)
        done.set()
        thread.join()
    print(f"run: {elapsed:.1f} s, {reads} 4 KiB reads at QD1 ({reads / elapsed:.0f}/s), "
          f"{rounds} rounds of {write_mib} MiB write + SYNCHRONIZE CACHE")  # fmt: skip
    _print_pauses(_server_lags(target, start), floor.lags)


def _finished(target: iscsi_peer.OurTarget, start: int) -> bool:
    """Whether the server logged the end of a reconstruction after byte ``start`` of its log."""
    assert target.log is not None
    with open(target.log, "rb") as log:
        log.seek(start)
        return FINISHED.search(log.read()) is not None


def rebuild(target: iscsi_peer.OurTarget, seconds: float, fill_mib: int) -> None:
    url = _url(target)
    began = time.monotonic()
    subprocess.run(["qemu-img", "bench", "-f", "raw", "-t", "none", "-w", "-c", str(fill_mib), "-d", "8", "-s",
                    str(MiB), url], check=True, capture_output=True, timeout=600)  # fmt: skip
    print(f"filled {fill_mib} MiB in {time.monotonic() - began:.1f} s; failing disk {FAILED_DISK} of member-1")
    assert target.log is not None
    start = target.log.stat().st_size
    with Floor() as floor:
        target.cli("simulate", "member", "select", "member-1", "disk", str(FAILED_DISK), "fail")
        reads, elapsed = _reads(url, seconds, going=lambda: not _finished(target, start))
    lines = target.cli("member", "select", "member-1", "show")
    fields = dict(part.strip().split(": ", 1) for line in lines for part in line.split("  ") if ": " in part)
    status = f"RaidStatus {fields['RaidStatus']}, {fields['RaidPercentage']}"
    progress = "it finished" if _finished(target, start) else status
    print(f"run: {elapsed:.1f} s, {reads} 4 KiB reads at QD1 ({reads / elapsed:.0f}/s) during reconstruction "
          f"({progress} when the run ended)")  # fmt: skip
    _print_pauses(_server_lags(target, start), floor.lags)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the run (default 15)")
    parser.add_argument("--write-mib", type=int, default=64, help="MiB written before each flush (default 64)")
    parser.add_argument("--rebuild", action="store_true", help="pause during RAID reconstruction instead")
    parser.add_argument("--fill-mib", type=int, default=2048, help="MiB written before --rebuild fails a disk")
    parser.add_argument("--iops", action="store_true", help="throughput at QD1/QD32 and 1 MiB instead")
    args = parser.parse_args()
    os.environ["ARRAY_SIM_LOOP_LAG"] = "1"  # inherited by the server
    size = "2GB" if args.rebuild else "1GB"
    with tempfile.TemporaryDirectory() as tmp:
        with iscsi_peer.our_target(Path(tmp), size=size, options=("multihost-access", "enable")) as target:
            if args.iops:
                iops(target, args.seconds / 5)
            elif args.rebuild:
                rebuild(target, args.seconds, args.fill_mib)
            else:
                pause(target, args.seconds, args.write_mib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
