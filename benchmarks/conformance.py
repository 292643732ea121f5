#!/usr/bin/env python3
"""libiscsi's SCSI/iSCSI conformance suite (``iscsi-test-cu``) against tgt and against ours, side by side.

    python benchmarks/conformance.py [--logs DIR] [--test FILTER | --suite NAME] [--ours-only] [--no-multipath]

Starts tgt (``tgtd``, file-backed 1 GiB LUN 1, two portals) and runs ``iscsi-test-cu --dataloss``
against it, then starts ``array-sim serve`` (a thick 1GB volume, LUN 0, with multi-host access
enabled since iscsi-test-cu logs in as two initiators) and runs the same; prints the CUnit
summaries side by side with each run's wall time, then the tests that fail on ours but pass on
tgt, and the other way round, with ours' CUnit failure messages.

The multipath tests (``MultipathIO``) get a second URL for the same LU: tgt's second portal, or for
ours (one portal, the group IP) a second session on the same portal. ``--no-multipath`` passes one
URL only: the multipath tests are then skipped (tgt passes 598 of 615 that way on the reference
machine, 595 with multipath: CompareAndWriteAsync fails in all three families).

``--test`` takes iscsi-test-cu's filter, ``FAMILY[.SUITE[.TEST]]`` with ``*`` wildcards and commas
(``SCSI.Read10,iSCSI.*``); ``--suite NAME`` is short for ``ALL.NAME``. The default runs every family
(ALL, then SCSI, iSCSI and LINUX again): 615 tests. The raw logs (CUnit's verbose console output
of each side, the targets' own logs) and a summary.json go to ``--logs`` (default: a new
directory under the system temp directory).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import iscsi_peer  # the script's directory is on sys.path

#: iscsi-test-cu logs in as two initiators (-i, -I) at once: the volume needs multi-host access.
OUR_VOLUME_OPTIONS = ("multihost-access", "enable")

SUITE_RE = re.compile(r"^Suite: (\S+)")
TEST_RE = re.compile(r"^  Test: (.+?) \.\.\.(.*)$")
ASSERT_RE = re.compile(r"^\s+\d+\. (\S+:\d+\s+- .*)$")
SUMMARY_RE = re.compile(r"^\s+(suites|tests|asserts)\s+(\d+)\s+(\d+)\s+(\d+|n/a)\s+(\d+)\s+(\d+|n/a)\s*$")


@dataclass
class TestResult:
    name: str  # FAMILY.Suite.Test
    passed: bool
    messages: list[str] = field(default_factory=list)  # the test's own output before its result
    asserts: list[str] = field(default_factory=list)  # CUnit's failed assertions
    seconds: float = 0.0  # from its "Test:" line to the next one (suite set-up included)


@dataclass
class Run:
    side: str
    command: list[str]
    seconds: float
    status: int  # exit status (negative: killed by that signal)
    summary: dict[str, dict[str, str]]  # CUnit "Run Summary": tests/suites/asserts -> column -> value
    tests: dict[str, TestResult]

    def count(self, column: str) -> int:
        """A column of CUnit's ``tests`` summary line, or (if it crashed before one) the parsed results."""
        if "tests" in self.summary:
            return int(self.summary["tests"][column])
        return {
            "Total": len(self.tests),
            "Ran": len(self.tests),
            "Passed": sum(t.passed for t in self.tests.values()),
            "Failed": sum(not t.passed for t in self.tests.values()),
            "Inactive": 0,
        }[column]


# --------------------------------------------------------------------------- parsing


def suite_listing() -> list[tuple[str, str]]:
    """(family, suite) in the order iscsi-test-cu runs them."""
    out = subprocess.run(["iscsi-test-cu", "-l"], capture_output=True, text=True, check=True).stdout
    return [tuple(line.split(".")) for line in out.split() if line.count(".") == 1]  # type: ignore[misc]


