"""``serve --frontend lio`` in a real kernel: Debian 12's 6.1 in the QEMU guest (``tests/lio/guest.py``).

In the guest, ``array-sim serve --frontend lio`` serves a group on the guest's address 10.0.2.15:3260;
QEMU forwards 127.0.0.1:``host_port`` on this host to it, so the host's libiscsi tools and qemu-io
reach the kernel's iSCSI target, which passes every SCSI command through ``target_core_user`` to our
handler in the serve process. Initiators in the guest (open-iscsi's kernel initiator) use 10.0.2.15.
A LIO ``fileio`` LUN in the same guest is the peer for ``iscsi-test-cu``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent))

from guest import Guest, skip_unless_buildable  # noqa: E402

skip_unless_buildable()
if missing := [tool for tool in ("iscsi-inq", "qemu-io", "iscsi-test-cu") if shutil.which(tool) is None]:
    pytest.skip(f"not installed on the host: {', '.join(missing)}", allow_module_level=True)

pytestmark = pytest.mark.slow

GROUP = "/var/tmp/group"
HOST_INITIATOR = "iqn.2026-12.org.array-sim:lio-host"
#: The name qemu logs in with.
QEMU_INITIATOR = "iqn.2008-11.org.linux-kvm"
#: The project's command in the guest (its source is importable there, not installed).
ARRAY_SIM = "python3 -m firmware_model.main"
SERVE = f"nohup {ARRAY_SIM} serve --dir {GROUP} --frontend lio --portal 10.0.2.15:3260 >>/var/tmp/serve.log 2>&1 &"


def ok(guest: Guest, command: str, timeout: float = 300) -> str:
    code, output = guest.run(command, timeout)
    assert code == 0, f"{command!r} exited {code} in the guest:\n{output}"
    return output


def cli(guest: Guest, *words: str) -> str:
    out = ok(guest, f"{ARRAY_SIM} cli --dir {GROUP} " + " ".join(words))
    assert "% Error" not in out, out
    return out


def wait_serving(guest: Guest, times: int = 1) -> None:
    ok(guest, f"for i in $(seq 600); do [ $(grep -c 'Ctrl-C to stop' /var/tmp/serve.log) -ge {times} ] && exit 0;"
              " sleep 0.5; done; cat /var/tmp/serve.log; exit 1")  # fmt: skip


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    with Guest(tmp_path_factory.mktemp("lio-frontend")) as booted:
        ok(booted, f"{ARRAY_SIM} init --dir {GROUP} --member-size 2GB --raid-policy file --group-ip 10.0.2.15")
        ok(booted, SERVE)
        wait_serving(booted)
        cli(booted, "cli-settings", "confirmation", "off")
        yield booted
        booted.run("pkill -INT -f 'firmware_model.main serve'; sleep 5; cat /var/tmp/serve.log", 60)


@pytest.fixture(scope="module")
def volume(guest: Guest) -> str:
    out = cli(guest, "volume", "create", "vol1", "200MB")
    iqn = re.search(r"iSCSI target name is (\S+)\.", out).group(1)  # type: ignore[union-attr]
    cli(guest, "volume", "select", "vol1", "access", "create", "initiator", HOST_INITIATOR)
    cli(guest, "volume", "select", "vol1", "access", "create", "initiator", QEMU_INITIATOR)
    return iqn


def host(guest: Guest, *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)


def url(guest: Guest, iqn: str) -> str:
    return f"iscsi://127.0.0.1:{guest.host_port}/{iqn}/0"


def test_a_volume_is_a_lio_target_with_the_arrays_identity(guest: Guest, volume: str) -> None:
    inquiry = host(guest, "iscsi-inq", "-i", HOST_INITIATOR, url(guest, volume))
    assert inquiry.returncode == 0 and "Vendor:EQLOGIC" in inquiry.stdout, inquiry.stdout + inquiry.stderr
    serial = host(guest, "iscsi-inq", "-i", HOST_INITIATOR, "-e", "1", "-c", "128", url(guest, volume))
    assert volume.split("-")[3] + volume.split("-")[4] in serial.stdout, serial.stdout  # unit_identity's serial
    listed = ok(guest, "ls /sys/kernel/config/target/iscsi")
    assert volume in listed, listed
    stranger = host(guest, "iscsi-inq", "-i", HOST_INITIATOR + "-not", url(guest, volume))
    assert stranger.returncode != 0 and "Authorization failure" in stranger.stderr, stranger.stderr


def test_data_written_through_lio_reads_back(guest: Guest, volume: str) -> None:
    io = host(guest, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 4M", "-c", "read -P 0x5a 0 4M",
              "-c", "write -P 0x33 100M 1M", "-c", "read -P 0x33 100M 1M", url(guest, volume))  # fmt: skip
    assert io.returncode == 0 and "failed" not in io.stdout.lower(), io.stdout + io.stderr
