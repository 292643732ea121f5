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

from guest import Guest, attached_disk_script, fileio_peer_script, skip_unless_buildable  # noqa: E402

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


def test_targetcli_ls_lists_our_user_backstore_and_the_target(guest: Guest, volume: str) -> None:
    """targetcli builds /backstores/user:arraysim only from org.kernel.TCMUService1 on the system bus."""
    listing = ok(guest, "targetcli ls / 3")
    backstore = re.search(r"user:arraysim .*\n((?:.*\n)*?).*o- (?:iscsi|loopback)", listing)
    assert backstore and "asim-" in backstore.group(1), listing  # our storage object under it
    assert volume in listing, listing
    refused = guest.run("targetcli /backstores/user:arraysim create name=x size=1M cfgstring=y", 60)[1]
    assert "Group Manager CLI" in refused, refused


def test_data_written_through_lio_reads_back(guest: Guest, volume: str) -> None:
    io = host(guest, "qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 4M", "-c", "read -P 0x5a 0 4M",
              "-c", "write -P 0x33 100M 1M", "-c", "read -P 0x33 100M 1M", url(guest, volume))  # fmt: skip
    assert io.returncode == 0 and "failed" not in io.stdout.lower(), io.stdout + io.stderr


FILEIO_TARGET = "iqn.2026-12.org.array-sim:lio-fileio-peer"
MAKE_FILEIO = fileio_peer_script(FILEIO_TARGET, "/var/tmp/peer.img", 256 << 20)


#: The suites run here: the whole --dataloss suite takes over half an hour through a Python handler under
#: software emulation (measured: ours 547/615 passed, fileio 540/615; see the README), too long for CI.
SUITES = ",".join([
    "SCSI.TestUnitReady", "SCSI.Inquiry", "SCSI.ReadCapacity16", "SCSI.Read10", "SCSI.Write10", "SCSI.Unmap",
    "SCSI.WriteSame16", "SCSI.CompareAndWrite", "SCSI.ModeSense6", "SCSI.Reserve6", "iSCSI.iSCSIResiduals",
])  # fmt: skip
#: Fail through us and pass on fileio because TCMU cannot carry it: a residual overflow (the kernel sizes a
#: command's buffers by the initiator's Expected Data Transfer Length and learns only a shorter read back).
TCMU_LIMITS = {"iSCSIResiduals.Read10Invalid", "iSCSIResiduals.Read10Residuals", "iSCSIResiduals.Read12Residuals",
               "iSCSIResiduals.Read16Residuals", "iSCSIResiduals.WriteVerify12Residuals"}  # fmt: skip
#: The kernel answers RESERVE(6) itself for both LUNs (lio.md 3.4); whether the second initiator's RESERVE
#: right after the first's logout or nexus loss conflicts depends on how fast LIO ends the old session
#: (seen failing on the fileio LUN too), so these two are not compared.
KERNEL_TIMING = {"Reserve6.ITNexusLoss", "Reserve6.Logout"}


