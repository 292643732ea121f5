"""Smoke test of benchmarks/collection_snapshot.py: a --quick run ends well and prints every figure
(no timing checks)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "collection_snapshot.py"
KINDS = ("collection snapshot", "one volume's snapshot", "a command taking nothing", "no command (floor)")
FIGURE = r"\d+\.\d ms \(max +\d+\.\d\)"


@pytest.mark.slow  # a server, 8 volumes and 8 writer processes for about 10 s: about 30 s
@pytest.mark.skipif(not shutil.which("iscsi-inq"), reason="needs iscsi-inq (the server is ready when it logs in)")
def test_quick_run_prints_every_figure_and_cleans_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"writes completed: \d+ in \d+\.\d s \(\d+/s\)", out), out
    assert re.search(rf"snapshot create-now round trip \(8 snapshots\): +{FIGURE}", out), out
    for kind in KINDS:
        assert re.search(rf"longest pause, {re.escape(kind)} *: one writer +{FIGURE}, all writers +{FIGURE}", out), out
    assert "Only figures taken within one run compare" in out
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
