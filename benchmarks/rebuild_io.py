#!/usr/bin/env python3
"""4 KiB random reads over iSCSI while a RAID 6 member reconstructs, against the same reads idle.

    python benchmarks/rebuild_io.py [--reps N] [--seconds S] [--size 4GB]

Starts ``array-sim serve`` on a group whose member-1 is RAID 6 over 12 disk files (the default of
``array-sim init``) with one thick volume of ``--size``, fills the volume with 1 MiB writes (so
every stripe holds data and reconstruction has all of it to rebuild), then per repetition:

1. idle: ``qemu-img bench`` 4 KiB random reads at queue depth 32 for about ``--seconds``;
2. fails one disk (``simulate member select member-1 disk N fail``: the spare takes its place and
   reconstruction starts) and runs the same reads at once, with the same request count;
3. prints both rates, their ratio, and how far reconstruction got during the loaded run (its
   percentage before and after, and the MB/s of spare that makes); a run that outlasted the
   reconstruction is marked, as part of it was idle;
4. waits for the RAID status to be ok, replaces the failed disk (a new spare) for the next one.

Both runs of a repetition are from the same server on the same data, so their ratio is what the
reconstruction costs the initiator; on this shared VM only that same-run ratio means anything.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import iscsi_peer  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
RANDOM_STEP = 32436224  # 7919 x 4 KiB, as benchmarks/iscsi.py


def bench(url: str, count: int, size: int = 4 * KiB, depth: int = 32, write: bool = False) -> float:
    """Seconds ``qemu-img bench`` took for ``count`` requests."""
    command = ["qemu-img", "bench", "-f", "raw", "-t", "none", "-d", str(depth), "-s", str(size), "-c", str(count)]
    command += ["-w", "--pattern=0x5a"] if write else ["-S", str(RANDOM_STEP)]
    result = subprocess.run([*command, url], capture_output=True, text=True, timeout=900)
    match = re.search(r"Run completed in ([\d.]+) seconds", result.stdout)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"qemu-img bench failed: {result.stdout}{result.stderr}")
    return max(float(match.group(1)), 1e-6)


def raid(target: iscsi_peer.OurTarget) -> tuple[str, int]:
    """(RaidStatus, RaidPercentage) of member-1."""
    values = {}
    for line in target.cli("member", "select", "member-1", "show")[1:]:
        for part in line.split("  "):
            key, sep, value = part.strip().partition(": ")
            if sep:
                values[key] = value.strip()
    return values["RaidStatus"], int(values.get("RaidPercentage", "0").rstrip("%") or 0)


def wait_ok(target: iscsi_peer.OurTarget, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while raid(target)[0] != "ok":
        if time.monotonic() > deadline:
            raise RuntimeError(f"RAID still {raid(target)}")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--size", default="4GB", help="volume size (default 4GB)")
    parser.add_argument("--dir", type=Path, help="parent of the temporary directory")
    args = parser.parse_args(argv)
    volume_bytes = int(args.size[:-2]) << {"MB": 20, "GB": 30}[args.size[-2:]]
    with tempfile.TemporaryDirectory(prefix="rebuild-io-", dir=args.dir) as tmp:
        member_size = f"{2 * (volume_bytes >> 30) + 2}GB"  # the volume and its 100% snapshot reserve
        with iscsi_peer.our_target(Path(tmp), size=args.size, member_size=member_size) as target:
            url = target.url()
            fill = bench(url, volume_bytes // MiB, size=MiB, depth=8, write=True)
            print(f"# filled {args.size} in {fill:.1f} s; RAID 6 over 12 disk files; 4 KiB random reads, QD32")
            size_text = target.cli("member", "select", "member-1", "show", "disks")[2].split()[2]
            disk_size = float(size_text[:-2]) * {"MB": 1, "GB": 1024, "TB": 1 << 20}[size_text[-2:]] * MiB / 1e6
            probe = 4000
            count = max(probe, int(probe * args.seconds / bench(url, probe)))
            rows = []
            for rep in range(args.reps):
                idle = count / bench(url, count)
                before = raid(target)[1]
                target.cli("simulate", "member", "select", "member-1", "disk", str(rep), "fail")
                seconds = bench(url, count)
                status, after = raid(target)
                finished = status != "reconstructing"
                done = (100 if finished else after) - before
                rebuilt = disk_size * done / 100 / seconds  # MB of spare per second while loaded
                rows.append((idle, count / seconds, rebuilt, finished))
                print(
                    f"rep {rep + 1}: idle {idle:,.0f} IOPS; during reconstruction {count / seconds:,.0f} IOPS"
                    f" (ratio {count / seconds / idle:.2f}); reconstruction went {before}% -> "
                    f"{'finished' if finished else f'{after}%'} in the run, {rebuilt:,.0f} MB/s of spare"
                    + (" (finished before the run ended: part of it was idle)" if finished else "")
                )
                wait_ok(target)
                target.cli("simulate", "member", "select", "member-1", "disk", str(rep), "replace")
            ratios = [during / idle for idle, during, _, _ in rows]
            print(
                f"ratio during/idle: median {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f});"
                f" spare rebuilt under load: median {statistics.median(r[2] for r in rows):,.0f} MB/s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
