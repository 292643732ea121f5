#!/usr/bin/env python3
"""Our LIO front end (LIO + our TCMU handler) against LIO fileio and our embedded target, in the LIO guest.

    python benchmarks/lio_guest.py [--quick] [--reps N] [--seconds S] [--size 256MB] [--logs DIR]

One boot of the LIO test guest (``tests/lio/guest.py``: Debian 12's kernel under QEMU's software
emulation, this tree installed as on a lab storage node) serves three targets of the same size, all
kept on the guest's root disk (under /var/tmp):

* ``lio+tcmu``: a volume of ``array-sim serve --frontend lio`` (the kernel's iSCSI target, every SCSI
  command through ``target_core_user`` to ``targets/tcmu/`` in the serve process) on 10.0.2.15:3260;
* ``fileio``: the peer, a LIO ``fileio`` LUN made with rtslib-fb on a file of the same size,
  write-back (as targetcli makes one), on the same portal;
* ``embedded``: a volume of a second group served by our own target (``array-sim serve`` without
  ``--frontend``) on 10.0.2.15:3261.

Both groups are ``--raid-policy file`` (one member file, no parity: fileio has none either). The
initiator is open-iscsi in the guest, logged in to all three; every figure is ``fio --direct=1
--ioengine=libaio`` on the disk it attached: 4 KiB random read and write at QD32, 1 MiB sequential
read and write at QD8. Each disk is written in full first (untimed), so reads return stored data.

Rules: a run's rate is what the disk's own counters (/sys/block/sdX/stat) moved in a window of
``--seconds`` that opens a margin after fio started (fio's start-up costs seconds of emulated CPU);
the guest's CPU per I/O comes from /proc/stat over the same window. Median (min-max) of ``--reps``
repetitions (3; 1 with ``--quick``); within a workload the three targets run in turn, in reverse order
every other repetition; ratios are taken per repetition, then their median. Under software emulation
absolute figures are an emulated machine's, whose speed moves about 2x with the host's load: only
ratios within one run mean anything. A benchmark prints and never asserts a timing. ``--quick`` (30MB,
one repetition of 1 s) is what ``tests/benchmarks/test_lio_guest_bench.py`` runs; its figures mean
nothing. Needs what the guest needs (root, qemu, a Debian 12 host; ``tests/lio/guest.py``).
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lio"))

from guest import Guest, GuestError, attached_disk_script, fileio_peer_script, unbuildable_reason  # noqa: E402

MiB = 1 << 20
PAGE = 15 * MiB  # a volume's size is rounded up to whole pages
HZ = 100  # USER_HZ: the unit of /proc/stat
ADDRESS = "10.0.2.15"  # the guest's own address (tests/lio/guest.py)
LIO_PORT, EMBEDDED_PORT = 3260, 3261
INITIATOR = "iqn.2026-12.org.array-sim:lio-guest-bench"
FILEIO_IQN = "iqn.2026-12.org.array-sim:lio-guest-bench-fileio"
VAR = "/var/tmp/lio-bench"  # /tmp is a tmpfs in the guest; /var/tmp is its root disk
TARGETS = ("lio+tcmu", "fileio", "embedded")  # the order of the first repetition
RATIOS = (("lio+tcmu", "fileio"), ("embedded", "fileio"), ("lio+tcmu", "embedded"))


@dataclass(frozen=True)
class Workload:
    label: str
    rw: str  # fio --rw
    block: int  # bytes
    depth: int
    unit: str  # IOPS or MB/s


WORKLOADS = (
    Workload("4 KiB rand read QD32", "randread", 4096, 32, "IOPS"),
    Workload("4 KiB rand write QD32", "randwrite", 4096, 32, "IOPS"),
    Workload("1 MiB seq read QD8", "read", MiB, 8, "MB/s"),
    Workload("1 MiB seq write QD8", "write", MiB, 8, "MB/s"),
)


def script(text: str, **values: object) -> str:
    """``text`` with every ``@NAME@`` replaced (bash keeps its own braces)."""
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    assert not re.search(r"@[A-Z_]+@", text), f"a value is missing in:\n{text}"
    return text


#: Both groups made, a volume each with the initiator's access record (the CLI through each server's
#: control socket, one python3 for all: an ``array-sim cli`` process costs seconds of emulated CPU),
#: both servers started; the servers' SSH is off (two on one address would both want port 22).
START = r'''
set -euo pipefail
rm -rf @VAR@; mkdir -p @VAR@; cd @VAR@
A="python3 -m firmware_model.main"
for g in lio emb; do
    $A init --dir @VAR@/$g --name $g --member-size 2GB --raid-policy file --group-ip @ADDRESS@ >init-$g.log 2>&1 \
        || { cat init-$g.log; exit 1; }
done
nohup $A serve --dir @VAR@/lio --frontend lio --portal @ADDRESS@:@LIO_PORT@ --ssh-port off >serve-lio.log 2>&1 </dev/null &
nohup $A serve --dir @VAR@/emb --portal @ADDRESS@:@EMBEDDED_PORT@ --ssh-port off >serve-emb.log 2>&1 </dev/null &
for i in $(seq 600); do
    [ -S @VAR@/lio/control.sock ] && [ -S @VAR@/emb/control.sock ] && break
    [ $i -eq 600 ] && { tail -n 30 serve-lio.log serve-emb.log; exit 1; }
    sleep 0.5
done
python3 - <<'PY'
import json, socket
for group in ("lio", "emb"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(f"@VAR@/{group}/control.sock")
    channel = sock.makefile("rwb")
    def ask(message):
        channel.write(json.dumps(message).encode() + b"\n")
        channel.flush()
        return json.loads(channel.readline())["lines"]
    ask({"account": "grpadmin", "interactive": False})
    for words in (["volume", "create", group, "@SIZE_MB@MB"],
                  ["volume", "select", group, "access", "create", "initiator", "@INITIATOR@"]):
        lines = ask({"words": words})
        print("\n".join(lines))
        assert not any(line.startswith("% Error") for line in lines), lines
PY
'''

#: The fileio peer, then open-iscsi logs in to all three and says which disk each target became.
LOGIN = r'''
set -euo pipefail
cd @VAR@
@FILEIO_PEER@
modprobe sd_mod
mkdir -p /etc/iscsi /run/lock/iscsi
echo InitiatorName=@INITIATOR@ >/etc/iscsi/initiatorname.iscsi
pgrep -x iscsid >/dev/null || iscsid
for port in @LIO_PORT@ @EMBEDDED_PORT@; do
    for i in $(seq 50); do
        iscsiadm -m discovery -t sendtargets -p @ADDRESS@:$port >/dev/null && break
        [ $i -eq 50 ] && exit 1; sleep 0.2
    done
done
@LOGINS@
'''

FILL = r'''
fio --name=fill --filename=/dev/@DEV@ --direct=1 --ioengine=libaio --rw=write --bs=1M --iodepth=8 \
    --size=@BYTES@ --output=/dev/null
'''

#: One run: fio in the background, the window between two reads of the disk's and the CPU's counters
#: (only bash builtins between them: a fork costs milliseconds of emulated CPU). The window is
#: stretched, for at most a minute, until it holds MIN_BYTES (a slow moment of the emulation).
MEASURE = r'''
set -euo pipefail
edge() { echo "@clock $EPOCHREALTIME"; read -r line </sys/block/@DEV@/stat; echo "@disk $line"; read -r line </proc/stat; echo "@stat $line"; }
fio --name=run --filename=/dev/@DEV@ --direct=1 --ioengine=libaio --rw=@RW@ --bs=@BLOCK@ --iodepth=@DEPTH@ \
    --size=@BYTES@ --time_based --runtime=@RUNTIME@ --randrepeat=0 --norandommap --output=/dev/null &
fio=$!
sleep @MARGIN@
edge
read -r -a disk </sys/block/@DEV@/stat; start=$(( (disk[2] + disk[6]) * 512 ))
sleep @SECONDS@
deadline=$(( ${EPOCHREALTIME/./} + 60000000 ))
while :; do
    read -r -a disk </sys/block/@DEV@/stat
    (( (disk[2] + disk[6]) * 512 - start >= @MIN_BYTES@ || ${EPOCHREALTIME/./} > deadline )) && break
    sleep 0.2
done
edge
kill $fio 2>/dev/null || true
wait $fio || true
'''


@dataclass(frozen=True)
class Edge:
    """The counters at one edge of a window: the guest's clock, the disk's bytes, the guest's busy ticks."""

    clock: float
    bytes: int
    busy: int

    @classmethod
    def parse(cls, lines: list[str]) -> Edge:
        found = {kind: rest for kind, _, rest in (line.partition(" ") for line in lines)}
        sectors = [int(word) for word in found["@disk"].split()]  # reads, merges, sectors read, ms, writes, ...
        ticks = [int(word) for word in found["@stat"].split()[1:]]  # user nice system idle iowait irq softirq
        return cls(float(found["@clock"]), (sectors[2] + sectors[6]) * 512, sum(ticks[:8]) - ticks[3] - ticks[4])


