"""The LIO test guest (``tests/lio/guest.py``, ``scripts/lio-guest/``) boots and is what the LIO tests need:

* Debian 12's own 6.1 kernel, with LIO's configfs (``target/core`` and ``target/iscsi``);
* the Python packages of rtslib-fb and array-sim from Debian, and this project at /opt/array-sim;
* a kernel fileio LUN made in the guest with rtslib-fb, behind an ACL, answers the host's libiscsi at
  127.0.0.1:``host_port`` (QEMU's forward to the guest's 3260) as ``LIO-ORG``; another initiator is refused.

One guest for the module: the first run builds it (about 1.5 min, then cached in .cache/lio-guest/), and each
run boots it under TCG (about 15 s). Skipped where the guest cannot be built (root, qemu or apt, network).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent))

from guest import REPO, Guest, skip_unless_buildable  # noqa: E402

skip_unless_buildable()

pytestmark = pytest.mark.slow

TARGET = "iqn.2026-11.org.array-sim:lio-guest-smoke"
HOST = "iqn.2026-11.org.array-sim:lio-guest-host"
LUN_BYTES = 64 << 20
MAKE_LUN = f"""python3 - <<'PY'
from rtslib_fb import (RTSRoot, FabricModule, FileIOStorageObject, LUN, MappedLUN, NetworkPortal, NodeACL,
                       Target, TPG)
RTSRoot()  # first: it sets LIO's dbroot, which no longer can change once a device exists
lun_file = FileIOStorageObject("smoke", "/var/tmp/smoke.img", size={LUN_BYTES})
tpg = TPG(Target(FabricModule("iscsi"), "{TARGET}"), 1)
NetworkPortal(tpg, "0.0.0.0", 3260)
MappedLUN(NodeACL(tpg, "{HOST}"), 0, LUN(tpg, 0, lun_file))
tpg.set_attribute("authentication", "0")
tpg.enable = True
print("made", tpg.path)
PY"""


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    with Guest(tmp_path_factory.mktemp("lio-guest")) as booted:
        yield booted


def ok(guest: Guest, command: str, timeout: float = 120) -> str:
    code, output = guest.run(command, timeout)
    assert code == 0, f"{command!r} exited {code} in the guest:\n{output}"
    return output


def test_the_kernel_is_debian_12s_6_1(guest: Guest) -> None:
    release = ok(guest, "uname -r").strip()
    assert release.startswith("6.1.0-") and release.endswith("-amd64"), release
    assert " Debian 6.1." in ok(guest, "cat /proc/version")


def test_lio_is_loaded_with_its_iscsi_fabric(guest: Guest) -> None:
    ok(guest, "test -d /sys/kernel/config/target/core && test -d /sys/kernel/config/target/iscsi")
    modules = ok(guest, "cut -d' ' -f1 /proc/modules").split()
    assert {"target_core_mod", "target_core_file", "target_core_user", "iscsi_target_mod", "uio"} <= set(modules)


def test_the_python_packages_are_debians(guest: Guest) -> None:
    ok(guest, 'python3 -c "import rtslib_fb, numpy, uvloop, pyroute2, crc32c"', timeout=300)


def test_the_project_is_at_opt_array_sim(guest: Guest) -> None:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True)
    tracked = {name for name in listed.stdout.splitlines() if (REPO / name).exists()}
    in_guest = set(ok(guest, "cd /opt/array-sim && find . -type f -printf '%P\\n'").splitlines())
    assert tracked <= in_guest, sorted(tracked - in_guest)[:20]
    assert ok(guest, "cat /opt/array-sim/pyproject.toml") == (REPO / "pyproject.toml").read_text()
    # Importable from anywhere (a .pth file), the way the LIO tests will run it.
    ok(guest, 'cd / && python3 -c "import array_sim, targets, firmware_model"', timeout=300)


@pytest.mark.skipif(shutil.which("iscsi-inq") is None, reason="no iscsi-inq on the host (libiscsi-bin)")
def test_a_fileio_lun_answers_the_hosts_libiscsi_through_127_0_0_1(guest: Guest) -> None:
    ok(guest, MAKE_LUN, timeout=300)
    url = f"iscsi://127.0.0.1:{guest.host_port}/{TARGET}/0"
    inquiry = subprocess.run(["iscsi-inq", "-i", HOST, url], capture_output=True, text=True, timeout=120)
    assert inquiry.returncode == 0, inquiry.stderr
    assert "Vendor:LIO-ORG" in inquiry.stdout and "Product:FILEIO" in inquiry.stdout, inquiry.stdout
    capacity = subprocess.run(["iscsi-readcapacity16", "-i", HOST, url], capture_output=True, text=True, timeout=120)
    assert f"Total size:{LUN_BYTES}" in capacity.stdout, capacity.stdout + capacity.stderr
    stranger = subprocess.run(["iscsi-inq", "-i", f"{HOST}-not", url], capture_output=True, text=True, timeout=120)
    assert stranger.returncode != 0 and "Authorization failure" in stranger.stderr, stranger.stdout + stranger.stderr
