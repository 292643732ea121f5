#!/usr/bin/env python3
"""The I/O pause a collection snapshot of 8 busy volumes causes, through a real server.

    python benchmarks/collection_snapshot.py [--quick] [--dir DIR] [--rounds N] [--depth QD] [--size 300MB]

``array-sim serve`` (``iscsi_peer.our_target``: member-1 RAID 6 over 12 disk files) with 8 thick
volumes in collection ``busy`` (``snap-depletion borrow``, so no snapshot is deleted under the run).
Each volume has its own writer process (``iscsi_writer.py``: one iSCSI session, ``--depth`` 4 KiB
WRITE(10)s at random offsets of its first 64 MiB in flight), which logs the monotonic time of every
completion. After a warm-up, ``--rounds`` times, the control socket is sent
``collection select busy snapshot create-now`` (8 snapshots at one point in time; the round trip is
the snapshot window), then, half a second apart, ``volume select v1 snapshot create-now`` (one
volume's snapshot), ``collection select busy show`` (a command that takes nothing: the control
channel's own cost, and the group following it), and nothing at all for a window as long as the
last snapshot's (the machine's floor: what the writers see with no command).

Printed for each kind of window: the longest pause of any one writer (the longest time between two
of its completions, over the gaps that touch the window) and of all of them together (the longest
time in which no writer saw a completion), median (max) over the rounds; the snapshot command's
round trip; and the writes per second of the run. Goal: the snapshot's pause under 10 ms. On the
shared 2-vCPU development VM only figures of one run compare with each other.
``--quick`` (3 rounds, 30MB volumes, QD 2) is what tests/benchmarks/test_collection_snapshot_bench.py runs.
"""

from __future__ import annotations

import argparse
import array
import bisect
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import iscsi_peer  # noqa: E402

from firmware_model.control import RemoteSession  # noqa: E402

VOLUMES = 8
WARM_UP = 2.0
SPACING = 0.5
WRITER = Path(__file__).resolve().parent / "iscsi_writer.py"


def _pauses(per_writer: list[array.array], merged: list[float], start: float, end: float) -> tuple[float, float]:
    """(longest gap of one writer, longest gap of all together) among the gaps that touch [start, end], in ms."""

    def longest(times: list[float] | array.array) -> float:
        lo = max(0, bisect.bisect_left(times, start) - 1)
        hi = min(len(times), bisect.bisect_right(times, end) + 1)
        window = times[lo:hi]
        return max((b - a for a, b in zip(window, window[1:])), default=float("nan")) * 1000

    return max(longest(times) for times in per_writer), longest(merged)


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f} ms (max {max(values):6.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, small volumes: a smoke test")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary group goes")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--depth", type=int, default=None, help="writes in flight per volume (default 4)")
    parser.add_argument("--size", default=None, help="each volume's size (default 300MB)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 20)
    depth = args.depth or (2 if args.quick else 4)
    size = args.size or ("30MB" if args.quick else "300MB")
    blocks = (16 if args.quick else 64) * 2048  # the writes' span: 16 or 64 MiB
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="array-sim-bench-", dir=args.dir))
    try:
        with ExitStack() as stack:
            target = stack.enter_context(iscsi_peer.our_target(workdir, volume="v1", size=size))
            names = [f"v{n}" for n in range(1, VOLUMES + 1)]
            iqns = [target.iqn]
            for name in names[1:]:
                lines = target.cli("volume", "create", name, size)
                iqns.append(next(line.split()[-1].rstrip(".") for line in lines if "iSCSI target name is" in line))
                target.cli("volume", "select", name, "access", "create", "ipaddress", "*.*.*.*")
            for name in names:
                target.cli("volume", "select", name, "snap-depletion", "borrow")
            target.cli("collection", "create", "busy", *names)
            outs = [workdir / f"writer-{n}.times" for n in range(VOLUMES)]
            writers = [
                subprocess.Popen([sys.executable, str(WRITER), "--port", str(target.port), "--target", iqn,
                                  "--depth", str(depth), "--blocks", str(blocks), "--seconds", "3600",
                                  "--out", str(out)])  # fmt: skip
                for iqn, out in zip(iqns, outs, strict=True)
            ]
            stack.callback(lambda: [w.kill() for w in writers if w.poll() is None])
            control = RemoteSession(target.group_dir, "grpadmin", False)
            stack.callback(control.close)
            time.sleep(WARM_UP)
            windows: dict[str, list[tuple[float, float]]] = {"snapshot": [], "single": [], "command": [],
                                                              "nothing": []}  # fmt: skip
            for _ in range(rounds):
                for kind, line in (("snapshot", "collection select busy snapshot create-now"),
                                   ("single", "volume select v1 snapshot create-now"),
                                   ("command", "collection select busy show")):  # fmt: skip
                    t0 = time.monotonic()
                    lines = control.execute(line)
                    windows[kind].append((t0, time.monotonic()))
                    if any(text.startswith("% Error") for text in lines):
                        raise RuntimeError(f"{line}: {lines}")
                    time.sleep(SPACING)
                t0 = time.monotonic()
                length = windows["snapshot"][-1][1] - windows["snapshot"][-1][0]
                time.sleep(length)
                windows["nothing"].append((t0, t0 + length))
                time.sleep(SPACING)
            time.sleep(SPACING)
            for writer in writers:
                writer.terminate()
            for writer in writers:
                if writer.wait(60) != 0:
                    raise RuntimeError(f"a writer failed with status {writer.returncode}")
        per_writer = []
        for out in outs:
            times = array.array("d")
            times.frombytes(out.read_bytes())
            per_writer.append(times)
        merged = sorted(t for times in per_writer for t in times)
        span = merged[-1] - merged[0]
        print(f"# {VOLUMES} thick volumes of {size} in one collection, a writer each (4 KiB random writes, QD {depth},"
              f" own iSCSI session); {rounds} rounds")  # fmt: skip
        print(f"writes completed: {len(merged)} in {span:.1f} s ({len(merged) / span:.0f}/s)")
        trips = [(b - a) * 1000 for a, b in windows["snapshot"]]
        print(f"snapshot create-now round trip (8 snapshots): {_summary(trips)}")
        for kind, label in (("snapshot", "collection snapshot"), ("single", "one volume's snapshot"),
                            ("command", "a command taking nothing"), ("nothing", "no command (floor)")):  # fmt: skip
            one, together = zip(*(_pauses(per_writer, merged, a, b) for a, b in windows[kind]), strict=True)
            print(f"longest pause, {label:26}: one writer {_summary(list(one))},"
                  f" all writers {_summary(list(together))}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ntotal time {time.monotonic() - started:.0f} s. Only figures taken within one run compare.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