def parse_log(text: str, listing: list[tuple[str, str]]) -> tuple[dict[str, dict[str, str]], dict[str, TestResult]]:
    """CUnit's verbose console output: per-test results and the Run Summary.

    A test's output starts at ``  Test: NAME ...``; its result is the first ``passed``/``FAILED`` that
    follows at the start of a line or right after the ``...``; numbered lines after ``FAILED`` are its
    failed assertions. Suite names repeat across families, so each ``Suite:`` line is matched to the
    next suite of that name in ``iscsi-test-cu -l`` order.
    """
    summary: dict[str, dict[str, str]] = {}
    tests: dict[str, TestResult] = {}
    position, family, current, state = 0, "?", None, "none"  # state: running | failed | none
    for line in text.splitlines():
        if m := SUITE_RE.match(line):
            suite = m.group(1)
            for i in range(position, len(listing)):
                if listing[i][1] == suite:
                    family, position = listing[i][0], i + 1
                    break
            current, state = None, "none"
            continue
        if m := TEST_RE.match(line):
            current = TestResult(f"{family}.{suite}.{m.group(1)}", False)
            tests[current.name] = current
            rest, state = m.group(2), "running"
            if rest.startswith(("passed", "FAILED")):
                current.passed, state = rest.startswith("passed"), "none" if rest.startswith("passed") else "failed"
            elif rest.strip():
                current.messages.append(rest.strip())
            continue
        if m := SUMMARY_RE.match(line):
            summary[m.group(1)] = dict(
                zip(["Total", "Ran", "Passed", "Failed", "Inactive"], m.groups()[1:], strict=True)
            )
            continue
        if current is None:
            continue
        if state == "running":
            if line.startswith("passed"):
                current.passed, state = True, "none"
            elif line.startswith("FAILED"):
                state = "failed"
            elif line.strip():
                current.messages.append(line.strip())
        elif state == "failed" and (m := ASSERT_RE.match(line)):
            current.asserts.append(m.group(1))
    return summary, tests


# --------------------------------------------------------------------------- running


