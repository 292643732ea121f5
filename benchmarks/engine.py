#!/usr/bin/env python3
"""Engine benchmark: the block engine against a plain file, snapshot cost, copy-on-write cost.

    python benchmarks/engine.py [--quick] [--dir DIR] [--reps N]

Prints, from one run:

1. 4 KiB random write and read IOPS through ``Group.device(...).write/read`` on
   a thick 1 GiB volume (written in full first, so reads hit allocated pages),
   and with ``os.pwrite``/``os.pread`` at the same offsets on a plain file of
   the same size in the same directory, with the ratio engine/plain.
2. 1 MiB sequential write and read MB/s, engine against the plain file.
3. Snapshot creation time of a 1 GiB and a 1 TiB thin volume holding the same
   few MiB in the same number of scattered pages: the cost must not grow with
   the volume's size.
4. First write after a snapshot: on the fully written 1 GiB volume, take a
   snapshot, write N distinct random 4 KiB blocks (the copy-on-write pass),
   then the same blocks again (plain overwrites, with no flush in between); also
   with 4 KiB writes that are 512-byte but not 4 KiB aligned. The target is a
   cost ratio of at most about 2.

Every figure is the median (min-max) of several repetitions; engine and plain
file repetitions alternate, and ratios are taken per repetition (paired) and
then summarised the same way. The machine this was written on is a shared
2-vCPU VM whose absolute figures move by up to 2x between runs, so only ratios
taken within one run mean anything. Nothing is fsynced in the timed loops (the
engine acknowledges a write once it is in the page cache, as the plain file
does); every timed pass of sections 1, 2 and 4 (except the overwrite pass)
starts after an untimed flush of the group and the plain file.

The group and the plain file live in a temporary directory (under ``--dir``,
default the system temp directory) that is removed afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from array_sim import Group  # noqa: E402
from array_sim.units import CHUNK_SIZE, PAGE_SIZE, SECTOR_SIZE, GiB, MiB, TiB  # noqa: E402
from array_sim.volume_device import VolumeDevice  # noqa: E402

KiB = 1 << 10
perf_counter = time.perf_counter


@dataclass(frozen=True)
class Config:
    reps: int
    #: Requested size of the thick volume of sections 1, 2 and 4.
    volume_size: int
    #: Length of one repetition of the time-bounded loops (sections 1 and 2).
    seconds: float
    snapshot_reps: int
    #: Section 3: pages written in each thin volume, and bytes written in each.
    snapshot_pages: int
    snapshot_bytes_per_page: int
    #: Section 4: distinct 4 KiB writes per pass.
    cow_writes: int


FULL = Config(
    reps=3,
    volume_size=GiB,
    seconds=1.0,
    snapshot_reps=20,
    snapshot_pages=16,
    snapshot_bytes_per_page=256 * KiB,
    cow_writes=16384,
)
QUICK = Config(
    reps=3,
    volume_size=120 * MiB,
    seconds=0.04,
    snapshot_reps=5,
    snapshot_pages=4,
    snapshot_bytes_per_page=64 * KiB,
    cow_writes=256,
)


@dataclass(frozen=True)
class CowRep:
    """One repetition of section 4."""

    cow_iops: float
    overwrite_iops: float
    #: Time of the COW pass over time of the overwrite pass.
    cost: float
    #: Writes that took a new page (the first to touch each 15 MiB page).
    allocating: int
    allocating_us: float
    other_cow_us: float
    overwrite_us: float


# ------------------------------------------------------------------ helpers


def summary(values: Sequence[float], spec: str = ",.0f") -> str:
    """``median (min-max)``."""
    med = statistics.median(values)
    return f"{med:{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def size_text(size: int) -> str:
    for unit, scale in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size:,} B"


def run_for(op: Callable[[int], object], args: Sequence[int], seconds: float, batch: int = 64) -> tuple[int, float]:
    """Call ``op`` on ``args`` in order (wrapping round) for about ``seconds``; (calls, elapsed)."""
    total = len(args) - len(args) % batch
    assert total >= batch
    calls = 0
    i = 0
    start = perf_counter()
    deadline = start + seconds
    while True:
        for arg in args[i : i + batch]:
            op(arg)
        calls += batch
        i = (i + batch) % total
        now = perf_counter()
        if now >= deadline:
            return calls, now - start


def run_timed_each(op: Callable[[int], object], args: Sequence[int]) -> tuple[float, list[float]]:
    """Call ``op`` once per arg; (elapsed, seconds of each call)."""
    each = [0.0] * len(args)
    start = perf_counter()
    for n, arg in enumerate(args):
        t0 = perf_counter()
        op(arg)
        each[n] = perf_counter() - t0
    return perf_counter() - start, each


def filesystem_of(path: Path) -> str:
    """``fstype on device`` of the mount holding ``path`` (from /proc/mounts), or ``?``."""
    best, found = "", "?"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, mount_point, fstype = line.split()[:3]
                if str(path).startswith(mount_point) and len(mount_point) > len(best):
                    best, found = mount_point, f"{fstype} on {device}"
    except OSError:
        pass
    return found


class Bench:
    """One benchmark run in one temporary directory."""

    def __init__(self, config: Config, base: Path) -> None:
        self.config = config
        self.directory = Path(tempfile.mkdtemp(prefix="array-sim-bench-", dir=base))
        try:
            # 2 TiB member: the 1 TiB thin volume needs its 10% minimum reserve and as
            # much snapshot reserve in the pool. The store is a sparse file.
            self.group = Group.init(self.directory / "group", member_size=2 * TiB)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.group.create_volume("bench", config.volume_size)
        self.device: VolumeDevice = self.group.device("bench")
        self.size = self.device.num_blocks * SECTOR_SIZE
        self.plain = os.open(self.directory / "plain.img", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(self.plain, self.size)
        self.rng = random.Random(20261125)
        self.data_4k = self.rng.randbytes(4 * KiB)
        self.data_1m = self.rng.randbytes(MiB)
        self.snapshot_volume_pages: list[int] = []

    def close(self) -> None:
        try:
            self.group.close()
            os.close(self.plain)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def settle(self) -> None:
        """Untimed, before every timed pass: write back what earlier passes dirtied."""
        self.group.flush()
        os.fsync(self.plain)
        gc.collect()

    # ------------------------------------------------- sections 1 and 2

    def prewrite(self) -> None:
        """Write the volume and the plain file in full (allocates every page and block)."""
        dev, plain, data = self.device, self.plain, self.data_1m
        for offset in range(0, self.size, MiB):
            dev.write(offset // SECTOR_SIZE, data)
            os.pwrite(plain, data, offset)

    def paired(
        self, engine: Callable[[int], object], plain: Callable[[int], object], offsets: Sequence[int]
    ) -> tuple[list[float], list[float]]:
        """Rates (ops/s) of engine and plain file, alternating which goes first."""
        lbas = [offset // SECTOR_SIZE for offset in offsets]
        rates: dict[str, list[float]] = {"engine": [], "plain": []}
        runs = [("engine", engine, lbas), ("plain", plain, offsets)]
        for rep in range(self.config.reps):
            for name, op, args in runs if rep % 2 == 0 else runs[::-1]:
                self.settle()
                calls, elapsed = run_for(op, args, self.config.seconds)
                rates[name].append(calls / elapsed)
        return rates["engine"], rates["plain"]

    def random_4k(self) -> dict[str, tuple[list[float], list[float]]]:
        rng = random.Random(1)
        offsets = [rng.randrange(self.size // (4 * KiB)) * 4 * KiB for _ in range(1 << 16)]
        dev, fd, data = self.device, self.plain, self.data_4k
        write, read = dev.write, dev.read
        pwrite, pread = os.pwrite, os.pread
        blocks = 4 * KiB // SECTOR_SIZE
        return {
            "4K random write": self.paired(
                lambda lba: write(lba, data), lambda off: pwrite(fd, data, off), offsets
            ),
            "4K random read": self.paired(
                lambda lba: read(lba, blocks), lambda off: pread(fd, 4 * KiB, off), offsets
            ),
        }

    def sequential_1m(self) -> dict[str, tuple[list[float], list[float]]]:
        offsets = list(range(0, self.size - MiB + 1, MiB))
        offsets += offsets[: -len(offsets) % 64]  # whole batches for run_for; wraps round to the start
        dev, fd, data = self.device, self.plain, self.data_1m
        write, read = dev.write, dev.read
        pwrite, pread = os.pwrite, os.pread
        blocks = MiB // SECTOR_SIZE
        to_mb = MiB / 1e6
        results = {
            "1M seq write": self.paired(
                lambda lba: write(lba, data), lambda off: pwrite(fd, data, off), offsets
            ),
            "1M seq read": self.paired(lambda lba: read(lba, blocks), lambda off: pread(fd, MiB, off), offsets),
        }
        return {k: ([r * to_mb for r in e], [r * to_mb for r in p]) for k, (e, p) in results.items()}

    # ----------------------------------------------------------- section 3

    def snapshots(self) -> tuple[dict[str, list[float]], int]:
        """Snapshot creation seconds per volume size; and the pages written in each volume."""
        cfg = self.config
        rng = random.Random(3)
        chunk = rng.randbytes(cfg.snapshot_bytes_per_page)
        names = {"snapshot create, 1 GiB thin": ("thin-1g", GiB), "snapshot create, 1 TiB thin": ("thin-1t", TiB)}
        in_use = set()
        for name, size in names.values():
            self.group.create_volume(name, size, thin=True)
            dev = self.group.device(name)
            pages = dev.num_blocks * SECTOR_SIZE // PAGE_SIZE
            for page in rng.sample(range(pages), cfg.snapshot_pages):
                inside = rng.randrange((PAGE_SIZE - len(chunk)) // CHUNK_SIZE) * CHUNK_SIZE
                dev.write((page * PAGE_SIZE + inside) // SECTOR_SIZE, chunk)
            in_use.add(self.group.space.in_use(self.group.volume(name)))
            self.snapshot_volume_pages.append(pages)
        assert in_use == {cfg.snapshot_pages}, in_use
        times: dict[str, list[float]] = {label: [] for label in names}
        order = list(names.items())
        # One flush before, none between: a snapshot taken right after an fsync waits
        # on the file system's journal (medians 3 ms instead of 0.4 ms here).
        self.settle()
        for rep in range(cfg.snapshot_reps):
            for label, (name, _) in order if rep % 2 == 0 else order[::-1]:
                gc.collect()
                start = perf_counter()
                self.group.create_snapshot(name, f"s{rep}")
                times[label].append(perf_counter() - start)
                self.group.delete_snapshot(name, f"s{rep}")
        return times, cfg.snapshot_pages

    # ----------------------------------------------------------- section 4

    def cow_offsets(self, seed: int, aligned: bool) -> list[int]:
        """Distinct 4 KiB write offsets; unaligned ones never share a 4 KiB chunk either."""
        rng = random.Random(seed)
        chunks = self.size // CHUNK_SIZE
        if aligned:
            return [c * CHUNK_SIZE for c in rng.sample(range(chunks), self.config.cow_writes)]
        picks = rng.sample(range(0, chunks - 1, 2), self.config.cow_writes)
        return [c * CHUNK_SIZE + rng.randrange(1, CHUNK_SIZE // SECTOR_SIZE) * SECTOR_SIZE for c in picks]

    def cow_rep(self, offsets: list[int]) -> CowRep:
        """Snapshot, COW pass, overwrite pass over ``offsets``; then put the volume back as it was."""
        group, dev = self.group, self.device
        write = dev.write
        data = self.data_4k
        lbas = [offset // SECTOR_SIZE for offset in offsets]
        before = [dev.read(lba, 8) for lba in lbas[:32]]
        group.create_snapshot("bench", "cow")
        self.settle()
        cow_elapsed, cow_each = run_timed_each(lambda lba: write(lba, data), lbas)
        # No flush here: it would put the COW pages on disk, and freeing them again
        # (the reset below) then costs ~0.1-0.5 s per page on an ext4 mounted with
        # 'discard'. Unflushed, they are dropped from the page cache in no time.
        gc.collect()
        over_elapsed, over_each = run_timed_each(lambda lba: write(lba, data), lbas)
        # The writes that took a new page: the first to touch each 15 MiB page.
        seen: set[int] = set()
        allocating = []
        for n, offset in enumerate(offsets):
            pages = {offset // PAGE_SIZE, (offset + len(data) - 1) // PAGE_SIZE}
            if not pages <= seen:
                allocating.append(n)
                seen |= pages
        assert all(dev.read(lba, 8) == data for lba in lbas[:32])
        group.set_snapshot_online("bench", "cow", True)
        snap = group.device("bench", "cow")
        assert [snap.read(lba, 8) for lba in lbas[:32]] == before
        group.set_snapshot_online("bench", "cow", False)
        # Back to the state before the snapshot: restore it (which keeps a snapshot of the
        # written data), then delete both snapshots; the volume holds its first pages again.
        group.set_volume_online("bench", False)
        saved = group.restore_volume("bench", "cow")
        group.delete_snapshot("bench", saved.name)
        group.delete_snapshot("bench", "cow")
        group.set_volume_online("bench", True)
        assert [dev.read(lba, 8) for lba in lbas[:32]] == before
        assert not group.snapshots_of(group.volume("bench"))
        alloc_set = set(allocating)
        return CowRep(
            cow_iops=len(lbas) / cow_elapsed,
            overwrite_iops=len(lbas) / over_elapsed,
            cost=cow_elapsed / over_elapsed,
            allocating=len(allocating),
            allocating_us=statistics.median(cow_each[n] for n in allocating) * 1e6,
            other_cow_us=statistics.median(t for n, t in enumerate(cow_each) if n not in alloc_set) * 1e6,
            overwrite_us=statistics.median(over_each) * 1e6,
        )

    def cow(self) -> dict[str, list[CowRep]]:
        results: dict[str, list[CowRep]] = {"COW 4K aligned": [], "COW 4K unaligned": []}
        for rep in range(self.config.reps):
            results["COW 4K aligned"].append(self.cow_rep(self.cow_offsets(100 + rep, aligned=True)))
            results["COW 4K unaligned"].append(self.cow_rep(self.cow_offsets(200 + rep, aligned=False)))
        return results


# ------------------------------------------------------------------ report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds in all (smoke test; small volume)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to make the temp dir")
    parser.add_argument("--reps", type=int, help="repetitions per figure (default 3)")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.reps:
        config = dataclasses.replace(config, reps=args.reps)

    started = perf_counter()
    bench = Bench(config, args.dir)
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"array-sim engine benchmark{' (--quick)' if args.quick else ''}, {datetime.now():%Y-%m-%d %H:%M:%S}")
        print(
            f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load}; "
            f"{bench.directory} ({filesystem_of(bench.directory)})"
        )
        print(
            "Only ratios taken within one run mean anything here: the machine is shared and its absolute "
            "figures move by up to 2x between runs."
        )
        print(f"Figures: median (min-max) of {config.reps} repetitions; ratios are per repetition (paired).")
        print()

        bench.prewrite()
        rows = {**bench.random_4k(), **bench.sequential_1m()}  # the prewrite above is untimed
        vol_text = size_text(config.volume_size)
        print(
            f"1-2. Engine (thick {vol_text} volume, {bench.size:,} B, written in full) vs plain file "
            f"(os.pwrite/os.pread, same size, same offsets, same directory); ~{config.seconds:g} s per repetition"
        )
        header = f"{'':<18} {'unit':<5} {'engine':>28} {'plain file':>28} {'engine/plain':>20}"
        print(header)
        for label, (engine, plain) in rows.items():
            unit = "IOPS" if label.startswith("4K") else "MB/s"
            ratios = [e / p for e, p in zip(engine, plain, strict=True)]
            print(f"{label:<18} {unit:<5} {summary(engine):>28} {summary(plain):>28} {summary(ratios, '.2f'):>20}")
        print()

        times, pages = bench.snapshots()
        print(
            f"3. Snapshot creation: thin volumes with {pages} scattered pages written "
            f"({size_text(pages * config.snapshot_bytes_per_page)}), {config.snapshot_reps} snapshots each "
            f"(each deleted before the next)"
        )
        print(f"{'':<28} {'ms':>24}   volume pages")
        for (label, values), pages_of_volume in zip(times.items(), bench.snapshot_volume_pages, strict=True):
            print(f"{label:<28} {summary([v * 1e3 for v in values], '.2f'):>24}   {pages_of_volume:,}")
        small, big = (statistics.median(v) for v in times.values())
        print(f"{'1 TiB / 1 GiB (medians)':<28} {big / small:>24.2f}")
        print()

        cow = bench.cow()
        print(
            f"4. First write after a snapshot ({vol_text} thick volume written in full; snapshot; "
            f"{config.cow_writes:,} distinct random 4 KiB writes = COW pass; the same again = overwrite pass)"
        )
        print(f"{'':<18} {'COW pass IOPS':>26} {'overwrite IOPS':>26} {'cost COW/overwrite':>20}")
        for label, reps in cow.items():
            cow_iops = summary([r.cow_iops for r in reps])
            over_iops = summary([r.overwrite_iops for r in reps])
            cost = summary([r.cost for r in reps], ".2f")
            print(f"{label:<18} {cow_iops:>26} {over_iops:>26} {cost:>20}")
        print("   per write, median us (median over repetitions):")
        for label, reps in cow.items():
            taken = statistics.median(r.allocating for r in reps)
            alloc = statistics.median(r.allocating_us for r in reps)
            rest = statistics.median(r.other_cow_us for r in reps)
            over = statistics.median(r.overwrite_us for r in reps)
            print(
                f"   {label:<18} COW pass: {taken:.0f} writes that take a new page {alloc:,.0f} us, "
                f"the others {rest:,.1f} us; overwrite pass {over:,.1f} us"
            )
        print(
            "   'unaligned' = 4 KiB at a 512-byte but not 4 KiB aligned offset (two 4 KiB chunks, "
            "each merged with the snapshot's data on the COW pass). Target: cost COW/overwrite <= ~2."
        )
    finally:
        bench.close()
    print(f"\n(total {perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
