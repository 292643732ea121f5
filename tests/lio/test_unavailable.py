"""``serve --frontend lio`` where LIO is not (this machine, CI, laptops): one line that says what is missing,
exit status 1, and the group untouched. The LIO front end itself is tested in the QEMU guest
(``tests/lio/test_lio_guest.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ARRAY_SIM = str(Path(sys.executable).parent / "array-sim")


@pytest.mark.skipif(Path("/sys/kernel/config/target/core").exists(), reason="LIO is loaded on this host")
def test_serve_through_lio_without_lio_is_one_line(tmp_path: Path) -> None:
    group = tmp_path / "g"
    subprocess.run([ARRAY_SIM, "init", "--dir", str(group), "--member-size", "1GB", "--raid-policy", "file"],
                   check=True, capture_output=True)  # fmt: skip
    done = subprocess.run([ARRAY_SIM, "serve", "--dir", str(group), "--frontend", "lio", "--portal", "127.0.0.1:3999"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1, done
    assert done.stderr.startswith("array-sim: serve --frontend lio needs "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # no traceback
    shown = subprocess.run([ARRAY_SIM, "cli", "--dir", str(group), "show"], capture_output=True, text=True)
    assert shown.returncode == 0 and "% Error" not in shown.stdout