@dataclass(frozen=True)
class Sample:
    rate: float  # in the workload's unit
    cpu_ms: float  # the guest's CPU per I/O


class Bench:
    """The booted guest with its three targets."""

    def __init__(self, guest: Guest, args: argparse.Namespace) -> None:
        self.guest, self.args = guest, args
        self.bytes = math.ceil(args.size_mib * MiB / PAGE) * PAGE  # what a volume of --size becomes
        self.disks: dict[str, str] = {}

    def run(self, text: str, timeout: float = 600) -> str:
        code, output = self.guest.run(text, timeout)
        if code != 0:
            logs = self.guest.run(f"tail -n 20 {VAR}/serve-lio.log {VAR}/serve-emb.log", 60)[1]
            raise RuntimeError(f"a guest command exited {code}:\n{output}\n{logs}")
        return output

    def setup(self) -> None:
        out = self.run(script(START, VAR=VAR, ADDRESS=ADDRESS, LIO_PORT=LIO_PORT, EMBEDDED_PORT=EMBEDDED_PORT,
                              SIZE_MB=self.args.size_mib, INITIATOR=INITIATOR))  # fmt: skip
        iqns = re.findall(r"iSCSI target name is (\S+)\.", out)
        if len(iqns) != 2:
            raise RuntimeError(f"no two volumes made:\n{out}")
        logins = "\n".join(
            f"iscsiadm -m node -T {iqn} -p {ADDRESS}:{port} --login >/dev/null\n"
            f"d=$({attached_disk_script(iqn)}) || {{ echo 'no disk for {iqn}'; exit 1; }}\n"
            f'echo "DISK {label} $d $(blockdev --getsize64 /dev/$d)"'
            for label, iqn, port in (("lio+tcmu", iqns[0], LIO_PORT), ("fileio", FILEIO_IQN, LIO_PORT),
                                     ("embedded", iqns[1], EMBEDDED_PORT))
        )  # fmt: skip
        peer = fileio_peer_script(FILEIO_IQN, f"{VAR}/fileio.img", self.bytes, write_back=True, port=LIO_PORT)
        out = self.run(script(LOGIN, VAR=VAR, FILEIO_PEER=peer, ADDRESS=ADDRESS, LIO_PORT=LIO_PORT,
                              EMBEDDED_PORT=EMBEDDED_PORT, INITIATOR=INITIATOR, LOGINS=logins))  # fmt: skip
        for line in out.splitlines():
            if line.startswith("DISK "):
                _, label, disk, size = line.split()
                if int(size) != self.bytes:
                    raise RuntimeError(f"{label} is {size} bytes, not {self.bytes}:\n{out}")
                self.disks[label] = disk
        if set(self.disks) != set(TARGETS):
            raise RuntimeError(f"not every target became a disk:\n{out}")

    def fill(self) -> None:
        for label in TARGETS:
            self.run(script(FILL, DEV=self.disks[label], BYTES=self.bytes))

    def measure(self, label: str, workload: Workload) -> Sample:
        margin = 0.5 if self.args.quick else 1.0
        out = self.run(script(MEASURE, DEV=self.disks[label], RW=workload.rw, BLOCK=workload.block,
                              DEPTH=workload.depth, BYTES=self.bytes, MARGIN=margin, SECONDS=self.args.seconds,
                              RUNTIME=math.ceil(self.args.seconds + margin + 90), MIN_BYTES=64 * workload.block),
                       timeout=self.args.seconds + 300)  # fmt: skip
        lines = [line for line in out.splitlines() if line.startswith("@")]
        if len(lines) != 6:
            raise RuntimeError(f"no window measured on {label}:\n{out[-3000:]}")
        first, last = Edge.parse(lines[:3]), Edge.parse(lines[3:])
        seconds, moved = last.clock - first.clock, last.bytes - first.bytes
        if moved <= 0 or seconds <= 0:
            raise RuntimeError(f"fio moved nothing on {label} ({moved} bytes in {seconds:.1f} s):\n{out[-3000:]}")
        ios = moved / workload.block
        rate = ios / seconds if workload.unit == "IOPS" else moved / seconds / 1e6
        return Sample(rate, (last.busy - first.busy) / HZ * 1e3 / ios)


