"""``serve --netns``: the group IP and the member ports in network namespaces, initiators in the lab's
host namespace, a port's cable pulled for real (``targets.netns_lab``).

Root only (network namespaces and veth pairs): skipped elsewhere. Each test runs its own ``array-sim
serve --netns`` for a group of its own name, so its namespaces (``asim-NAME-...``) are its own; every
address is in 198.51.100.0/24 inside them. The initiators (libiscsi's tools, qemu-io) run in
``asim-NAME-host`` with ``ip netns exec``.
"""

from __future__ import annotations

import os
import re
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

from tests.peers.qemu_writer import PatternWriter  # noqa: E402

if os.geteuid() != 0 or shutil.which("ip") is None:
    pytest.skip("serve --netns needs root and iproute2", allow_module_level=True)
if missing := [tool for tool in ("qemu-io", "iscsi-ls") if shutil.which(tool) is None]:
    pytest.skip(f"not installed: {', '.join(missing)} (qemu-utils, libiscsi-bin)", allow_module_level=True)

pytestmark = pytest.mark.slow

GROUP_IP = "198.51.100.1"
LOGIN_AT = re.compile(r"login: \S+ \(\S+\) to (\S+) at (\S+)")


class Lab:
    """One ``array-sim serve --netns`` and its group."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.name = name
        self.dir = tmp_path / name
        self.log = tmp_path / f"{name}.log"
        self.host = f"asim-{name}-host"
        subprocess.run([iscsi_peer.array_sim_command(), "init", "--dir", str(self.dir), "--name", name,
                        "--member-size", "1GB", "--raid-policy", "file"], check=True, capture_output=True)  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.iqn = ""

    def start(self) -> None:
        started = self.log.read_text().count("Ctrl-C to stop") if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([iscsi_peer.array_sim_command(), "serve", "--dir", str(self.dir), "--netns"],
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        iscsi_peer.wait_until(lambda: self.log.read_text().count("Ctrl-C to stop") > started, self.proc, "serve --netns")

    def cli(self, *words: str) -> str:
        out = subprocess.run([iscsi_peer.array_sim_command(), "cli", "--dir", str(self.dir), *words],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert "% Error" not in out.stdout, out.stdout
        return out.stdout

    def run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A command in the lab's host namespace, where initiators live."""
        return subprocess.run(["ip", "netns", "exec", self.host, *command], capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def namespaces(self) -> set[str]:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        return {line.split()[0] for line in listed.splitlines() if line.startswith(f"asim-{self.name}-")}

    def landings(self) -> list[str]:
        return [at for name, at in LOGIN_AT.findall(self.log.read_text()) if name != "discovery"]

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)
            self.proc.wait(timeout=30)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path, f"lab{os.getpid() % 10000}")
    lab.start()
    lab.cli("cli-settings", "confirmation", "off")
    lab.cli("simulate", "member", "add", "m2", "disks", "6", "disk-size", "400MB")
    lab.cli("member", "select", "m2", "raid-policy", "raid10")
    out = lab.cli("volume", "create", "vol", "200MB", "multihost-access", "enable")
    lab.iqn = re.search(r"iSCSI target name is (\S+)\.", out).group(1)  # type: ignore[union-attr]
    lab.cli("volume", "select", "vol", "access", "create", "ipaddress", "*.*.*.*")
    yield lab
    lab.stop(signal.SIGKILL)
    for namespace in lab.namespaces():  # what a SIGKILL left behind
        subprocess.run(["ip", "netns", "del", namespace], check=False)
    Path(f"/run/array-sim-asim-{lab.name}-pid").unlink(missing_ok=True)


