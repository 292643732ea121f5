"""Through the real interface: qemu-io keeps writing and verifying over iSCSI while a volume's data moves
between pools and while the member holding it is vacated, and while a member with its data is powered off
and on.

One ``array-sim serve`` (``benchmarks/iscsi_peer.py``) per test on a group whose member-1 is one sparse
file (2GB); more arrays come from the ``simulate`` CLI noun (RAID 10 over six disk files), and the moves
run in the server's background steps beside the initiator's I/O.
"""

from __future__ import annotations

import shutil
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

#: Pattern bytes of the volume's 32 MiB regions, by region number (the volume is 300MB: 20 pages).
REGION = 32 << 20
PATTERNS = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99]


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


def values(target: iscsi_peer.OurTarget, *words: str) -> dict[str, str]:
    """The ``Key: Value`` pairs of a show command (two to a line, as the CLI prints them by default)."""
    found: dict[str, str] = {}
    for line in target.cli(*words)[1:]:
        for part in line.split("  "):
            key, sep, value = part.strip().partition(": ")
            if sep:
                found.setdefault(key, value.strip())
    return found


def add_array(target: iscsi_peer.OurTarget, name: str, pool: str) -> None:
    target.cli("simulate", "member", "add", name, "disks", "6", "disk-size", "400MB", "pool", pool)
    target.cli("member", "select", name, "raid-policy", "raid10")


def keep_io_going_until(
    target: iscsi_peer.OurTarget, patterns: list[int], done: object, timeout: float = 300
) -> list[int]:
    """Rewrite one region after another and verify them all while ``done()`` is false; returns the patterns."""
    patterns = list(patterns)
    deadline = time.monotonic() + timeout
    n = 0
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the move did not finish"
        region = n % len(patterns)
        patterns[region] = (patterns[region] + 0x10) % 0xF0 + 1
        qemu_io(target, f"write -P {patterns[region]:#x} {region * REGION} {REGION}")
        verify_regions(target, patterns)
        n += 1
    assert n > 0, "the move ended before any I/O ran beside it"
    return patterns


@pytest.fixture
def target(tmp_path: Path) -> Iterator[iscsi_peer.OurTarget]:
    with iscsi_peer.our_target(tmp_path, volume="vol", size="300MB", member_size="2GB", raid_policy="file") as t:
        yield t


def test_a_volume_moves_to_another_pool_and_its_member_is_vacated_under_io(target: iscsi_peer.OurTarget) -> None:
    add_array(target, "m2", "default")
    write_regions(target, PATTERNS)
    assert set(values(target, "volume", "select", "vol", "show")["Members"].split(", ")) == {"member-1", "m2"}
    target.cli("pool", "create", "p2")
    add_array(target, "m3", "p2")
    target.cli("volume", "select", "vol", "pool", "p2")

    def moved() -> bool:
        return values(target, "volume", "select", "vol", "show")["Operation"] == "none"

    patterns = keep_io_going_until(target, PATTERNS, moved)
    shown = values(target, "volume", "select", "vol", "show")
    assert (shown["Pool"], shown["Members"]) == ("p2", "m3")
    verify_regions(target, patterns)

    add_array(target, "m4", "p2")
    target.cli("member", "select", "m3", "delete")

    def vacated() -> bool:
        return "m3" not in [line.split()[0] for line in target.cli("member", "show")[2:] if line.strip()]

    patterns = keep_io_going_until(target, patterns, vacated)
    assert values(target, "volume", "select", "vol", "show")["Members"] == "m4"
    verify_regions(target, patterns)
    events = "\n".join(target.cli("show", "events"))
    assert "Volume vol moved to pool p2." in events and "Member m3 was removed from the group." in events


def test_a_powered_off_member_takes_its_volume_offline_until_it_is_back(target: iscsi_peer.OurTarget) -> None:
    add_array(target, "m2", "default")
    write_regions(target, PATTERNS)
    target.cli("simulate", "member", "select", "m2", "power", "off")
    assert values(target, "volume", "select", "vol", "show")["Status"] == "offline (member-offline)"
    result = qemu_io(target, f"read -P {PATTERNS[0]:#x} 0 1M", ok=False)
    assert result.returncode != 0 or "failed" in (result.stdout + result.stderr).lower()
    target.cli("simulate", "member", "select", "m2", "power", "on")
    iscsi_peer.wait_for_login(target)
    verify_regions(target, PATTERNS)
