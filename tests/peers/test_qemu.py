"""qemu-img / qemu-io and the libiscsi command-line tools against our target, over iscsi:// URLs.

One ``array-sim serve`` for the module (started by ``benchmarks/iscsi_peer.py``) with the thick
1GB volume ``vol`` open to every IP address, and:

* qemu-io writes a pattern and reads it back; a wrong pattern fails verification;
* a 1 GiB raw image of random data with holes and zero runs goes into the volume with
  ``qemu-img convert`` and back out, and ``qemu-img compare`` finds both equal to it;
* a snapshot taken of that, then the volume overwritten with another image: the snapshot's own
  target (set online, reached through the volume's access record) still serves the first image;
* a volume whose only access record is a CHAP user: the right password moves data, a wrong one or
  none cannot log in;
* iscsi-ls / iscsi-inq / iscsi-readcapacity16 see what the CLI configured, and stop seeing a volume
  set offline.

The tests run in file order and the snapshot test leaves ``vol`` holding the second image.
Select with ``pytest tests/peers`` or ``-k peers``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

import iscsi_peer  # noqa: E402

TOOLS = ("qemu-img", "qemu-io", "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16")
if missing := [tool for tool in TOOLS if shutil.which(tool) is None]:
    pytest.skip(f"not installed: {', '.join(missing)} (qemu-utils, libiscsi-bin)", allow_module_level=True)

pytestmark = pytest.mark.slow

MiB, GiB = 1 << 20, 1 << 30
VOLUME_BYTES = 1_085_276_160  # "1GB" on the array: 69 pages of 15 MiB (and "150MB" is 10)
CHUNK = 16 * MiB


def run(
    *command: str, ok: bool = True, log: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a tool; with ``ok`` it must succeed (the failure shows its output and the server log's tail)."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if ok and result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log and log.exists() else ""
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            + (f"\n--- array-sim serve log, last lines ---\n{tail}" if tail else "")
        )
    return result


def make_image(path: Path, size: int, seed: int) -> Path:
    """Random data in 16 MiB chunks, each different; every fifth chunk a hole and zero runs (4 KiB
    aligned, odd lengths) inside others, placed by ``seed``: a copy over another image needs zero writes."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, CHUNK, dtype=np.uint8)
    with open(path, "wb") as f:
        f.truncate(size)
        for i in range(size // CHUNK):
            if i % 5 == (3 + seed) % 5:
                continue
            chunk = data ^ np.uint8((i * 37 + seed) % 251 + 1)
            if i % 5 == (1 + seed) % 5:
                start = int(rng.integers(0, 3000)) * 4096
                chunk[start : start + int(rng.integers(1, 700)) * 4096] = 0
            f.seek(i * CHUNK)
            f.write(chunk.tobytes())
    return path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[iscsi_peer.OurTarget]:
    with iscsi_peer.our_target(tmp_path_factory.mktemp("qemu-target"), volume="vol", size="1GB") as running:
        yield running


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("qemu-images")
    return {name: make_image(directory / f"{name}.img", GiB, seed) for name, seed in (("a", 1), ("c", 2))}


@pytest.fixture(scope="module")
def volume_holds_a(target: iscsi_peer.OurTarget, images: dict[str, Path]) -> str:
    """``vol`` with image A converted into it (no target creation: -n); its URL."""
    url = target.url()
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(images["a"]), url, log=target.log)
    return url


def iqn_of(lines: list[str]) -> str:
    match = re.search(r"iSCSI Name: (\S+)", "\n".join(lines))
    assert match, lines
    return match.group(1)


def listed_targets(target: iscsi_peer.OurTarget) -> set[str]:
    """The target names a SendTargets discovery on the portal returns."""
    out = run("iscsi-ls", f"iscsi://{target.host}:{target.port}", log=target.log).stdout
    return set(re.findall(r"Target:(\S+)", out))


def test_qemu_io_pattern(target: iscsi_peer.OurTarget) -> None:
    url = target.url()
    run("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", url, log=target.log)
    run("qemu-io", "-f", "raw", "-c", "read -P 0xab 0 1M", url, log=target.log)
    run("qemu-io", "-f", "raw", "-c", "write -P 0x5c 1020k 8k", url, log=target.log)  # across a 1 MiB edge
    run("qemu-io", "-f", "raw", "-c", "read -P 0xab 0 1020k", "-c", "read -P 0x5c 1020k 8k", url, log=target.log)
    wrong = run("qemu-io", "-f", "raw", "-c", "read -P 0xcd 0 1M", url, ok=False)
    assert wrong.returncode != 0 and "Pattern verification failed" in wrong.stdout


