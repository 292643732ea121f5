"""Through the real interface: qemu-io writes and verifies over iSCSI while RAID 6 disks fail, are
rebuilt and replaced, and ``array-sim serve`` is killed with SIGKILL in the middle of a reconstruction.

Each test runs its own ``array-sim serve`` (``benchmarks/iscsi_peer.py``) on a group whose member-1
is RAID 6 over 12 disk files (the default), 2GB usable, with one thick 600MB volume. Faults come from
the ``simulate`` CLI noun through the server's control socket; reconstruction runs in the server's
background steps while the initiator keeps reading and writing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

import iscsi_peer  # noqa: E402

if shutil.which("qemu-io") is None:
    pytest.skip("qemu-io is not installed (qemu-utils, qemu-block-extra)", allow_module_level=True)

pytestmark = pytest.mark.slow

#: Pattern bytes written to each 64 MiB region of the volume, by region number.
PATTERNS = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
REGION = 64 << 20


def qemu_io(target: iscsi_peer.OurTarget, *commands: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["qemu-io", "-f", "raw"]
    for command in commands:
        args += ["-c", command]
    result = subprocess.run([*args, target.url()], capture_output=True, text=True, timeout=600)
    if ok:
        assert result.returncode == 0 and "failed" not in result.stdout.lower(), (
            f"{commands}: {result.stdout}{result.stderr}\n--- server log ---\n"
            + "\n".join(target.log.read_text(errors="replace").splitlines()[-20:])
        )
    return result


def write_regions(target: iscsi_peer.OurTarget, patterns: list[int]) -> None:
    qemu_io(target, *(f"write -P {p:#x} {i * REGION} {REGION}" for i, p in enumerate(patterns)))


def verify_regions(target: iscsi_peer.OurTarget, patterns: list[int]) -> None:
    qemu_io(target, *(f"read -P {p:#x} {i * REGION} {REGION}" for i, p in enumerate(patterns)))


def member(target: iscsi_peer.OurTarget) -> dict[str, str]:
    lines = target.cli("member", "select", "member-1", "show")
    values: dict[str, str] = {}
    for line in lines[1:]:
        for part in line.split("  "):
            key, sep, value = part.strip().partition(": ")
            if sep:
                values[key] = value.strip()
    return values


def wait_for_raid(target: iscsi_peer.OurTarget, status: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (now := member(target))["RaidStatus"] != status:
        assert time.monotonic() < deadline, f"RAID status still {now['RaidStatus']} {now['RaidPercentage']}"
        time.sleep(0.5)


def start(directory: Path) -> iscsi_peer.OurTarget:
    return iscsi_peer.our_target(directory, volume="vol", size="600MB", member_size="2GB")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[iscsi_peer.OurTarget]:
    with start(tmp_path) as running:
        yield running


def test_io_goes_on_while_disks_fail_and_are_rebuilt(target: iscsi_peer.OurTarget) -> None:
    write_regions(target, PATTERNS)
    target.cli("simulate", "member", "select", "member-1", "disk", "4", "fail")
    verify_regions(target, PATTERNS)  # disk 4's strips come from parity while the spare is rebuilt
    changed = PATTERNS[:2] + [0xA1, 0xA2] + PATTERNS[4:]
    write_regions(target, changed)
    target.cli("simulate", "member", "select", "member-1", "disk", "9", "fail")  # two missing: no redundancy
    assert member(target)["Status"] == "on-line"
    verify_regions(target, changed)
    wait_for_raid(target, "degraded")  # the one spare is rebuilt; disk 9 has none left
    target.cli("simulate", "member", "select", "member-1", "disk", "4", "replace")  # taken for disk 9 at once
    verify_regions(target, changed)
    wait_for_raid(target, "ok")
    target.cli("simulate", "member", "select", "member-1", "disk", "0", "fail")
    target.cli("simulate", "member", "select", "member-1", "disk", "1", "fail")
    verify_regions(target, changed)
    events = "\n".join(target.cli("show", "events"))
    assert events.count("failed on member member-1") == 4 and "finished" in events


def test_beyond_tolerance_sessions_end_and_no_wrong_data_is_read(target: iscsi_peer.OurTarget) -> None:
    write_regions(target, PATTERNS[:2])
    target.cli("simulate", "member", "select", "member-1", "disk", "2", "fail")
    wait_for_raid(target, "ok")  # the spare has taken disk 2's place: the next three are beyond tolerance
    for disk in (5, 7):
        target.cli("simulate", "member", "select", "member-1", "disk", str(disk), "fail")
    assert member(target)["Status"] == "on-line"
    target.cli("simulate", "member", "select", "member-1", "disk", "9", "fail")
    assert member(target)["Status"] == "off-line"
    result = qemu_io(target, f"read -P {PATTERNS[0]:#x} 0 1M", ok=False)
    assert result.returncode != 0 or "failed" in (result.stdout + result.stderr).lower()
    assert "Pattern verification failed" not in result.stdout
    assert "offline" in " ".join(target.cli("volume", "select", "vol", "show"))


def test_kill_9_during_reconstruction_resumes_and_keeps_data(tmp_path: Path) -> None:
    with start(tmp_path) as target:
        write_regions(target, PATTERNS)
        target.cli("simulate", "member", "select", "member-1", "disk", "6", "fail")
        os.killpg(target.proc.pid, signal.SIGKILL)  # at once: reconstruction has just begun
        target.proc.wait()
        group_dir = target.group_dir
    log = tmp_path / "restart.log"
    with open(log, "wb") as out:
        port = iscsi_peer.free_port()
        proc = subprocess.Popen(
            [iscsi_peer.array_sim_command(), "serve", "--dir", str(group_dir), "--portal", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        iscsi_peer.wait_until(lambda: (group_dir / "control.sock").exists(), proc, "restarted serve")
        again = iscsi_peer.OurTarget("ours", target.iqn, 0, [port], proc, log=log, group_dir=group_dir)
        iscsi_peer.wait_for_login(again)
        assert member(again)["RaidStatus"] in ("reconstructing", "ok")
        verify_regions(again, PATTERNS)
        wait_for_raid(again, "ok")
        target_disks = {row.split()[0]: row for row in again.cli("member", "select", "member-1", "show", "disks")[2:]}
        assert target_disks["6"].split()[1] == "failed"
        again.cli("simulate", "member", "select", "member-1", "disk", "0", "fail")  # needs the rebuilt disk
        again.cli("simulate", "member", "select", "member-1", "disk", "1", "fail")
        verify_regions(again, PATTERNS)
    finally:
        iscsi_peer._stop(proc)
