"""Smoke test of benchmarks/lio_guest.py: a --quick run in the LIO guest ends well and prints every figure
(no timing checks): the three targets' rates and the three ratios for each workload, and its CPU row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "lio_guest.py"
sys.path.append(str(REPO / "tests" / "lio"))

from guest import skip_unless_buildable  # noqa: E402

skip_unless_buildable()

WORKLOADS = (
    ("4 KiB rand read QD32", "IOPS"),
    ("4 KiB rand write QD32", "IOPS"),
    ("1 MiB seq read QD8", "MB/s"),
    ("1 MiB seq write QD8", "MB/s"),
)
NUMBER = r"[\d,]+(?:\.\d+)?"
RATIO = r"\d+\.\d\d"


@pytest.mark.slow  # one guest boot under software emulation, three targets, 12 fio runs: about 2 minutes
def test_quick_run_prints_every_figure(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--logs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,  # a cold guest build (about 1.5 minutes here) comes first when nothing is cached
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    header = "| workload | unit | lio+tcmu | fileio | embedded | lio+tcmu/fileio | embedded/fileio | lio+tcmu/embedded |"
    assert header in out, out
    for label, unit in WORKLOADS:
        rates = rf"\| {re.escape(label)} \| {re.escape(unit)} \|" + rf" {NUMBER} \|" * 3 + rf" {RATIO} \|" * 3
        assert re.search(rates, out), f"no rates and ratios for {label!r} in:\n{out}"
        cpu = rf"\| {re.escape(label)} \|" + r" \d+\.\d\d \|" * 3
        assert re.search(cpu, out), f"no CPU per I/O for {label!r} in:\n{out}"
    assert re.search(r"disks: lio\+tcmu /dev/sd\w+, fileio /dev/sd\w+, embedded /dev/sd\w+", out), out
    assert "Only ratios taken within one run mean anything" in out
    assert (tmp_path / "console.log").exists(), "the guest's logs were not kept where --logs said"
