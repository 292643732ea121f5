"""The Vagrant lab's provisioning, run in the LIO test guest (``tests/lio/guest.py``): what the lab does is
what this tested.

The guest's image is made by ``scripts/lab/install-project`` (as ``provision-storage`` installs a storage
node) and its init readies LIO with ``array-sim-lio-setup`` (``scripts/lab/lio-setup``). Here, in one guest:

* the storage node: ``scripts/lab/storage-group`` makes the lab's group, and serve runs as
  ``scripts/lab/array-sim.service`` says (its ExecStartPre and ExecStart lines, read from the unit);
* init1: ``scripts/lab/initiator-config`` with init1's name; open-iscsi logs in over two paths (the guest's
  10.0.2.15 and 127.0.0.1 stand for the lab's two SAN addresses of the storage node), dm-multipath makes one
  EQLOGIC device of them, and a file system goes on it;
* init2: ``initiator-config`` with init2's name; a snapshot of vol1 set online is mounted read-only with
  init1's files (the serverless backup), and vol1 itself is refused to it;
* a clean stop (SIGTERM, as systemd stops the unit) takes our exports out of LIO.

These follow the README's lab commands, with the guest's addresses for the lab's. Only apt, systemd and
Vagrant are the lab's own: the guest has no systemd, so iscsid, multipathd and udevd are started by hand.
The guest's addresses stay inside QEMU (user networking, ``restrict=on``); nothing here uses the host's network.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1] / "lio"))

from guest import Guest, skip_unless_buildable  # noqa: E402

skip_unless_buildable()

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LAB = "/opt/array-sim/scripts/lab"  # where install-project put the project (the lab runs /vagrant's copy)
GROUP = "/var/lib/array-sim"  # the unit's --dir
PASSWORD = "lab-grpadm1"
INIT1 = "iqn.2026-12.org.array-sim.lab:init1"
INIT2 = "iqn.2026-12.org.array-sim.lab:init2"
#: The storage node's two addresses an initiator reaches it at (the lab: 192.168.56.10 and 192.168.57.10).
SANS = ("10.0.2.15", "127.0.0.1")
CLI = f"/usr/local/bin/array-sim cli --dir {GROUP}"
#: No systemd in the guest: the daemons the lab's units start, started as root would by hand. udevd makes
#: /dev/disk/by-path and hands new disks to multipathd, as on a lab node.
DAEMONS = """modprobe -a sd_mod dm_multipath dm_round_robin
pgrep -x systemd-udevd >/dev/null || { /lib/systemd/systemd-udevd --daemon; udevadm trigger --action=add; }
udevadm settle -t 30
mkdir -p /run/lock/iscsi
pgrep -x iscsid >/dev/null || iscsid
pgrep -x multipathd >/dev/null || multipathd
for i in $(seq 100); do multipathd show daemon 2>/dev/null | grep -q running && break; sleep 0.2; done"""


def unit_lines(key: str) -> str:
    """The unit's ``key=`` line (ExecStartPre, ExecStart): what systemd runs on a lab storage node."""
    text = (REPO / "scripts" / "lab" / "array-sim.service").read_text()
    (line,) = [line for line in text.splitlines() if line.startswith(f"{key}=")]
    return line.split("=", 1)[1]


def ok(guest: Guest, command: str, timeout: float = 300) -> str:
    code, output = guest.run(command, timeout)
    assert code == 0, f"{command!r} exited {code} in the guest:\n{output}"
    return output


def cli(guest: Guest, *words: str) -> str:
    out = ok(guest, f"{CLI} {shlex.join(words)}")
    assert "% Error" not in out, out
    return out