def conformance(guest: Guest, iqn: str, workdir: Path) -> tuple[dict, dict]:
    """``iscsi-test-cu --dataloss`` of ``SUITES`` from the host (two sessions for the multipath tests)."""
    sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import conformance as suite  # noqa: PLC0415 - the benchmark's parser, shared with tests/peers

    urls = [url(guest, iqn)] * 2
    done = subprocess.run(["iscsi-test-cu", "--dataloss", "-t", SUITES, *urls], capture_output=True, text=True, errors="replace",
                          cwd=workdir, timeout=3600)  # fmt: skip
    log = Path("/tmp/lio-iscsi-test-cu") / f"{iqn.rsplit(':', 1)[1]}.log"  # kept for a look after the run
    log.parent.mkdir(exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    summary, tests = suite.parse_log(done.stdout, suite.suite_listing())
    assert "tests" in summary, f"no CUnit summary ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    return summary, tests


def test_iscsi_test_cu_fails_nothing_through_us_that_passes_on_lio_fileio(guest: Guest, tmp_path: Path) -> None:
    """Goal of the LIO front end: no test fails through us that passes on a kernel fileio LUN, but for
    what TCMU cannot carry (``TCMU_LIMITS``)."""
    out = cli(guest, "volume", "create", "conf", "256MB")
    ours = re.search(r"iSCSI target name is (\S+)\.", out).group(1)  # type: ignore[union-attr]
    cli(guest, "volume", "select", "conf", "access", "create", "ipaddress", "*.*.*.*")
    ok(guest, MAKE_FILEIO)
    _, peer = conformance(guest, FILEIO_TARGET, tmp_path)
    _, tested = conformance(guest, ours, tmp_path)
    def by_test(results: dict) -> dict[str, bool]:  # "SUITE.TEST": passed (families list the same tests)
        return {".".join(name.split(".")[-2:]): result.passed for name, result in results.items()}

    ours_passed, peer_passed = by_test(tested), by_test(peer)
    worse = sorted(name for name, passed in ours_passed.items() if not passed and peer_passed.get(name)
                   and name not in KERNEL_TIMING)  # fmt: skip
    print(f"iscsi-test-cu through LIO: ours {sum(ours_passed.values())}/{len(ours_passed)}, fileio"
          f" {sum(peer_passed.values())}/{len(peer_passed)}; worse on ours: {', '.join(worse) or 'none'}")  # fmt: skip
    assert set(worse) <= TCMU_LIMITS, sorted(set(worse) - TCMU_LIMITS)


GUEST_INITIATOR = "iqn.2026-12.org.array-sim:lio-guest-initiator"
# No udev in the guest: the disk driver is loaded by hand, or the LUN gets no /dev/sdX.
START_ISCSID = f"""modprobe sd_mod
mkdir -p /etc/iscsi /run/lock/iscsi
echo InitiatorName={GUEST_INITIATOR} >/etc/iscsi/initiatorname.iscsi
pgrep -x iscsid >/dev/null || iscsid
for i in $(seq 100); do [ -S /run/iscsid.sock ] || [ -e /etc/iscsi/iscsid.conf ] && break; sleep 0.2; done"""


def login(guest: Guest, iqn: str) -> str:
    """open-iscsi in the guest logs in to ``iqn`` at 10.0.2.15; the disk it attached (``/dev/sdX``)."""
    ok(guest, START_ISCSID)
    ok(guest, "iscsiadm -m discovery -t sendtargets -p 10.0.2.15:3260")
    ok(guest, f"iscsiadm -m node -T {iqn} -p 10.0.2.15:3260 --login")
    disk = ok(guest, attached_disk_script(iqn)).strip()
    return f"/dev/{disk}"


def logout(guest: Guest, iqn: str) -> None:
    ok(guest, f"iscsiadm -m node -T {iqn} -p 10.0.2.15:3260 --logout")


def test_open_iscsi_makes_a_filesystem_and_a_snapshot_shows_the_old_files(guest: Guest) -> None:
    out = cli(guest, "volume", "create", "fs1", "300MB")
    iqn = re.search(r"iSCSI target name is (\S+)\.", out).group(1)  # type: ignore[union-attr]
    cli(guest, "volume", "select", "fs1", "access", "create", "initiator", GUEST_INITIATOR)
    disk = login(guest, iqn)
    assert ok(guest, f"cat /sys/block/{disk[5:]}/device/vendor").strip() == "EQLOGIC"
    connections = cli(guest, "volume", "select", "fs1", "show", "connections")  # the kernel's session, via rtslib
    assert GUEST_INITIATOR in connections and "10.0.2.15" in connections, connections
    ok(guest, f"mkfs.ext4 -q {disk} && mkdir -p /mnt/fs1 && mount {disk} /mnt/fs1"
              " && head -c 20M /dev/urandom >/mnt/fs1/before && (cd /mnt/fs1 && sha256sum before >/var/tmp/before.sum)"
              " && sync && umount /mnt/fs1")  # fmt: skip
    snap = cli(guest, "volume", "select", "fs1", "snapshot", "create-now").split()[-1].rstrip(".")
    ok(guest, f"mount {disk} /mnt/fs1 && rm /mnt/fs1/before && echo after >/mnt/fs1/after && sync && umount /mnt/fs1")
    cli(guest, "volume", "select", "fs1", "snapshot", "select", snap, "online")
    snap_iqn = next(line.split(": ", 1)[1] for line in
                    cli(guest, "volume", "select", "fs1", "snapshot", "select", snap, "show").splitlines()
                    if line.startswith("iSCSI Name:"))  # fmt: skip
    snap_disk = login(guest, snap_iqn)
    ok(guest, f"mkdir -p /mnt/snap && mount -o ro,noload {snap_disk} /mnt/snap && cd /mnt/snap"
              " && sha256sum -c /var/tmp/before.sum | grep -q OK && test ! -e /mnt/snap/after")  # fmt: skip
    ok(guest, "umount /mnt/snap")
    logout(guest, snap_iqn)
    logout(guest, iqn)


def test_a_new_group_ip_becomes_every_targets_portal(guest: Guest, volume: str) -> None:
    # Discovery lists a target only to the initiators its records admit: the guest's has none on vol1 yet.
    unlisted = ok(guest, f"{START_ISCSID}; iscsiadm -m discovery -t sendtargets -p 10.0.2.15:3260;"
                         " rc=$?; [ $rc -eq 0 ] || [ $rc -eq 21 ]")  # 21: no target listed at all  # fmt: skip
    assert volume not in unlisted, unlisted
    made = cli(guest, "volume", "select", "vol1", "access", "create", "initiator", GUEST_INITIATOR)
    record = re.search(r"created with ID (\d+)", made).group(1)  # type: ignore[union-attr]
    cli(guest, "grpparams", "group-ipaddress", "127.0.0.1")
    try:
        portals = ok(guest, f"ls /sys/kernel/config/target/iscsi/{volume}/tpgt_1/np")
        assert portals.split() == ["127.0.0.1:3260"], portals
        found = ok(guest, f"{START_ISCSID}; iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260")
        assert f"127.0.0.1:3260,1 {volume}" in found, found
        assert all(line.startswith("127.0.0.1:") for line in found.splitlines() if "com.equallogic" in line), found
        gone = host(guest, "iscsi-inq", "-i", HOST_INITIATOR, url(guest, volume))  # QEMU forwards to 10.0.2.15
        assert gone.returncode != 0, gone.stdout
    finally:
        cli(guest, "grpparams", "group-ipaddress", "10.0.2.15")
        ok(guest, f"{ARRAY_SIM} cli --dir {GROUP} --yes volume select vol1 access delete {record}")
    back = host(guest, "iscsi-inq", "-i", HOST_INITIATOR, url(guest, volume))
    assert back.returncode == 0 and "EQLOGIC" in back.stdout, back.stdout + back.stderr


def test_kill_9_of_serve_during_io_then_a_restart_completes_the_io(guest: Guest, volume: str) -> None:
    commands = [f"write -P 0x{n + 16:02x} {n * 2}M 2M" for n in range(40)]
    commands += [f"read -P 0x{n + 16:02x} {n * 2}M 2M" for n in range(40)]
    io = subprocess.Popen(["qemu-io", "-f", "raw", *(a for c in commands for a in ("-c", c)), url(guest, volume)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    ok(guest, "sleep 3; pkill -9 -f 'firmware_model.main serve'; sleep 2")
    assert io.poll() is None, io.communicate()[0]  # still waiting for its commands
    ok(guest, SERVE)
    wait_serving(guest, times=2)
    out, _ = io.communicate(timeout=600)
    assert io.returncode == 0 and "failed" not in out.lower(), out
    assert "TCMU device" in ok(guest, "grep 'TCMU device' /var/tmp/serve.log | tail -1")


def test_chap_is_enforced_by_lio_and_a_resize_reaches_the_initiator(guest: Guest) -> None:
    cli(guest, "chapuser", "create", "lioadmin", "password", "lio-secret-1234")
    out = cli(guest, "volume", "create", "chap1", "100MB")
    iqn = re.search(r"iSCSI target name is (\S+)\.", out).group(1)  # type: ignore[union-attr]
    cli(guest, "volume", "select", "chap1", "access", "create", "initiator", HOST_INITIATOR, "authmethod", "chap",
        "username", "lioadmin")  # fmt: skip
    right = f"iscsi://lioadmin%lio-secret-1234@127.0.0.1:{guest.host_port}/{iqn}/0"
    wrong = f"iscsi://lioadmin%not-the-secret1@127.0.0.1:{guest.host_port}/{iqn}/0"
    size = host(guest, "iscsi-readcapacity16", "-i", HOST_INITIATOR, right)  # 100MB: 7 pages of 15 MiB
    assert size.returncode == 0 and f"Total size:{105 << 20}" in size.stdout, size.stdout + size.stderr
    refused = host(guest, "iscsi-inq", "-i", HOST_INITIATOR, wrong)
    assert refused.returncode != 0 and "Authentication failure" in refused.stderr, refused.stderr
    cli(guest, "volume", "select", "chap1", "size", "150MB")  # the kernel's dev_size follows (netlink RECONFIG)
    size = host(guest, "iscsi-readcapacity16", "-i", HOST_INITIATOR, right)
    assert size.returncode == 0 and f"Total size:{150 << 20}" in size.stdout, size.stdout + size.stderr