def test_convert_in_and_out(
    target: iscsi_peer.OurTarget, images: dict[str, Path], volume_holds_a: str, tmp_path: Path
) -> None:
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(images["a"]), volume_holds_a, log=target.log)
    out = tmp_path / "out.img"
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", volume_holds_a, str(out), log=target.log)
    assert out.stat().st_size == VOLUME_BYTES
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(images["a"]), str(out))


def test_snapshot_keeps_data_after_overwrite(
    target: iscsi_peer.OurTarget, images: dict[str, Path], volume_holds_a: str, tmp_path: Path
) -> None:
    lines = target.cli("volume", "select", "vol", "snapshot", "create-now")
    snap = next(line.split()[-1] for line in lines if line.startswith("Snapshot name is"))
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(images["c"]), volume_holds_a, log=target.log)
    target.cli("volume", "select", "vol", "snapshot", "select", snap, "online")
    snap_iqn = iqn_of(target.cli("volume", "select", "vol", "snapshot", "select", snap, "show"))
    assert snap_iqn in listed_targets(target)
    snap_url = target.url(iqn=snap_iqn)

    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(images["a"]), snap_url, log=target.log)
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(images["c"]), volume_holds_a, log=target.log)
    out = tmp_path / "snapshot.img"
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", snap_url, str(out), log=target.log)
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(images["a"]), str(out))


def test_chap(target: iscsi_peer.OurTarget, tmp_path: Path) -> None:
    target.cli("chapuser", "create", "alice", "password", "alice-secret-12")
    lines = target.cli("volume", "create", "chapvol", "150MB")
    iqn = next(line.split()[-1].rstrip(".") for line in lines if "iSCSI target name is" in line)
    target.cli("volume", "select", "chapvol", "access", "create", "username", "alice")
    url = target.url(iqn=iqn, user="alice", password="alice-secret-12")

    run("qemu-io", "-f", "raw", "-c", "write -P 0x3c 4k 1M", url, log=target.log)
    run("qemu-io", "-f", "raw", "-c", "read -P 0x3c 4k 1M", url, log=target.log)
    image = make_image(tmp_path / "small.img", 64 * MiB, 3)
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(image), url, log=target.log)
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(image), url, log=target.log)

    assert iscsi_peer.can_log_in(url)
    assert not iscsi_peer.can_log_in(target.url(iqn=iqn, user="alice", password="wrong-secret-99"))
    assert not iscsi_peer.can_log_in(target.url(iqn=iqn, user="mallory", password="alice-secret-12"))
    assert not iscsi_peer.can_log_in(target.url(iqn=iqn))
    wrong = run(
        "qemu-io",
        "-f",
        "raw",
        "-c",
        "read 0 4k",
        target.url(iqn=iqn, user="alice", password="nope-nope-nope"),
        ok=False,
    )
    assert wrong.returncode != 0


def test_tools_see_what_the_cli_configured(target: iscsi_peer.OurTarget) -> None:
    assert target.iqn in listed_targets(target)
    inquiry = run("iscsi-inq", target.url(), log=target.log).stdout
    assert re.search(r"^Vendor:EQLOGIC\s*$", inquiry, re.M), inquiry
    capacity = run("iscsi-readcapacity16", target.url(), log=target.log).stdout
    assert f"Total size:{VOLUME_BYTES}" in capacity, capacity
    assert "LOGICAL BLOCK LENGTH IN BYTES:512" in capacity, capacity

    lines = target.cli("volume", "create", "offvol", "150MB")
    iqn = next(line.split()[-1].rstrip(".") for line in lines if "iSCSI target name is" in line)
    target.cli("volume", "select", "offvol", "access", "create", "ipaddress", "*.*.*.*")
    assert iqn in listed_targets(target)
    assert iscsi_peer.can_log_in(target.url(iqn=iqn))
    assert "Total size:157286400" in run("iscsi-readcapacity16", target.url(iqn=iqn), log=target.log).stdout

    target.cli("volume", "select", "offvol", "offline")
    assert iqn not in listed_targets(target)
    assert not iscsi_peer.can_log_in(target.url(iqn=iqn))
    assert target.iqn in listed_targets(target)  # the others stay
    target.cli("volume", "select", "offvol", "online")
    assert iqn in listed_targets(target)
