#!/usr/bin/env python3
"""RAID parity benchmark: ``array_sim.raid.parity`` against memcpy of the same buffers.

    python benchmarks/raid_encode.py [--quick] [--reps N]

Prints, from one run, on one core (numpy's element-wise loops are single-threaded):

1. RAID 6 P+Q encode (``pq_parity``) of 8 data strips of 64 KiB per stripe, over a 32 MiB
   (cache-sized) and a 256 MiB working set of stripes, beside ``np.copyto`` of the same strips
   into a second buffer of the same size (memcpy), with the ratio encode/memcpy; RAID 5 XOR
   (``xor_parity``, numpy) of the same stripes, the P+Q encode on ISA-L when libisal2 is there
   and again on numpy alone; and, when pyeclib is installed, ISA-L's RS encode
   through pyeclib (``isa_l_rs_vand``, the test oracle: its figure includes pyeclib's copies).
2. 4 KiB RAID 6 read-modify-write (``pq_update``): microseconds per update.
3. Two-data-strip recovery (``recover_pq`` with two data strips missing) over the 32 MiB set.

Throughputs count the data strips of the stripes handled per second (8 x 64 KiB a stripe), in
GiB/s (2^30 bytes). Every figure is the median (min-max) of several repetitions; encode and memcpy
alternate and their ratio is taken per repetition (paired). The machine this was written on is a
shared 2-vCPU VM whose absolute figures move by up to 2x between runs, so compare ratios taken
within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from array_sim.raid import isal as kernels  # noqa: E402
from array_sim.raid.parity import pq_parity, pq_update, recover_pq, xor_parity  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
K = 8
STRIP = 64 * KiB
STRIPE = K * STRIP
perf_counter = time.perf_counter


def summary(values: Sequence[float], spec: str = ",.2f") -> str:
    """``median (min-max)``."""
    med = statistics.median(values)
    return f"{med:{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def gib_per_s(op: Callable[[int], object], stripes: int) -> float:
    """Call ``op`` on every stripe once; data GiB/s."""
    started = perf_counter()
    for s in range(stripes):
        op(s)
    return stripes * STRIPE / (perf_counter() - started) / GiB


def numpy_only(op: Callable[[int], object]) -> Callable[[int], object]:
    """``op`` run on the numpy kernels even where ISA-L is loaded (``array_sim.raid.isal`` rule 1)."""

    def run(s: int) -> object:
        lib, kernels.LIB = kernels.LIB, None
        try:
            return op(s)
        finally:
            kernels.LIB = lib

    return run


def encode_section(working_sets: Sequence[int], reps: int) -> None:
    try:
        from pyeclib.ec_iface import ECDriver
    except ImportError:
        oracle = None
    else:
        oracle = ECDriver(k=K, m=2, ec_type="isa_l_rs_vand")
    print(f"1. Encode, {K} data strips of {STRIP // KiB} KiB per stripe; GiB/s of data strips")
    print(f"   (pq_parity runs on {'ISA-L (libisal2)' if kernels.LIB else 'numpy: libisal2 is missing'})")
    header = f"{'working set':<12} {'':<26} {'GiB/s':>24} {'memcpy GiB/s':>24} {'x/memcpy':>20}"
    print(header)
    rng = np.random.default_rng(2026)
    for size in working_sets:
        stripes = size // STRIPE
        data = rng.integers(0, 256, (stripes, K, STRIP), dtype=np.uint8)
        copy = np.empty_like(data)
        blobs = [data[s].tobytes() for s in range(min(stripes, 64))] if oracle is not None else []
        ops: dict[str, Callable[[int], object]] = {
            "RAID 6 P+Q (pq_parity)": lambda s: pq_parity(data[s]),
            "RAID 5 P (xor_parity)": lambda s: xor_parity(data[s]),
        }
        if kernels.LIB is not None:
            ops["RAID 6 P+Q, numpy"] = numpy_only(lambda s: pq_parity(data[s]))
        if oracle is not None:
            ops["ISA-L via pyeclib"] = lambda s: oracle.encode(blobs[s % len(blobs)])
        rows: dict[str, list[float]] = {name: [] for name in ops}
        memcpy: list[float] = []
        for _ in range(reps + 1):  # the first pass is untimed: it faults in the copy and the outputs
            memcpy.append(gib_per_s(lambda s: np.copyto(copy[s], data[s]), stripes))
            for name, op in ops.items():
                rows[name].append(gib_per_s(op, stripes))
        memcpy = memcpy[1:]
        rows = {name: values[1:] for name, values in rows.items()}
        label = f"{size // MiB} MiB"
        for name, values in rows.items():
            ratios = [v / m for v, m in zip(values, memcpy, strict=True)]
            print(f"{label:<12} {name:<26} {summary(values):>24} {summary(memcpy):>24} {summary(ratios):>20}")
            label = ""


def rmw_section(reps: int, updates: int) -> None:
    rng = np.random.default_rng(7)
    size = 4 * KiB
    p = rng.integers(0, 256, size, dtype=np.uint8)
    q = rng.integers(0, 256, size, dtype=np.uint8)
    olds = rng.integers(0, 256, (64, size), dtype=np.uint8)
    news = rng.integers(0, 256, (64, size), dtype=np.uint8)
    per_op = []
    pq_update(p, q, 1, olds[0], news[0])  # builds the lookup tables outside the timing
    for _ in range(reps):
        started = perf_counter()
        for n in range(updates):
            pq_update(p, q, n % K, olds[n % 64], news[n % 64])
        per_op.append((perf_counter() - started) / updates * 1e6)
    print(f"2. RAID 6 read-modify-write of 4 KiB (pq_update: P ^= d, Q ^= g^i * d), {updates:,} updates")
    print(f"{'':<39} {'us per update':>24} {'MiB/s of new data':>24}")
    rates = [size / t / MiB * 1e6 for t in per_op]
    print(f"{'4 KiB pq_update':<39} {summary(per_op):>24} {summary(rates, ',.0f'):>24}")


def recovery_section(size: int, reps: int) -> None:
    rng = np.random.default_rng(11)
    stripes = size // STRIPE
    data = rng.integers(0, 256, (stripes, K, STRIP), dtype=np.uint8)
    parity = [pq_parity(data[s]) for s in range(stripes)]
    lost = [(s % K, (s % K + 1 + s % (K - 1)) % K) for s in range(stripes)]

    def recover(s: int) -> object:
        x, y = lost[s]
        strips: list[np.ndarray | None] = list(data[s])
        strips[x] = strips[y] = None
        return recover_pq(strips, *parity[s])

    values = [gib_per_s(recover, stripes) for _ in range(reps + 1)][1:]  # the first pass builds tables
    print(f"3. Recovery of two data strips (recover_pq; Anvin's two-failure algebra), {size // MiB} MiB of stripes")
    print(f"{'':<39} {'GiB/s of stripe data':>24}")
    print(f"{'two data strips lost':<39} {summary(values):>24}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small working sets, one repetition (smoke test)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 5)")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 5)
    working_sets = (2 * MiB, 4 * MiB) if args.quick else (32 * MiB, 256 * MiB)

    started = perf_counter()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"array-sim RAID parity benchmark{' (--quick)' if args.quick else ''}, {datetime.now():%Y-%m-%d %H:%M:%S}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, load average {load}")
    print(
        "Only ratios taken within one run mean anything here: the machine is shared and its absolute "
        "figures move by up to 2x between runs."
    )
    print(f"Figures: median (min-max) of {reps} repetitions; ratios are per repetition (paired).")
    print()
    encode_section(working_sets, reps)
    print()
    rmw_section(reps, 2_000 if args.quick else 20_000)
    print()
    recovery_section(working_sets[0], reps)
    print(f"\n(total {perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