def run_suite(
    side: str, target: iscsi_peer.Target, args: argparse.Namespace, logs: Path, listing: list[tuple[str, str]]
) -> Run:
    urls = [target.url()] if args.no_multipath else target.multipath_urls()
    command = ["iscsi-test-cu", "--dataloss", *(["-t", args.filter] if args.filter else []), *urls]
    log = logs / f"{side}.log"
    print(f"[{side}] {' '.join(command)}  > {log}", flush=True)
    start = time.monotonic()
    starts: list[float] = []  # when each "  Test:" line came out (stdbuf: line-buffered output)
    unbuffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
    proc = subprocess.Popen([*unbuffered, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=logs)
    killed = threading.Event()
    timer = threading.Timer(args.timeout, lambda: (killed.set(), proc.kill()))
    timer.start()
    try:
        with open(log, "wb") as out:
            for line in proc.stdout:
                out.write(line)
                if line.startswith(b"  Test: "):
                    starts.append(time.monotonic())
        status = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    seconds = time.monotonic() - start
    summary, tests = parse_log(log.read_text(errors="replace"), listing)
    for test, begin, end in zip(tests.values(), starts, [*starts[1:], start + seconds], strict=False):
        test.seconds = end - begin
    run = Run(side, command, seconds, status, summary, tests)
    state = f"killed after {args.timeout:.0f} s" if killed.is_set() else f"exit status {status}"
    print(
        f"[{side}] {run.count('Ran')} tests in {seconds:.1f} s ({state})"
        + ("" if summary else ": NO RUN SUMMARY (iscsi-test-cu crashed or was killed)"),
        flush=True,
    )
    return run


# --------------------------------------------------------------------------- report


def short(name: str) -> str:
    return name.split(".", 1)[1]


def grouped(names: list[str]) -> dict[str, list[str]]:
    """Suite.Test -> families it ran in (the same test runs in ALL and again in SCSI/iSCSI/LINUX)."""
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(short(name), []).append(name.split(".", 1)[0])
    return out


def describe(result: TestResult | None) -> list[str]:
    if result is None:
        return ["(not run)"]
    lines = [m for m in result.messages if "FAILED" in m or "ERROR" in m.upper()][:3] or result.messages[:2]
    return (
        lines
        + result.asserts[:4]
        + ([f"... {len(result.asserts) - 4} more assertions"] if len(result.asserts) > 4 else [])
    )


def report(runs: dict[str, Run]) -> None:
    print("\n== iscsi-test-cu --dataloss: CUnit summary ==")
    sides = list(runs)
    print(f"{'':22}" + "".join(f"{s:>12}" for s in sides))
    for column in ("Total", "Ran", "Passed", "Failed", "Inactive"):
        print(f"{'tests ' + column.lower():22}" + "".join(f"{runs[s].count(column):>12}" for s in sides))
    suites = [runs[s].summary.get("suites", {}).get("Failed", "?") for s in sides]
    print(f"{'suites failed (init)':22}" + "".join(f"{n:>12}" for n in suites))
    asserts = [runs[s].summary.get("asserts", {}).get("Failed", "?") for s in sides]
    print(f"{'asserts failed':22}" + "".join(f"{a:>12}" for a in asserts))
    print(f"{'wall time (s)':22}" + "".join(f"{runs[s].seconds:>12.1f}" for s in sides))
    print(f"{'exit status':22}" + "".join(f"{str(runs[s].status):>12}" for s in sides))

    for side, run in runs.items():
        slowest = [t for t in sorted(run.tests.values(), key=lambda t: t.seconds, reverse=True)[:8] if t.seconds >= 1]
        if slowest:
            print(f"slowest on {side}: " + ", ".join(f"{t.name} {t.seconds:.1f} s" for t in slowest))
    if len(runs) == 2:
        tgt, ours = runs["tgt"], runs["ours"]
        worse = sorted(n for n, t in tgt.tests.items() if t.passed and not (n in ours.tests and ours.tests[n].passed))
        better = sorted(n for n, t in ours.tests.items() if t.passed and n in tgt.tests and not tgt.tests[n].passed)
        both = sorted(n for n, t in ours.tests.items() if not t.passed and n in tgt.tests and not tgt.tests[n].passed)
        print(f"\n== fail on ours, pass on tgt: {len(worse)} ==")
        for test, families in grouped(worse).items():
            print(f"  {test}  [{', '.join(families)}]")
            for line in describe(ours.tests.get(f"{families[0]}.{test}")):
                print(f"      {line}")
        print(f"\n== pass on ours, fail on tgt: {len(better)} ==")
        for test, families in grouped(better).items():
            print(f"  {test}  [{', '.join(families)}]")
        print(f"\n== fail on both (ours' messages): {len(both)} ==")
        for test, families in grouped(both).items():
            print(f"  {test}  [{', '.join(families)}]")
            for line in describe(ours.tests[f"{families[0]}.{test}"]):
                print(f"      {line}")
    else:
        for side, run in runs.items():
            failed = sorted(n for n, t in run.tests.items() if not t.passed)
            print(f"\n== fail on {side}: {len(failed)} ==")
            for test, families in grouped(failed).items():
                print(f"  {test}  [{', '.join(families)}]")
                for line in describe(run.tests[f"{families[0]}.{test}"]):
                    print(f"      {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", "-t", help="iscsi-test-cu test filter FAMILY[.SUITE[.TEST]] (wildcards, commas)")
    parser.add_argument("--suite", help="run one suite of the ALL family (ALL.NAME)")
    parser.add_argument("--ours-only", action="store_true", help="do not start tgt")
    parser.add_argument("--no-multipath", action="store_true", help="one URL only (the multipath tests skip)")
    parser.add_argument("--logs", type=Path, help="directory for the raw logs (default: a new temp directory)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per iscsi-test-cu run")
    args = parser.parse_args(argv)
    args.filter = ",".join(f for f in (args.test, args.suite and f"ALL.{args.suite}") if f)
    for tool in ("iscsi-test-cu", "iscsi-inq") + (() if args.ours_only else ("tgtd", "tgtadm")):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the targets

    logs = args.logs or Path(tempfile.mkdtemp(prefix="conformance-logs-"))
    logs = logs.resolve()
    logs.mkdir(parents=True, exist_ok=True)
    listing = suite_listing()
    runs: dict[str, Run] = {}
    broken = []
    for side in ([] if args.ours_only else ["tgt"]) + ["ours"]:
        log = logs / ("tgtd.log" if side == "tgt" else "array-sim-serve.log")
        with tempfile.TemporaryDirectory(prefix=f"conformance-{side}-") as tmp:
            starter = (
                iscsi_peer.tgt_target(Path(tmp), portals=2, log=log)
                if side == "tgt"
                else iscsi_peer.our_target(Path(tmp), options=OUR_VOLUME_OPTIONS, log=log)
            )
            try:
                with starter as target:
                    runs[side] = run_suite(side, target, args, logs, listing)
            except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as error:
                if side in runs:
                    raise
                broken.append(side)
                tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                print(f"[{side}] could not start the target: {error}", *tail, sep="\n    ", flush=True)
    report(runs)
    (logs / "summary.json").write_text(json.dumps({s: asdict(r) for s, r in runs.items()}, indent=1))
    print(f"\nraw logs and summary.json in {logs}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
