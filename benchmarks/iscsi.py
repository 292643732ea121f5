#!/usr/bin/env python3
"""iSCSI throughput of ours against tgt, side by side, from one run.

    python benchmarks/iscsi.py [--quick] [--reps N] [--seconds S] [--pin none|same|split]
                               [--tgt-params matched|default] [--no-iscsi-perf] [--only TEXT] [--json FILE]

Starts tgt (``tgtd``, LUN 1 a file-backed ``rdwr`` 1 GiB file) and ``array-sim serve`` (a thick 1GB
volume, LUN 0), both on 127.0.0.1 with their files in the same temporary directory, fills both LUNs
with 1 MiB writes (untimed), then runs each workload against both and prints, per workload, the
median (min-max) of ``--reps`` runs for tgt and ours, the ratio ours/tgt of the medians, and the CPU
time per I/O of each target process (utime+stime of the process and its threads from /proc/PID/stat
before and after the run, divided by the I/Os) and of the initiator (its rusage).

tgt gets the iSCSI parameters ours offers at login (MaxRecvDataSegmentLength 256 KiB, FirstBurstLength
256 KiB, MaxBurstLength 1 MiB, InitialR2T No: ``iscsi_peer.TGT_TUNED``) unless ``--tgt-params default``:
with tgt's defaults 1 MiB writes cost it about twice the CPU (research/perf-anchors.md, section 2).

Workloads, as in shared/research/perf-anchors.md ("Exact commands"):

* ``qemu-img bench -f raw -t none``: 4 KiB random read and write at queue depth 1 and 32 ("random"
  is ``-S 32436224``, a step of 7919 x 4 KiB, so every request hits another block), 1 MiB
  sequential read and write at queue depth 8. The request count of each run is calibrated per
  target to last about ``--seconds``; the rate is requests / qemu-img's "Run completed in" time.
* ``iscsi-perf`` (reads only): 4 KiB random read at QD 1 and 32, 1 MiB sequential read at QD 8;
  the rate is the mean of its per-second reports without the first, CPU taken between the first and
  the last report.

The box this was written on is a shared 2-vCPU VM whose absolute figures move by up to 2x between
runs: only the ratios taken within one run mean anything, and the CPU time per I/O is the figure
least disturbed by noise. tgt and ours alternate within each repetition. QD1 figures depend mostly
on whether initiator and target share a vCPU: ``--pin same`` (all on CPU 0) or ``split`` (target
on 0, initiator on 1) pins both targets the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import iscsi_peer  # the script's directory is on sys.path
from iscsi_peer import Target, cpu_seconds

KiB, MiB = 1 << 10, 1 << 20
RANDOM_STEP = 32436224  # 7919 x 4 KiB, coprime with the 4 KiB blocks of the LUN


@dataclass(frozen=True)
class Workload:
    name: str
    tool: str  # "qemu-img" or "iscsi-perf"
    size: int
    depth: int
    write: bool = False
    random: bool = False

    @property
    def unit(self) -> str:
        return "MB/s" if self.size >= MiB else "IOPS"

    def rate(self, ios_per_second: float) -> float:
        return ios_per_second * self.size / 1e6 if self.size >= MiB else ios_per_second


WORKLOADS = [
    Workload("4 KiB rand read QD1", "qemu-img", 4 * KiB, 1, random=True),
    Workload("4 KiB rand read QD32", "qemu-img", 4 * KiB, 32, random=True),
    Workload("4 KiB rand write QD1", "qemu-img", 4 * KiB, 1, write=True, random=True),
    Workload("4 KiB rand write QD32", "qemu-img", 4 * KiB, 32, write=True, random=True),
    Workload("1 MiB seq read QD8", "qemu-img", MiB, 8),
    Workload("1 MiB seq write QD8", "qemu-img", MiB, 8, write=True),
    Workload("4 KiB rand read QD1", "iscsi-perf", 4 * KiB, 1, random=True),
    Workload("4 KiB rand read QD32", "iscsi-perf", 4 * KiB, 32, random=True),
    Workload("1 MiB seq read QD8", "iscsi-perf", MiB, 8),
]


@dataclass
class Sample:
    ios_per_second: float
    target_us: float  # target CPU per I/O
    initiator_us: float  # initiator CPU per I/O


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- drivers


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def qemu_img_bench(url: str, w: Workload, count: int, prefix: list[str], pid: int) -> tuple[float, Sample]:
    """One ``qemu-img bench`` run: (seconds, sample)."""
    command = [
        *prefix,
        "qemu-img",
        "bench",
        "-f",
        "raw",
        "-t",
        "none",
        "-d",
        str(w.depth),
        "-s",
        str(w.size),
        "-c",
        str(count),
        *(["-S", str(RANDOM_STEP)] if w.random else []),
        *(["-w", "--pattern=0xab"] if w.write else []),
        url,
    ]
    target0, initiator0 = cpu_seconds(pid), children_cpu()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    target1, initiator1 = cpu_seconds(pid), children_cpu()
    match = re.search(r"Run completed in ([\d.]+) seconds", result.stdout)
    if result.returncode != 0 or not match:
        raise BenchError(f"qemu-img bench failed ({result.returncode}): {(result.stdout + result.stderr).strip()}")
    seconds = max(float(match.group(1)), 1e-6)
    return seconds, Sample(count / seconds, (target1 - target0) / count * 1e6, (initiator1 - initiator0) / count * 1e6)


def iscsi_perf(url: str, w: Workload, seconds: float, prefix: list[str], pid: int) -> Sample:
    """``iscsi-perf`` until it has reported ``seconds`` + 1 per-second rates; the first is dropped."""
    blocks = w.size // 512  # both targets have 512-byte blocks
    command = [*prefix, "iscsi-perf", "-m", str(w.depth), "-b", str(blocks), *(["-r"] if w.random else []), url]
    wanted = max(2, round(seconds) + 1)
    reports: list[tuple[int, float]] = []  # (iops of that second, target CPU when it was printed)
    initiator0 = children_cpu()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, deadline = b"", time.monotonic() + seconds + 20
    try:
        while len(reports) < wanted and time.monotonic() < deadline and proc.poll() is None:
            if not select.select([proc.stdout], [], [], 0.5)[0]:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            output += chunk
            for m in re.finditer(rb"iops current (\d+)", chunk):
                reports.append((int(m.group(1)), cpu_seconds(pid)))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    if len(reports) < wanted:
        tail = output.decode(errors="replace").replace("\r", "\n").strip().splitlines()[-5:]
        raise BenchError(f"iscsi-perf gave {len(reports)} reports: " + " | ".join(tail))
    ios = sum(r[0] for r in reports[1:])
    total_ios = sum(r[0] for r in reports)  # the initiator's rusage covers the whole run
    return Sample(
        ios / (len(reports) - 1),
        (reports[-1][1] - reports[0][1]) / max(ios, 1) * 1e6,
        (children_cpu() - initiator0) / max(total_ios, 1) * 1e6,
    )


def calibrate(url: str, w: Workload, seconds: float, prefix: list[str], pid: int) -> int:
    """A request count that makes a qemu-img bench run last about ``seconds`` (doubling from a small probe)."""
    count = 256 if w.size < MiB else 32
    while True:
        elapsed, _ = qemu_img_bench(url, w, count, prefix, pid)
        if elapsed >= 0.25 or count >= 1 << 22:
            return max(w.depth * 4, int(count * seconds / elapsed))
        count *= 2


# --------------------------------------------------------------------------- the run


def summarize(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt(values: list[float], digits: int = 0) -> str:
    if not values:
        return "error"
    med, lo, hi = summarize(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def co_tenants(own: set[int]) -> list[str]:
    """Processes other than ours using more than 10 % of a core over one second."""

    def snapshot() -> dict[int, tuple[str, int]]:
        out = {}
        for entry in os.listdir("/proc"):
            try:
                text = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
            except OSError:
                continue
            if text:
                fields = text[text.rindex(")") + 2 :].split()
                out[int(entry)] = (text[text.index("(") + 1 : text.rindex(")")], int(fields[11]) + int(fields[12]))
        return out

    before = snapshot()
    time.sleep(1)
    after = snapshot()
    tick = os.sysconf("SC_CLK_TCK")
    busy = [
        (ticks - before[pid][1], name, pid)
        for pid, (name, ticks) in after.items()
        if pid in before and pid not in own and ticks - before[pid][1] > 0.1 * tick
    ]
    return [f"{name}[{pid}] {100 * t / tick:.0f}%" for t, name, pid in sorted(busy, reverse=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition of ~0.5 s each")
    parser.add_argument("--reps", type=int, help="repetitions per workload and target (default 3)")
    parser.add_argument("--seconds", type=float, help="length of one run (default 3)")
    parser.add_argument(
        "--pin",
        choices=["none", "same", "split"],
        default="none",
        help="CPU pinning of target and initiator (default none)",
    )
    parser.add_argument(
        "--tgt-params",
        choices=["matched", "default"],
        default="matched",
        help="tgt's iSCSI parameters: the ones ours offers (default) or tgt's own defaults",
    )
    parser.add_argument(
        "--raid-policy", default="raid6", help="our member's RAID policy (default raid6; 'file': no RAID)"
    )
    parser.add_argument("--disks", type=int, default=12, help="disk files of our RAID member (default 12)")
    parser.add_argument("--no-iscsi-perf", action="store_true", help="qemu-img bench only")
    parser.add_argument("--only", help="run only the workloads whose name contains this text")
    parser.add_argument("--json", type=Path, help="also write the samples to this file")
    parser.add_argument("--dir", type=Path, help="parent of the temporary directory (default system temp)")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    seconds = args.seconds or (0.5 if args.quick else 3.0)
    workloads = [
        w
        for w in WORKLOADS
        if not (args.no_iscsi_perf and w.tool == "iscsi-perf") and (not args.only or args.only in w.name)
    ]
    for tool in ("tgtd", "tgtadm", "qemu-img", "iscsi-inq") + (() if args.no_iscsi_perf else ("iscsi-perf",)):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the targets

    target_cpu = {"none": None, "same": "0", "split": "0"}[args.pin]
    prefix = {"none": [], "same": ["taskset", "-c", "0"], "split": ["taskset", "-c", "1"]}[args.pin]
    started = time.monotonic()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="iscsi-bench-", dir=args.dir)))
        targets: list[Target] = [
            stack.enter_context(
                iscsi_peer.tgt_target(tmp, params=iscsi_peer.TGT_TUNED if args.tgt_params == "matched" else None)
            )
        ]
        try:
            ours = iscsi_peer.our_target(tmp, raid_policy=args.raid_policy, disks=args.disks)
            targets.append(stack.enter_context(ours))
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
            log = tmp / "array-sim-serve.log"
            tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
            print(f"# ours could not start, measuring tgt alone: {error}", *tail, sep="\n#    ", flush=True)
        if target_cpu is not None:
            for t in targets:
                subprocess.run(["taskset", "-a", "-p", "-c", target_cpu, str(t.pid)], check=True, capture_output=True)
        print(
            f"# iSCSI peer benchmark, {datetime.now().isoformat(timespec='seconds')}, {platform.node()}, "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, pin {args.pin}, {reps} reps of ~{seconds} s, "
            f"our member {args.raid_policy}" + (f" over {args.disks} disks" * (args.raid_policy != "file"))
        )
        print(
            f"# tgt iSCSI parameters: {args.tgt_params}" + (f" {iscsi_peer.TGT_TUNED}" * (args.tgt_params == "matched"))
        )
        for t in targets:
            print(f"# {t.name:4} pid {t.pid}  {t.url()}")
        print(
            f"# busy processes: {', '.join(co_tenants({t.pid for t in targets} | {os.getpid()})) or 'none'}", flush=True
        )

        for t in targets:  # fill both LUNs so that reads hit written data
            size = json.loads(
                subprocess.run(
                    ["qemu-img", "info", "--output=json", t.url()], check=True, capture_output=True, text=True
                ).stdout
            )["virtual-size"]
            fill = Workload("fill", "qemu-img", MiB, 8, write=True)
            elapsed, _ = qemu_img_bench(t.url(), fill, size // MiB, prefix, t.pid)
            print(
                f"# filled {t.name}: {size:,} bytes in {elapsed:.1f} s ({size / MiB / elapsed:,.0f} MiB/s)", flush=True
            )

        results: dict[tuple[str, str], dict[str, list[Sample]]] = {}
        errors: dict[tuple[str, str, str], str] = {}
        for w in workloads:
            key = (w.tool, w.name)
            results[key] = {t.name: [] for t in targets}
            runners: dict[str, Callable[[], Sample]] = {}
            for t in targets:
                try:
                    if w.tool == "qemu-img":
                        count = calibrate(t.url(), w, seconds, prefix, t.pid)
                        runners[t.name] = lambda t=t, w=w, n=count: qemu_img_bench(t.url(), w, n, prefix, t.pid)[1]
                    else:
                        runners[t.name] = lambda t=t, w=w: iscsi_perf(t.url(), w, seconds, prefix, t.pid)
                except BenchError as error:
                    errors[(*key, t.name)] = str(error)
            for rep in range(reps):
                order = targets if rep % 2 == 0 else targets[::-1]
                for t in order:
                    if t.name in runners and (*key, t.name) not in errors:
                        try:
                            results[key][t.name].append(runners[t.name]())
                        except BenchError as error:
                            errors[(*key, t.name)] = str(error)
            line = "  ".join(
                f"{t.name} {fmt([w.rate(s.ios_per_second) for s in results[key][t.name]])}" for t in targets
            )
            print(f"  {w.tool:10} {w.name:22} {w.unit:5} {line}", flush=True)

    print_table(workloads, results, errors, reps)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {"tool": tool, "workload": name, "target": side, **vars(s)}
                    for (tool, name), sides in results.items()
                    for side, samples in sides.items()
                    for s in samples
                ],
                indent=1,
            )
        )
    return 1 if errors else 0


def ratio(values: dict[str, list[float]]) -> str:
    """ours/tgt of the medians."""
    if values.get("tgt") and values.get("ours") and statistics.median(values["tgt"]):
        return f"{statistics.median(values['ours']) / statistics.median(values['tgt']):.2f}"
    return "-"


def print_table(workloads: list[Workload], results: dict, errors: dict, reps: int) -> None:
    print(
        f"\n## median (min-max) of {reps} runs; ratio = ours/tgt of the medians; "
        "CPU us/IO = target process CPU per I/O, median (min-max) [initiator's median]\n"
    )
    header = ["tool", "workload", "unit", "tgt", "ours", "ours/tgt", "tgt CPU us/IO", "ours CPU us/IO", "CPU ratio"]
    rows = []
    for w in workloads:
        sides = results[(w.tool, w.name)]
        rate = {s: [w.rate(x.ios_per_second) for x in v] for s, v in sides.items()}
        cpu = {s: [x.target_us for x in v] for s, v in sides.items()}
        cells = {}
        for side in ("tgt", "ours"):
            if side not in sides:  # not started
                cells[side] = ("-", "-")
            elif not sides[side]:
                cells[side] = ("error", "error")
            else:
                initiator = statistics.median(x.initiator_us for x in sides[side])
                cells[side] = (fmt(rate[side]), f"{fmt(cpu[side])} [{initiator:,.0f}]")
        rows.append(
            [
                w.tool,
                w.name,
                w.unit,
                cells["tgt"][0],
                cells["ours"][0],
                ratio(rate),
                cells["tgt"][1],
                cells["ours"][1],
                ratio(cpu),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * n for n in widths], *rows]:
        cells = [c.ljust(n) if i < 3 else c.rjust(n) for i, (c, n) in enumerate(zip(row, widths, strict=True))]
        print("| " + " | ".join(cells) + " |")
    for (tool, name, side), message in errors.items():
        print(f"\nerror: {tool} {name} on {side}: {message[:800]}")


if __name__ == "__main__":
    sys.exit(main())
