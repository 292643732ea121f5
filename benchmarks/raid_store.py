#!/usr/bin/env python3
"""RAID member store benchmark: RaidStore (raid6, raid10, 12 disks unless told) against the plain FileStore.

    python benchmarks/raid_store.py [--quick] [--dir DIR] [--reps N] [--disks N]

Prints, from one run, engine-only (the stores called directly, no group, no SCSI):

1. 4 KiB random write and read IOPS over a store of ``capacity`` usable bytes written in full first,
   through ``RaidStore`` raid6 and raid10 on ``--disks`` disk files (12) and through ``FileStore`` (one file), with
   the ratio RAID/FileStore. A raid6 4 KiB write is a read-modify-write (old data, P, Q read; data,
   P, Q written).
2. 1 MiB sequential write and read MB/s, the same three stores.
3. Reconstruction: fail one disk of the full raid6 store, time ``background_step`` until the spare
   is rebuilt (MB/s of spare written), against copying the same number of bytes between two plain
   files in 1 MiB preads/pwrites in the same directory (the disk files' own sequential bandwidth).
   Rebuilding one disk of a set reads all the others of it (10 of 12 disks), so the ratio of bytes moved (reads
   plus writes) per second is printed too.

Every figure is the median (min-max) of ``--reps`` repetitions; the stores' repetitions alternate
and ratios are taken per repetition. Nothing is fsynced in the timed loops (every store acknowledges
a write once the page cache has it). Only ratios within one run mean anything on a shared VM.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from array_sim.member_store import FileStore  # noqa: E402
from array_sim.raid.store import RaidStore  # noqa: E402
from array_sim.units import PAGE_SIZE, MiB  # noqa: E402

perf_counter = time.perf_counter
KiB = 1 << 10


def summary(values: Sequence[float], spec: str = ",.0f") -> str:
    med = statistics.median(values)
    return f"{med:{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def run_for(op: Callable[[int], object], args: Sequence[int], seconds: float) -> float:
    """Operations per second of ``op`` over ``args`` (wrapping) for about ``seconds``."""
    calls, i = 0, 0
    start = perf_counter()
    deadline = start + seconds
    while True:
        for a in args[i : i + 32]:
            op(a)
        calls += 32
        i = (i + 32) % (len(args) - 32)
        now = perf_counter()
        if now >= deadline:
            return calls / (now - start)


def make_stores(root: Path, pages: int, disks: int) -> dict[str, object]:
    stores: dict[str, object] = {"file": FileStore.create(root / "plain.img", pages)}
    for policy in ("raid6", "raid10"):
        size = RaidStore.disk_size_for(policy, disks, pages * PAGE_SIZE)
        stores[policy] = RaidStore.create(root / policy, policy, disks, size)
    return stores


def fill(store, pages: int) -> None:  # type: ignore[no-untyped-def]
    block = os.urandom(PAGE_SIZE)
    for slot in range(pages):
        store.write(slot, 0, block)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--disks", type=int, default=12, help="disk files of each RAID store (default 12)")
    args = ap.parse_args()
    pages = 4 if args.quick else 12
    seconds = 0.1 if args.quick else 1.0
    root = Path(tempfile.mkdtemp(prefix="raid-bench-", dir=args.dir))
    try:
        stores = make_stores(root, pages, args.disks)
        for s in stores.values():
            fill(s, pages)
        names = list(stores)
        rng = random.Random(1)
        span = pages * PAGE_SIZE
        small = [rng.randrange(span // 4096) * 4096 for _ in range(20_000)]
        seq = list(range(0, span, MiB))
        data4k, data1m = os.urandom(4096), os.urandom(MiB)
        res: dict[tuple[str, str], list[float]] = {}

        for _ in range(args.reps):
            for name in names:
                s = stores[name]
                w = run_for(lambda p, s=s: s.write(p // PAGE_SIZE, p % PAGE_SIZE, data4k), small, seconds)
                r = run_for(lambda p, s=s: s.read(p // PAGE_SIZE, p % PAGE_SIZE, 4096), small, seconds)
                sw = run_for(lambda p, s=s: s.write(p // PAGE_SIZE, p % PAGE_SIZE, data1m), seq, seconds) * MiB / 1e6
                sr = run_for(lambda p, s=s: s.read(p // PAGE_SIZE, p % PAGE_SIZE, MiB), seq, seconds) * MiB / 1e6
                for key, v in (("4k write IOPS", w), ("4k read IOPS", r), ("1M write MB/s", sw), ("1M read MB/s", sr)):
                    res.setdefault((key, name), []).append(v)

        print(f"# RaidStore benchmark, {pages} pages ({pages * 15} MiB) usable, {args.disks} disks, {args.reps} reps")
        print(f"{'':16}" + "".join(f"{n:>26}" for n in names) + "   raid6/file  raid10/file")
        for key in ("4k write IOPS", "4k read IOPS", "1M write MB/s", "1M read MB/s"):
            row = "".join(f"{summary(res[(key, n)]):>26}" for n in names)
            ratios = [
                statistics.median(a / b for a, b in zip(res[(key, n)], res[(key, "file")], strict=True))
                for n in ("raid6", "raid10")
            ]
            print(f"{key:16}{row}   {ratios[0]:10.2f}  {ratios[1]:11.2f}")

        # section 3: reconstruction against a plain copy of the same bytes
        raid6 = stores["raid6"]
        assert isinstance(raid6, RaidStore)
        rebuild, copy, ratio, moved = [], [], [], []
        width = sum(1 for d in raid6.disks() if d.role.startswith("set"))
        victim = 0
        for _ in range(args.reps):
            raid6.fail_disk(victim)
            start = perf_counter()
            while raid6.background_step(4 * MiB):
                pass
            t = perf_counter() - start
            rebuild.append(raid6.disk_size / t / 1e6)
            raid6.replace_disk(victim)
            victim = next(d.slot for d in raid6.disks() if d.role == "set 1 position 2")
            src, dst = root / "copy-src.img", root / "copy-dst.img"
            with open(src, "wb") as f:
                for _ in range(raid6.disk_size // MiB):
                    f.write(data1m)
            sfd, dfd = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            start = perf_counter()
            for off in range(0, raid6.disk_size, MiB):
                os.pwrite(dfd, os.pread(sfd, MiB, off), off)
            t = perf_counter() - start
            os.close(sfd)
            os.close(dfd)
            copy.append(raid6.disk_size / t / 1e6)
            ratio.append(rebuild[-1] / copy[-1])
            # bytes through the page cache: the rebuild reads width-1 disks and writes one; a copy reads and writes one
            moved.append(ratio[-1] * width / 2)
        print(f"reconstruction raid6 ({args.disks} disks, {raid6.disk_size // MiB} MiB per disk): {summary(rebuild)} MB/s;"
              f" plain copy {summary(copy)} MB/s; ratio {summary(ratio, '.2f')};"
              f" ratio of bytes moved (reads + writes) per second {summary(moved, '.2f')}")
        for s in stores.values():
            s.close()  # type: ignore[attr-defined]
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
