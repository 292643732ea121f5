#!/usr/bin/env python3
"""The longest event-loop pause of ``array-sim serve`` while SYNCHRONIZE CACHE runs on a busy volume.

    python benchmarks/loop_pause.py [--seconds S] [--write-mib N] [--iops]

Starts ``array-sim serve`` (a thick 1GB volume open to any IP, multi-host access enabled) with
``ARRAY_SIM_LOOP_LAG=1``, which makes the server log, every second, the longest lateness of a 1 ms
timer on its event loop. One initiator (``qemu-img bench``, 4 KiB random reads at queue depth 1)
keeps a read load going for ``--seconds``; another (``qemu-io``) writes ``--write-mib`` MiB and
then flushes (SYNCHRONIZE CACHE, which fsyncs the member file), over and over. Printed: the loop's
longest pause over the run and per second (median, max), the reads completed, and the write+flush
rounds. A pause is what every session waits for while the loop is busy with something else.

``--iops`` instead runs 4 KiB random read and write at queue depth 1 and 32 and 1 MiB sequential
read and write at queue depth 8 (``qemu-img bench -t none``, about ``--seconds`` each), for a
before/after comparison of the target itself when tgt is not installed (``benchmarks/iscsi.py``
needs it). Run it with ``PYTHONPATH`` pointing at another checkout to measure that one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import iscsi_peer  # the script's directory is on sys.path

MiB = 1 << 20
LAG = re.compile(rb"loop lag: max ([0-9.]+) ms")
RUN = re.compile(r"Run completed in ([0-9.]+) seconds")


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

    start = target.log.stat().st_size
    thread = threading.Thread(target=writer)
    began = time.monotonic()
    thread.start()
    reads = 0
    while time.monotonic() - began < seconds:
        _bench(url, 4096, 1, 500, False, True)
        reads += 500
    done.set()
    thread.join()
    elapsed = time.monotonic() - began
    time.sleep(1.2)  # the next per-second lag line
    with open(target.log, "rb") as log:
        log.seek(start)
        lags = [float(m) for m in LAG.findall(log.read())]
    print(f"run: {elapsed:.1f} s, {reads} 4 KiB reads at QD1 ({reads / elapsed:.0f}/s), "
          f"{rounds} rounds of {write_mib} MiB write + SYNCHRONIZE CACHE")  # fmt: skip
    if lags:
        print(f"event-loop pause: max {max(lags):.1f} ms; per second median {statistics.median(lags):.1f} ms, "
              f"{sum(lag >= 10 for lag in lags)} of {len(lags)} seconds with a pause of 10 ms or more")  # fmt: skip
    else:
        print("no loop lag lines in the server log (is ARRAY_SIM_LOOP_LAG honoured by this checkout?)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the run (default 15)")
    parser.add_argument("--write-mib", type=int, default=64, help="MiB written before each flush (default 64)")
    parser.add_argument("--iops", action="store_true", help="throughput at QD1/QD32 and 1 MiB instead")
    args = parser.parse_args()
    os.environ["ARRAY_SIM_LOOP_LAG"] = "1"  # inherited by the server
    with tempfile.TemporaryDirectory() as tmp:
        with iscsi_peer.our_target(Path(tmp), options=("multihost-access", "enable")) as target:
            if args.iops:
                iops(target, args.seconds / 5)
            else:
                pause(target, args.seconds, args.write_mib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
