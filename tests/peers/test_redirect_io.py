"""Real initiators through the group IP: libiscsi's tools and qemu-io follow the login redirect to a
member port, come back through the group IP when their port goes down, spread two sessions over two
ports, and with ``serve --no-redirect`` stay where they connected.

Each test runs its own ``array-sim serve`` (``benchmarks/iscsi_peer.py``) on 127.0.0.1 (the group IP)
with member-1 (one sparse file) and an added RAID 10 array m2; member ports are 127.0.0.11 and up.
The server log says where each session landed (``login: ... at ADDRESS``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

import iscsi_peer  # noqa: E402

from tests.peers.qemu_writer import PatternWriter  # noqa: E402

TOOLS = ("qemu-io", "iscsi-ls", "iscsi-inq")
if missing := [tool for tool in TOOLS if shutil.which(tool) is None]:
    pytest.skip(f"not installed: {', '.join(missing)} (qemu-utils, libiscsi-bin)", allow_module_level=True)

pytestmark = pytest.mark.slow

LOGIN_AT = re.compile(r"login: \S+ \(\S+\) to (\S+) at (\S+)")


def landings(target: iscsi_peer.OurTarget) -> list[str]:
    """Where each normal session logged in, in order."""
    return [at for name, at in LOGIN_AT.findall(target.log.read_text()) if name != "discovery"]


def wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def start_writer(target: iscsi_peer.OurTarget) -> tuple[PatternWriter, int, str]:
    """A qemu-io writer (tests/peers/qemu_writer.py) once it has logged in and written: the writer,
    the sessions logged before it, and the member port it landed on."""
    before = len(landings(target))
    writer = PatternWriter(target.url(), size_mib=240)
    writer.write_one()
    wait_for(lambda: len(landings(target)) > before, "qemu-io never logged in")
    return writer, before, landings(target)[-1]


def relogged(target: iscsi_peer.OurTarget, before: int) -> Callable[[], bool]:
    """The writer's session has logged in again (its landings after the first)."""
    return lambda: len(landings(target)) > before + 1


@pytest.fixture
def target(tmp_path: Path) -> Iterator[iscsi_peer.OurTarget]:
    with iscsi_peer.our_target(
        tmp_path, volume="vol", size="300MB", member_size="2GB", raid_policy="file", options=("multihost-access", "enable")
    ) as running:
        running.cli("simulate", "member", "add", "m2", "disks", "6", "disk-size", "400MB")
        running.cli("member", "select", "m2", "raid-policy", "raid10")
        yield running


def test_libiscsi_tools_and_qemu_follow_the_redirect(target: iscsi_peer.OurTarget) -> None:
    listed = subprocess.run(["iscsi-ls", "-s", f"iscsi://127.0.0.1:{target.ports[0]}"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0 and f"Portal:127.0.0.1:{target.ports[0]},1" in listed.stdout, listed
    assert "Lun:0" in listed.stdout  # its normal session (for the LUN list) followed the redirect
    inq = subprocess.run(["iscsi-inq", target.url()], capture_output=True, text=True, timeout=60)
    assert inq.returncode == 0 and "DIRECT_ACCESS" in inq.stdout, inq
    io = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 8M", "-c", "read -P 0x5a 0 8M", target.url()],
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert io.returncode == 0 and "failed" not in io.stdout.lower(), io
    at = landings(target)
    assert len(at) >= 3 and all(a.startswith("127.0.0.1") and a != "127.0.0.1" for a in at), at
    assert "redirect: " in target.log.read_text()


def test_a_port_taken_down_mid_io_sends_the_initiator_back_through_the_group_ip(
    target: iscsi_peer.OurTarget,
) -> None:
    writer, before, port = start_writer(target)
    member, eth = next((m, e) for m, e, address in _ports(target) if address == port)
    target.cli("simulate", "member", "select", member, "eth", str(eth), "down")
    writer.write_until(relogged(target, before))
    status, out = writer.verify_and_quit()
    assert status == 0 and "failed" not in out.lower(), out
    later = landings(target)[before + 1 :]
    assert later and port not in later, (port, later)  # it came back through the group IP elsewhere
    target.cli("simulate", "member", "select", member, "eth", str(eth), "up")


def test_a_session_on_a_member_being_vacated_logs_out_and_comes_back_elsewhere(
    target: iscsi_peer.OurTarget,
) -> None:
    writer, before, port = start_writer(target)
    member = next(m for m, _, address in _ports(target) if address == port)
    target.cli("member", "select", member, "delete")  # its data moves away: the session must follow
    writer.write_until(relogged(target, before))
    status, out = writer.verify_and_quit()
    assert status == 0 and "failed" not in out.lower(), out
    log = target.log.read_text()
    assert f"at {port} to log out and in again: member {member} is no longer a home of its target" in log, log
    later = landings(target)[before + 1 :]
    assert later and port not in later, (port, later)  # logged in again through the group IP, elsewhere
    assert "did not log out when asked to" not in log


def _ports(target: iscsi_peer.OurTarget) -> list[tuple[str, int, str]]:
    found = []
    for member in ("member-1", "m2"):
        for line in target.cli("member", "select", member, "show"):
            fields = line.split()
            if fields and re.fullmatch(r"eth\d", fields[0]):
                found.append((member, int(fields[0][3:]), fields[1]))
    return found


def test_two_sessions_land_on_two_ports(target: iscsi_peer.OurTarget) -> None:
    qemu_io = ["qemu-io", "-f", "raw"] + [a for n in range(40) for a in ("-c", f"write -P 0x33 {n * 4}M 4M")]
    first = subprocess.Popen([*qemu_io, target.url()], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    before = len(landings(target))
    wait_for(lambda: len(landings(target)) > before, "the first session never logged in")
    second = subprocess.run(["iscsi-inq", target.url()], capture_output=True, text=True, timeout=60)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (out, second)
    a, b = landings(target)[before : before + 2]
    assert a != b, (a, b)


def test_no_redirect_keeps_every_session_where_it_connected(tmp_path: Path) -> None:
    group_dir = tmp_path / "group"
    subprocess.run([iscsi_peer.array_sim_command(), "init", "--dir", str(group_dir), "--member-size", "1GB",
                    "--raid-policy", "file"], check=True, capture_output=True, timeout=120)  # fmt: skip
    port = iscsi_peer.free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [iscsi_peer.array_sim_command(), "serve", "--dir", str(group_dir), "--portal", f"127.0.0.1:{port}",
             "--no-redirect"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        iscsi_peer.wait_until(lambda: (group_dir / "control.sock").exists(), proc, "serve --no-redirect")
        target = iscsi_peer.OurTarget("ours", "", 0, [port], proc, log=log, group_dir=group_dir)
        lines = target.cli("volume", "create", "vol", "100MB")
        target.iqn = next(line.split()[-1].rstrip(".") for line in lines if "iSCSI target name is" in line)
        target.cli("volume", "select", "vol", "access", "create", "ipaddress", "*.*.*.*")
        iscsi_peer.wait_for_login(target)
        listed = subprocess.run(["iscsi-ls", "-s", f"iscsi://127.0.0.1:{port}"], capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert f"Portal:127.0.0.1:{port},1" in listed.stdout, listed
        io = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x7 0 1M", target.url()], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
        assert io.returncode == 0, io
        assert set(landings(target)) == {"127.0.0.1"} and "redirect: " not in log.read_text()
        assert "logins served where they arrive" in log.read_text()
    finally:
        iscsi_peer._stop(proc)
