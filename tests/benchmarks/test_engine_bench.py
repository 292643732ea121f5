"""Smoke test of benchmarks/engine.py: it runs to the end and prints every row (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "engine.py"

ROWS = (
    "4K random write",
    "4K random read",
    "1M seq write",
    "1M seq read",
    "snapshot create, 1 GiB thin",
    "snapshot create, 1 TiB thin",
    "COW 4K aligned",
    "COW 4K unaligned",
)


@pytest.mark.slow  # a benchmark process of several seconds
def test_quick_run_prints_every_row_and_cleans_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for row in ROWS:
        assert any(line.startswith(row) for line in lines), f"no row {row!r} in:\n{result.stdout}"
    assert "engine/plain" in result.stdout
    assert "cost COW/overwrite" in result.stdout
    assert "Only ratios taken within one run" in result.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
