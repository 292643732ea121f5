"""Smoke test of benchmarks/ssh_cli.py: a --quick run ends well and prints every figure (no timing checks)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ssh_cli.py"

#: (start of the line, the ratio it must carry)
ROWS = (
    ("1. commands/s, a session per command", "ssh/control"),
    ("2. commands/s, one session kept open", "ssh/control"),
    ("   server CPU per command", "ssh/control"),
    ("3. commands/s, channel vs process", "channel/process"),
    ("4. time to first prompt", "ssh/control"),
)


@pytest.mark.slow  # a server, a few hundred SSH channels, a few array-sim cli processes: about 10 s
def test_quick_run_prints_every_figure_and_cleans_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for start, ratio in ROWS:
        line = next((line for line in lines if line.startswith(start)), None)
        assert line is not None, f"no row {start!r} in:\n{result.stdout}"
        assert re.search(rf"{ratio} \d[\d,]*\.\d\d\b", line), f"no {ratio} figure in {line!r}"
    assert re.search(r"key exchange and password login: [\d.]+ ms", result.stdout), result.stdout
    assert "Only ratios taken within one run" in result.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