def test_initiators_in_the_lab_follow_the_redirect_to_member_ports_in_namespaces(lab: Lab) -> None:
    assert lab.namespaces() == {f"asim-{lab.name}-{n}" for n in ("san", "host", "p11", "p12", "p13", "p14")}
    shown = lab.cli("member", "select", "m2", "show")
    assert re.search(r"eth0\s+198\.51\.100\.13\s+up", shown), shown
    assert re.search(r"eth1\s+198\.51\.100\.14\s+up", shown), shown
    listed = lab.run("iscsi-ls", "-s", f"iscsi://{GROUP_IP}")
    assert f"Target:{lab.iqn} Portal:{GROUP_IP}:3260,1" in listed.stdout, listed
    url = f"iscsi://{GROUP_IP}/{lab.iqn}/0"
    io = lab.run("qemu-io", "-f", "raw", "-c", "write -P 0x61 0 8M", "-c", "read -P 0x61 0 8M", url)
    assert io.returncode == 0 and "failed" not in io.stdout.lower(), io
    assert lab.landings() and all(re.fullmatch(r"198\.51\.100\.1[1-4]", at) for at in lab.landings()), lab.landings()
    # The host's own namespace has none of it: the lab's addresses exist only inside the lab.
    assert "198.51.100." not in subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout


def test_a_second_group_of_the_same_name_is_refused_and_the_lab_left_alone(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run([iscsi_peer.array_sim_command(), "init", "--dir", str(other), "--name", lab.name,
                    "--member-size", "1GB", "--raid-policy", "file"], check=True, capture_output=True)  # fmt: skip
    refused = subprocess.run([iscsi_peer.array_sim_command(), "serve", "--dir", str(other), "--netns"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1 and "give this group another name" in refused.stderr, refused
    assert len(refused.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert f"Target:{lab.iqn}" in lab.run("iscsi-ls", f"iscsi://{GROUP_IP}").stdout


def test_a_pulled_cable_sends_the_initiator_back_through_the_group_ip(lab: Lab) -> None:
    writer = PatternWriter(f"iscsi://{GROUP_IP}/{lab.iqn}/0", size_mib=160, prefix=("ip", "netns", "exec", lab.host))
    writer.write_one()
    deadline = time.monotonic() + 30
    while not lab.landings():
        assert time.monotonic() < deadline, "qemu-io never logged in"
        time.sleep(0.1)
    port = lab.landings()[-1]
    member = "member-1" if port in lab.cli("member", "select", "member-1", "show") else "m2"
    eth = next(line.split()[0][3:] for line in lab.cli("member", "select", member, "show").splitlines()
               if port in line)  # fmt: skip
    lab.cli("simulate", "member", "select", member, "eth", eth, "down")
    link = subprocess.run(["ip", "-n", f"asim-{lab.name}-san", "link", "show", "p" + port.rsplit(".", 1)[1]],
                          capture_output=True, text=True).stdout  # fmt: skip
    assert "state DOWN" in link, link  # the cable is out: the port's link is down
    writer.write_until(lambda: len(lab.landings()) > 1)  # it logs in again, then writes through that session
    status, out = writer.verify_and_quit()
    assert status == 0 and "failed" not in out.lower(), out
    later = lab.landings()[1:]
    assert later and port not in later, (port, later)  # came back through the group IP to another port
    lab.cli("simulate", "member", "select", member, "eth", eth, "up")
    assert "state UP" in subprocess.run(["ip", "-n", f"asim-{lab.name}-san", "link", "show",
                                         "p" + port.rsplit(".", 1)[1]], capture_output=True, text=True).stdout


def test_a_clean_stop_removes_the_lab_and_a_kill_9_leftover_is_rebuilt(lab: Lab) -> None:
    made = lab.namespaces()
    lab.stop(signal.SIGKILL)
    assert lab.namespaces() == made  # a kill -9 cannot clean up
    lab.start()  # the next start removes the leftovers and builds the lab again
    assert lab.namespaces() == made
    io = lab.run("qemu-io", "-f", "raw", "-c", "write -P 0x62 0 1M", "-c", "read -P 0x62 0 1M",
                 f"iscsi://{GROUP_IP}/{lab.iqn}/0")  # fmt: skip
    assert io.returncode == 0 and "failed" not in io.stdout.lower(), io
    lab.stop()
    assert lab.namespaces() == set()