def initiator(guest: Guest, iqn: str) -> None:
    """The initiator as ``provision-initiator`` leaves it (``initiator-config``, then iscsid restarted)."""
    ok(guest, f"{LAB}/initiator-config {iqn}")
    ok(guest, f"pkill -x iscsid; for i in $(seq 50); do pgrep -x iscsid >/dev/null || break; sleep 0.2; done\n{DAEMONS}")


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    with Guest(tmp_path_factory.mktemp("lab")) as guest:
        ok(guest, f"PATH=/usr/local/bin:$PATH {LAB}/storage-group {GROUP} {PASSWORD} {INIT1} {INIT2}")
        ok(guest, f"nohup sh -c '{unit_lines('ExecStartPre')} && exec {unit_lines('ExecStart')}'"
                  " >/var/tmp/serve.log 2>&1 </dev/null & echo $! >/var/tmp/serve.pid")  # fmt: skip
        ok(guest, "for i in $(seq 600); do grep -q 'Ctrl-C to stop' /var/tmp/serve.log && exit 0;"
                  " kill -0 $(cat /var/tmp/serve.pid) || break; sleep 0.5; done; cat /var/tmp/serve.log; exit 1")  # fmt: skip
        yield guest
        guest.run("kill -TERM $(cat /var/tmp/serve.pid); sleep 5; tail -20 /var/tmp/serve.log", 60)


def test_install_project_put_in_place_what_the_unit_runs(storage: Guest) -> None:
    ok(storage, f"cmp {LAB}/lio-setup /usr/local/sbin/array-sim-lio-setup")
    ok(storage, f"cmp {LAB}/org.kernel.TCMUService1.conf /etc/dbus-1/system.d/org.kernel.TCMUService1.conf")
    assert "serve" in ok(storage, "cd / && /usr/local/bin/array-sim --help")
    assert unit_lines("ExecStartPre") == "/usr/local/sbin/array-sim-lio-setup"


def test_serve_runs_as_the_unit_says_with_the_labs_group(storage: Guest) -> None:
    log = ok(storage, "cat /var/tmp/serve.log")
    assert re.search(r"serving group \S+ on 0\.0\.0\.0:3260 through LIO, 1 targets", log), log  # provision-storage's line
    records = cli(storage, "volume", "select", "vol1", "access", "show")
    # The Initiator column wraps a long name onto the next line, as the array's does.
    rows = re.findall(r"^\d+\s+(\S+)\s.*?(\w+)\n\s+(:\S+)$", records, re.M)
    assert sorted((name + tail, apply_to) for name, apply_to, tail in rows) == [(INIT1, "volume"), (INIT2, "snapshot")], records
    (target,) = [name for name in ok(storage, "ls /sys/kernel/config/target/iscsi").split() if name.endswith("-vol1")]
    assert ok(storage, f"ls /sys/kernel/config/target/iscsi/{target}/tpgt_1/np").split() == ["0.0.0.0:3260"]
    # The unit's restart runs the ExecStartPre again with LIO in use, and provisioning again runs storage-group.
    ok(storage, unit_lines("ExecStartPre"))
    ok(storage, f"PATH=/usr/local/bin:$PATH {LAB}/storage-group {GROUP} {PASSWORD} {INIT1} {INIT2}")
    assert cli(storage, "volume", "select", "vol1", "access", "show") == records


def test_initiator_config_writes_the_same_files_every_time(storage: Guest) -> None:
    files = "/etc/iscsi/initiatorname.iscsi /etc/iscsi/iscsid.conf /etc/multipath.conf"
    ok(storage, f"{LAB}/initiator-config {INIT1}")
    first = ok(storage, f"sha256sum {files}")
    ok(storage, f"{LAB}/initiator-config {INIT1}")
    assert ok(storage, f"sha256sum {files}") == first
    assert ok(storage, "cat /etc/iscsi/initiatorname.iscsi").strip() == f"InitiatorName={INIT1}"
    assert "node.session.timeo.replacement_timeout = 15" in ok(storage, "cat /etc/iscsi/iscsid.conf")
    config = ok(storage, "multipath -t")  # multipath's reading of the file, defaults merged
    stanza = re.search(r'device \{\s*vendor "EQLOGIC"\s*product "100E-00"(.*?)\}', config, re.S)
    assert stanza and 'path_grouping_policy "multibus"' in stanza.group(1), config[-3000:]


