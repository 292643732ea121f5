"""Smoke test of benchmarks/pool_moves.py: a --quick run ends well and prints every figure (no timing checks)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pool_moves.py"

#: (start of the line, the ratio it must carry)
ROWS = (
    ("1. page mover vs plain copy", "mover/plain"),
    ("2. 4 KiB rand read QD32, move", "moving/idle"),
    ("2. 4 KiB rand write QD32, move", "moving/idle"),
    ("3. logins/s, raw login+logout", "redirect/direct"),
    ("3. logins/s, iscsi-inq process", "redirect/direct"),
    ("4. 4 KiB rand read QD32, 2 ports vs 1", "two/one"),
    ("4. 1 MiB seq read QD8, 2 ports vs 1", "two/one"),
    ("4. 1 MiB seq write QD8, 2 ports vs 1", "two/one"),
)


@pytest.mark.slow  # a server, a 240MB volume moved several times, a few hundred logins: about 30 s
@pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("iscsi-inq")), reason="needs qemu-img and iscsi-inq")
def test_quick_run_prints_every_figure_and_cleans_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for start, ratio in ROWS:
        line = next((line for line in lines if line.startswith(start)), None)
        assert line is not None, f"no row {start!r} in:\n{result.stdout}"
        assert re.search(rf"{ratio} \d+\.\d\d\b", line), f"no {ratio} figure in {line!r}"
    assert re.search(r"redirects to 127\.0\.0\.\d+:\d+", result.stdout), result.stdout
    assert "Only ratios taken within one run" in result.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