def fmt(values: list[float], digits: int = 0) -> str:
    med = f"{statistics.median(values):,.{digits}f}"
    return med if len(values) == 1 else f"{med} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def report(results: dict[Workload, dict[str, list[Sample]]]) -> None:
    print()
    print("| workload | unit | lio+tcmu | fileio | embedded | " + " | ".join(f"{a}/{b}" for a, b in RATIOS) + " |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(RATIOS))
    for workload, samples in results.items():
        digits = 0 if workload.unit == "IOPS" else 1
        cells = [fmt([s.rate for s in samples[label]], digits) for label in TARGETS]
        for a, b in RATIOS:
            cells.append(fmt([x.rate / y.rate for x, y in zip(samples[a], samples[b], strict=True)], 2))
        print(f"| {workload.label} | {workload.unit} | " + " | ".join(cells) + " |")
    print()
    print("The guest's CPU per I/O (fio, the kernel, both servers), medians, ms:")
    print()
    print("| workload | lio+tcmu | fileio | embedded |")
    print("|---|---:|---:|---:|")
    for workload, samples in results.items():
        cells = [f"{statistics.median([s.cpu_ms for s in samples[label]]):.2f}" for label in TARGETS]
        print(f"| {workload.label} | " + " | ".join(cells) + " |")
    print()
    print("Only ratios taken within one run mean anything: the guest runs under QEMU's software emulation,"
          " whose speed moves about 2x with the host's load.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 30MB volumes, 1 repetition of 1 s")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3, 1 with --quick)")
    parser.add_argument("--seconds", type=int, default=None, help="seconds measured a run (default 3, 1 with --quick)")
    parser.add_argument("--size", default=None, help="volume size in MB (default 256MB, 30MB with --quick)")
    parser.add_argument("--logs", type=Path, default=None, help="keep the guest's logs here (default: dropped)")
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.quick else 3)
    args.seconds = args.seconds or (1 if args.quick else 3)
    size = args.size or ("30MB" if args.quick else "256MB")
    if not (match := re.fullmatch(r"(\d+)MB", size)):
        parser.error(f"--size {size}: give it in MB, as 256MB")
    args.size_mib = int(match.group(1))
    if reason := unbuildable_reason():
        print(f"lio_guest: cannot run: {reason}", file=sys.stderr)
        return 2
    workdir = args.logs or Path(tempfile.mkdtemp(prefix="lio-guest-bench-"))
    started = time.monotonic()
    try:
        with Guest(workdir) as guest:
            bench = Bench(guest, args)
            print(f"guest: built in {guest.timings['build']:.0f} s, booted in {guest.timings['boot']:.0f} s;"
                  f" volumes of {bench.bytes // MiB} MiB on the guest's root disk", flush=True)  # fmt: skip
            bench.setup()
            print("disks: " + ", ".join(f"{label} /dev/{bench.disks[label]}" for label in TARGETS), flush=True)
            bench.fill()
            results: dict[Workload, dict[str, list[Sample]]] = {}
            for workload in WORKLOADS:
                results[workload] = {label: [] for label in TARGETS}
                for rep in range(args.reps):
                    for label in TARGETS if rep % 2 == 0 else TARGETS[::-1]:
                        sample = bench.measure(label, workload)
                        results[workload][label].append(sample)
                        print(f"  {workload.label}, rep {rep + 1}, {label}: {sample.rate:,.1f} {workload.unit}",
                              flush=True)  # fmt: skip
            report(results)
            guest.run("iscsiadm -m node --logout >/dev/null 2>&1", 120)
    except (GuestError, RuntimeError, TimeoutError) as error:
        print(f"lio_guest: {error}", file=sys.stderr)
        return 1
    finally:
        if args.logs is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"({args.reps} repetitions of {args.seconds} s, {time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