def test_init1_logs_in_over_both_paths_to_one_multipath_device(storage: Guest) -> None:
    initiator(storage, INIT1)
    found = ok(storage, "; ".join(f"iscsiadm -m discovery -t sendtargets -p {san}" for san in SANS))
    targets = {line.split()[1] for line in found.splitlines() if ",1 " in line}
    (vol1,) = targets  # init1's record is for the volume: no snapshot is online yet
    assert vol1.endswith("-vol1") and {f"{san}:3260,1 {vol1}" for san in SANS} <= set(found.splitlines()), found
    ok(storage, "iscsiadm -m node --login")
    paths = ok(storage, "for i in $(seq 150); do n=$(multipathd show paths raw format '%d %t %T' | grep -c 'active ready');"
                        " [ $n -ge 2 ] && break; sleep 0.2; done; multipath -ll")  # fmt: skip
    assert "EQLOGIC,100E-00" in paths and paths.count("active ready") == 2, paths
    assert ok(storage, "ls /dev/mapper").split().count("mpatha") == 1
    ok(storage, "mkfs.ext4 -q /dev/mapper/mpatha && mkdir -p /mnt/vol1 && mount /dev/mapper/mpatha /mnt/vol1"
                " && cp -a /etc/iscsi /mnt/vol1/ && head -c 2M /dev/urandom >/mnt/vol1/data"
                " && (cd /mnt/vol1 && sha256sum data >/var/tmp/data.sum) && sync", timeout=900)  # fmt: skip
    connections = cli(storage, "volume", "select", "vol1", "show", "connections")
    # LIO's node ACL reports one session, its latest (the kernel keeps one per ACL in its report): the
    # group shows init1 once, though both paths are logged in (multipath saw two above).
    assert connections.count(INIT1) == 1, connections
    sessions = ok(storage, f"cat /sys/kernel/config/target/iscsi/{vol1}/fabric_statistics/iscsi_instance/sessions")
    assert sessions.split() == ["2"], sessions


def test_init2_mounts_a_snapshot_for_a_serverless_backup(storage: Guest) -> None:
    snap = cli(storage, "volume", "select", "vol1", "snapshot", "create-now").split()[-1].rstrip(".")
    cli(storage, "volume", "select", "vol1", "snapshot", "select", snap, "online")
    ok(storage, "umount /mnt/vol1; multipath -F; iscsiadm -m node --logout; iscsiadm -m node -o delete")
    initiator(storage, INIT2)
    found = ok(storage, f"iscsiadm -m discovery -t sendtargets -p {SANS[0]}")
    (target,) = {line.split()[1] for line in found.splitlines() if ",1 " in line}  # init2's record: snapshots
    assert target.endswith(snap), found
    ok(storage, "iscsiadm -m node --login")
    disk = f"/dev/disk/by-path/ip-{SANS[0]}:3260-iscsi-{target}-lun-0"
    ok(storage, f"for i in $(seq 150); do [ -b {disk} ] && exit 0; sleep 0.2; done; exit 1")
    ok(storage, f"mkdir -p /mnt/backup && mount -o ro,noload {disk} /mnt/backup && cd /mnt/backup"
                " && sha256sum -c /var/tmp/data.sum && test -f iscsi/iscsid.conf && cd / && umount /mnt/backup")  # fmt: skip
    # vol1 itself is not init2's: LIO refuses the login (an ACL for init1 only).
    vol1 = re.search(r"iSCSI Name: (\S+)", cli(storage, "volume", "select", "vol1", "show")).group(1)
    refused = storage.run(f"iscsiadm -m node -T {vol1} -p {SANS[0]}:3260 -o new >/dev/null"
                          f" && iscsiadm -m node -T {vol1} -p {SANS[0]}:3260 --login", 120)  # fmt: skip
    assert refused[0] != 0 and "authorization failure" in refused[1].lower(), refused
    ok(storage, "iscsiadm -m node --logout; iscsiadm -m node -o delete")


def test_a_clean_stop_takes_our_exports_out_of_lio(storage: Guest) -> None:
    ok(storage, "kill -TERM $(cat /var/tmp/serve.pid); for i in $(seq 300); do kill -0 $(cat /var/tmp/serve.pid)"
                " 2>/dev/null || exit 0; sleep 0.2; done; exit 1")  # fmt: skip
    assert "-vol1" not in ok(storage, "ls /sys/kernel/config/target/iscsi")
    assert "asim-" not in ok(storage, "ls /sys/kernel/config/target/core/*/ 2>/dev/null; true")
