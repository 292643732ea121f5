"""The OpenStack Cinder PS Series driver (v1.4.6, Stein/Train), emulated against the CLI.

``PSDriver`` below re-implements, from research/ps-cli.md 1.3-1.6, the
driver's command sequences and its output parsing rules, exactly:

* a command is ``' '.join(args)`` after the ssh-injection check; each command
  is its own session (``stty columns 255`` first); any line starting with
  ``% Error`` or ``Error:`` is a failure;
* ``_get_prefixed_value``: the first line that ``startswith`` the prefix, no strip;
* ``iSCSI target name is <IQN>.`` with the last character dropped;
  ``Snapshot name is <name>`` verbatim;
* ``Key: Value`` lines with ``line.rstrip().partition(' ')[-1]``
  (``iSCSI Name:`` with ``partition(': ')``);
* ``_get_space_in_gb`` (MB/GB/TB, rounded up);
* ``_parse_connection``: blank-filtered lines two at a time.

Two transports carry the commands: a new sans-IO ``Session`` per command,
and a new ``array-sim cli`` process per command (the real console command).
Both hand the driver what an SSH channel without a PTY would: a blank line,
the output lines, the prompt (research/ps-cli.md 1.8 item 4).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from array_sim import Group
from array_sim.member_admin import FILE_LAYOUT
from array_sim.units import GiB
from firmware_model.cli.session import Session

GROUP_IP = "10.1.2.3"
CONNECTOR = {"ip": "10.0.0.2", "initiator": "iqn.1993-08.org.debian:01:2227dab76162", "host": "fakehost"}
OTHER_CONNECTOR = {"ip": "10.0.0.3", "initiator": "iqn.1993-08.org.debian:01:99aa88bb77cc", "host": "otherhost"}
CHAP_USER = "cinderchap"
CHAP_PASSWORD = "cinder-secret-12345"


def iqn_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r"^iqn\.2001-05\.com\.equallogic:0-8a0906-[0-9a-f]{9}-[0-9a-f]{16}-" + re.escape(name) + "$")


# --------------------------------------------------------------------------- the driver's helpers


class ProcessExecutionError(Exception):
    def __init__(self, stdout: str, cmd: str) -> None:
        super().__init__(f"Error executing PS command: {cmd}")
        self.stdout = stdout
        self.cmd = cmd


class VolumeNotFound(Exception):
    pass


def check_ssh_injection(args: tuple[str, ...]) -> None:
    """cinder.utils.check_ssh_injection, in short: no shell metacharacters, no unquoted blanks."""
    for arg in args:
        stripped = arg.strip()
        if len(stripped.split()) > 1 and not (
            stripped[0] == stripped[-1] and stripped[0] in "'\"" and stripped.count(stripped[0]) == 2
        ):
            raise AssertionError(f"ssh injection check: {arg!r} has unquoted blanks")
        for char in "`$|;&><":
            if char in stripped:
                raise AssertionError(f"ssh injection check: {arg!r} has {char!r}")


def get_prefixed_value(lines: list[str], prefix: str) -> str | None:
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :]
    return None


def get_space_in_gb(val: str) -> int:
    scale, part = 1.0, "GB"
    if val.endswith("MB"):
        scale, part = 1.0 / 1024, "MB"
    elif val.endswith("TB"):
        scale, part = 1.0 * 1024, "TB"
    return math.ceil(scale * float(val.partition(part)[0]))


def parse_connection(connector: dict[str, str], out: list[str]) -> str | None:
    lines = [line for line in out if line != ""]
    # Every record has 2 lines
    for i in range(0, len(lines), 2):
        try:
            int(lines[i][0])
            # sanity check
            if len(lines[i + 1].split()) == 1:
                check = lines[i].split()[1] + lines[i + 1].strip()
                if connector["initiator"] == check:
                    return lines[i].split()[0]
        except (IndexError, ValueError):
            pass
    return None


def key_value(line: str) -> str:
    return line.rstrip().partition(" ")[-1]


# --------------------------------------------------------------------------- the driver


class PSDriver:
    """The PS Series driver's operations (v1.4.6), sending CLI commands through ``transport``."""

    def __init__(
        self,
        transport: Callable[[str], list[str]],
        pool: str = "default",
        thin: bool = True,
        use_chap: bool = True,
    ) -> None:
        self.transport = transport
        self.pool = pool
        self.thin = thin
        self.use_chap = use_chap
        self.group_ip: str | None = None
        self.sent: list[str] = []
        self.log: list[str] = []

    def eql_execute(self, *args: str) -> list[str]:
        check_ssh_injection(args)
        command = " ".join(args)
        self.sent.append(command)
        out = self.transport(command)
        if any(line.startswith(("% Error", "Error:")) for line in out):
            raise ProcessExecutionError(stdout="\n".join(out), cmd=command)
        return out

    def take_sent(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent

    # ---------------------------------------------------------------- setup, stats

    def do_setup(self) -> None:
        for feature in ("confirmation", "paging", "events", "formatoutput"):
            self.eql_execute("cli-settings", feature, "off")
        for line in self.eql_execute("grpparams", "show"):
            if line.startswith("Group-Ipaddress:"):
                self.group_ip = key_value(line)

    def get_volume_stats(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "total_capacity_gb": None,
            "free_capacity_gb": None,
            "provisioned_capacity_gb": None,
            "total_volumes": None,
        }
        for line in self.eql_execute("pool", "select", self.pool, "show"):
            if line.startswith("TotalCapacity:"):
                data["total_capacity_gb"] = get_space_in_gb(key_value(line))
            if line.startswith("FreeSpace:"):
                data["free_capacity_gb"] = get_space_in_gb(key_value(line))
            if line.startswith("VolumeReportedSpace:"):
                data["provisioned_capacity_gb"] = get_space_in_gb(key_value(line))
            if line.startswith("TotalVolumes:"):
                data["total_volumes"] = int(key_value(line))
            if all(data.values()):
                break
        assert None not in data.values(), data
        if not self.thin:
            data["provisioned_capacity_gb"] = round(data["total_capacity_gb"] - data["free_capacity_gb"], 2)
        return data

    # ----------------------------------------------------------------- volumes

    def volume_model(self, out: list[str]) -> dict[str, str]:
        iqn = get_prefixed_value(out, "iSCSI target name is ")
        assert iqn is not None, out
        model = {"provider_location": f"{self.group_ip}:3260,1 {iqn[:-1]} 0"}
        if self.use_chap:
            model["provider_auth"] = f"CHAP {CHAP_USER} {CHAP_PASSWORD}"
        return model

    def add_multihost_access(self, volume: dict[str, Any]) -> None:
        self.eql_execute("volume", "select", volume["name"], "multihost-access", "enable")

    def create_volume(self, volume: dict[str, Any]) -> dict[str, str]:
        cmd = ["volume", "create", volume["name"], f"{volume['size']}G"]
        if self.pool != "default":
            cmd += ["pool", self.pool]
        if self.thin:
            cmd.append("thin-provision")
        out = self.eql_execute(*cmd)
        self.add_multihost_access(volume)
        return self.volume_model(out)

    def check_volume(self, volume: dict[str, Any]) -> None:
        try:
            self.eql_execute("volume", "select", volume["name"], "show")
        except ProcessExecutionError as err:
            if err.stdout.find("does not exist.\n") > -1:
                raise VolumeNotFound(volume["name"]) from err
            raise

    def delete_volume(self, volume: dict[str, Any]) -> list[str]:
        try:
            self.check_volume(volume)
            self.eql_execute("volume", "select", volume["name"], "offline")
            return self.eql_execute("volume", "delete", volume["name"])
        except VolumeNotFound:
            self.log.append(f"Volume {volume['name']} was not found while trying to delete it.")
            return []

    def ensure_export(self, volume: dict[str, Any]) -> None:
        self.check_volume(volume)

    def extend_volume(self, volume: dict[str, Any], new_size: int) -> None:
        self.eql_execute("volume", "select", volume["name"], "size", f"{new_size}G", "no-snap")

    def create_cloned_volume(self, volume: dict[str, Any], src_vref: dict[str, Any]) -> dict[str, str]:
        out = self.eql_execute("volume", "select", src_vref["name"], "clone", volume["name"])
        if out and volume["size"] > src_vref["size"]:
            self.extend_volume(volume, volume["size"])
        self.add_multihost_access(volume)
        return self.volume_model(out)

    # --------------------------------------------------------------- snapshots

    def create_snapshot(self, snapshot: dict[str, Any]) -> None:
        out = self.eql_execute("volume", "select", snapshot["volume_name"], "snapshot", "create-now")
        snap_name = get_prefixed_value(out, "Snapshot name is ")
        assert snap_name is not None, out
        self.eql_execute("volume", "select", snapshot["volume_name"], "snapshot", "rename", snap_name, snapshot["name"])

    def create_volume_from_snapshot(self, volume: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, str]:
        out = self.eql_execute(
            "volume", "select", snapshot["volume_name"], "snapshot", "select", snapshot["name"], "clone", volume["name"]
        )
        if out and volume["size"] > snapshot["volume_size"]:
            self.extend_volume(volume, volume["size"])
        self.add_multihost_access(volume)
        return self.volume_model(out)

    def delete_snapshot(self, snapshot: dict[str, Any]) -> None:
        try:
            self.eql_execute("volume", "select", snapshot["volume_name"], "snapshot", "delete", snapshot["name"])
        except ProcessExecutionError as err:
            if err.stdout.find("does not exist") > -1:
                self.log.append(f"Snapshot {snapshot['name']} could not be found.")
            else:
                self.log.append(f"Failed to delete snapshot {snapshot['name']}.")

    # ------------------------------------------------------------- connections

    def initialize_connection(self, volume: dict[str, Any], connector: dict[str, str]) -> dict[str, Any]:
        out = self.eql_execute("volume", "select", volume["name"], "access", "show")
        if parse_connection(connector, out) is None:
            cmd = ["volume", "select", volume["name"], "access", "create", "initiator", connector["initiator"]]
            if self.use_chap:
                cmd += ["authmethod", "chap", "username", CHAP_USER]
            self.eql_execute(*cmd)
        portal, iqn, lun = volume["provider_location"].split(" ")
        properties: dict[str, Any] = {
            "target_portal": portal.split(",")[0],
            "target_iqn": iqn,
            "target_lun": int(lun),
            "discard": True,
        }
        if self.use_chap:
            _, user, password = volume["provider_auth"].split(" ")
            properties.update(auth_method="CHAP", auth_username=user, auth_password=password)
        return {"driver_volume_type": "iscsi", "data": properties}

    def terminate_connection(self, volume: dict[str, Any], connector: dict[str, str]) -> None:
        out = self.eql_execute("volume", "select", volume["name"], "access", "show")
        connection_id = parse_connection(connector, out)
        if connection_id is not None:
            self.eql_execute("volume", "select", volume["name"], "access", "delete", connection_id)

    # ------------------------------------------------------------------ manage

    def get_volume_info(self, volume_name: str) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for line in self.eql_execute("volume", "select", volume_name, "show"):
            if line.startswith("Size:"):
                data["size"] = get_space_in_gb(key_value(line))
            if line.startswith("iSCSI Name:"):
                data["iSCSI_Name"] = line.rstrip().partition(": ")[-1]
        return data

    def manage_existing(self, volume: dict[str, Any], existing_ref: dict[str, str]) -> dict[str, str]:
        self.eql_execute("volume", "rename", existing_ref["source-name"], volume["name"])
        self.eql_execute("volume", "select", volume["name"], "description", '"OpenStack Managed"')
        self.add_multihost_access(volume)
        data = self.get_volume_info(volume["name"])
        return {"provider_location": f"{self.group_ip}:3260,1 {data['iSCSI_Name']} 0"}

    def manage_existing_get_size(self, volume: dict[str, Any], existing_ref: dict[str, str]) -> int:
        return int(self.get_volume_info(existing_ref["source-name"])["size"])

    def unmanage(self, volume: dict[str, Any]) -> None:
        self.eql_execute("volume", "select", volume["name"], "description", '"OpenStack UnManaged"')


def new_volume(size: int) -> dict[str, Any]:
    vid = str(uuid.uuid4())
    return {"id": vid, "name": f"volume-{vid}", "size": size}


def new_snapshot(volume: dict[str, Any]) -> dict[str, Any]:
    sid = str(uuid.uuid4())
    return {"id": sid, "name": f"snapshot-{sid}", "volume_name": volume["name"], "volume_size": volume["size"]}


# ------------------------------------------------------------------ transports and fixtures


class Backend:
    """A group plus a way to send one command per session, as the driver does."""

    def __init__(self, kind: str, directory: Path, console: Any) -> None:
        self.kind = kind
        self.directory = directory
        self.console = console
        self._group: Group | None = None
        self.raw: list[list[str]] = []  # every reply, without the channel framing

    # The subprocess transport closes the group before each process; the tests
    # reopen it in this process to set things up or look at the result.
    def open(self) -> Group:
        if self._group is None:
            self._group = Group.open(self.directory)
        return self._group

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
            self._group = None

    def transport(self, command: str) -> list[str]:
        if self.kind == "session":
            session = Session(self.open(), "grpadmin", interactive=True)
            assert session.prompt == "group-0> "
            assert session.execute("stty columns 255") == []
            lines = session.execute(command)
        else:
            self.close()
            result = self.console.cli(self.directory, command)  # the whole line as one word: the wire text
            assert result.stderr == ""
            lines = result.stdout.splitlines()
        self.raw.append(lines)
        return ["", *lines, "group-0> "]

    def cli(self, command: str, account: str = "inspector") -> list[str]:
        """A command from an administrator, not the driver: in this process, whatever the transport.

        The ``inspector`` account has confirmation and formatoutput off; it
        leaves the driver's account alone.
        """
        session = Session(self.open(), account, interactive=False)
        if account == "inspector":
            assert session.execute("cli-settings confirmation off") == []
            assert session.execute("cli-settings formatoutput off") == []
        lines = session.execute(command)
        assert not any(line.startswith("% Error") for line in lines), (command, lines)
        return lines

    def show(self, name: str) -> dict[str, str]:
        pairs = {}
        for line in self.cli(f"volume select {name} show"):
            key, sep, value = line.partition(": ")
            if sep:
                pairs[key] = value
            elif line.endswith(":"):
                pairs[line[:-1]] = ""
        return pairs

    def volume_names(self) -> list[str]:
        lines = self.cli("volume show")
        names: list[str] = []
        for line in lines[2:]:
            if line.startswith("  "):
                names[-1] += line.split()[0]
            else:
                names.append(line.split()[0])
        return names

    def snapshot_names(self, volume: str) -> list[str]:
        lines = self.cli(f"volume select {volume} snapshot show")
        names: list[str] = []
        for line in lines[2:]:
            if line.startswith("  "):
                names[-1] += line.split()[0]
            else:
                names.append(line.split()[0])
        return names

    def access_ids(self, volume: str) -> list[str]:
        return [line.split()[0] for line in self.cli(f"volume select {volume} access show")[2:] if line[0] != " "]


# The subprocess transport starts one ``array-sim cli`` per command (half a
# minute for the lifecycle): the whole suite runs it; the fast loop has the session.
@pytest.fixture(params=["session", pytest.param("subprocess", marks=pytest.mark.slow)])
def any_backend(request: pytest.FixtureRequest, tmp_path: Path, console: Any) -> Iterator[Backend]:
    directory = tmp_path / "g"
    if request.param == "session":
        Group.init(directory, member_size=10 * GiB, group_ip=GROUP_IP, raid_policy=FILE_LAYOUT).close()
    else:
        console.init(directory, "--member-size", "10GB", "--group-ip", GROUP_IP)
    be = Backend(request.param, directory, console)
    try:
        yield be
    finally:
        be.close()


@pytest.fixture
def backend(tmp_path: Path, console: Any) -> Iterator[Backend]:
    """The session transport on a group whose member is one sparse file (the driver sees no RAID)."""
    directory = tmp_path / "g"
    Group.init(directory, member_size=10 * GiB, group_ip=GROUP_IP, raid_policy=FILE_LAYOUT).close()
    be = Backend("session", directory, console)
    try:
        yield be
    finally:
        be.close()


def setup_driver(backend: Backend, **options: Any) -> PSDriver:
    driver = PSDriver(backend.transport, **options)
    driver.do_setup()
    driver.take_sent()
    return driver


# --------------------------------------------------------------------------- the parsing helpers


def test_space_in_gb_matches_the_driver_unit_tests() -> None:
    assert get_space_in_gb("123.0GB") == 123
    assert get_space_in_gb("123.5GB") == 124
    assert get_space_in_gb("123.0TB") == 125952
    assert get_space_in_gb("1024.0MB") == 1
    assert get_space_in_gb("1536.0MB") == 2
    assert get_space_in_gb("1.01GB") == 2
    for bad in ("1KB", "1PB"):
        with pytest.raises(ValueError):
            get_space_in_gb(bad)


def test_parse_connection_matches_the_driver_unit_test_sample() -> None:
    sample = [
        "ID  Initiator       Ipaddress     AuthMethod UserName   Apply-To",
        "--- --------------- ------------- ---------- ---------- --------",
        "1   iqn.1993-08.org.debian:01:222 *.*.*.*       none        both",
        "       7dab76162",
    ]
    assert parse_connection(CONNECTOR, sample) == "1"
    assert parse_connection(OTHER_CONNECTOR, sample) is None
    assert get_prefixed_value(["x", "Snapshot name is a b"], "Snapshot name is ") == "a b"
    assert get_prefixed_value([" Snapshot name is x"], "Snapshot name is ") is None


# --------------------------------------------------------------------------- the driver's operations


def test_do_setup_turns_settings_off_for_later_sessions_and_reads_the_group_ip(backend: Backend) -> None:
    driver = PSDriver(backend.transport)
    driver.do_setup()
    assert driver.take_sent() == [
        "cli-settings confirmation off",
        "cli-settings paging off",
        "cli-settings events off",
        "cli-settings formatoutput off",
        "grpparams show",
    ]
    assert backend.raw[:4] == [[], [], [], []]
    assert driver.group_ip == GROUP_IP
    # The settings persist for the account: a new session shows them off.
    settings = dict(line.split(": ") for line in backend.cli("cli-settings show", account="grpadmin"))
    assert {k: settings[k] for k in ("confirmation", "paging", "events", "formatoutput")} == dict.fromkeys(
        ("confirmation", "paging", "events", "formatoutput"), "off"
    )


def test_create_volume_thin_and_thick(backend: Backend) -> None:
    driver = setup_driver(backend)
    thin_vol = new_volume(1)
    model = driver.create_volume(thin_vol)
    assert driver.take_sent() == [
        f"volume create {thin_vol['name']} 1G thin-provision",
        f"volume select {thin_vol['name']} multihost-access enable",
    ]
    assert backend.raw[-2] == [
        "Volume creation succeeded.",
        f"iSCSI target name is {model['provider_location'].split()[1]}.",
    ]
    assert backend.raw[-1] == []
    portal, iqn, lun = model["provider_location"].split(" ")
    assert portal == f"{GROUP_IP}:3260,1" and lun == "0"
    assert iqn_pattern(thin_vol["name"]).match(iqn), iqn
    info = backend.show(thin_vol["name"])
    assert info["iSCSI Name"] == iqn
    assert info["Size"] == "1GB"
    assert info["Thin-Provision"] == "enabled"
    assert info["MultiHostAccess"] == "enabled"

    thick = setup_driver(backend, thin=False)
    thick_vol = new_volume(1)
    thick_model = thick.create_volume(thick_vol)
    assert thick.take_sent()[0] == f"volume create {thick_vol['name']} 1G"
    thick_iqn = thick_model["provider_location"].split(" ")[1]
    assert iqn_pattern(thick_vol["name"]).match(thick_iqn)
    assert thick_iqn != iqn
    info = backend.show(thick_vol["name"])
    assert info["Size"] == "1GB"
    assert info["VolReserve"] == "1.01GB"
    assert info["Thin-Provision"] == "disabled"
    assert info["iSCSI Name"] == thick_iqn


def test_create_volume_in_a_named_pool(backend: Backend) -> None:
    backend.cli("pool create cinderpool")
    group = backend.open()
    group.add_member("member-2", 4 * GiB, "cinderpool")  # no CLI command adds capacity to a pool
    driver = setup_driver(backend, pool="cinderpool")
    vol = new_volume(1)
    model = driver.create_volume(vol)
    assert driver.take_sent()[0] == f"volume create {vol['name']} 1G pool cinderpool thin-provision"
    assert iqn_pattern(vol["name"]).match(model["provider_location"].split(" ")[1])
    assert backend.show(vol["name"])["Pool"] == "cinderpool"
    stats = driver.get_volume_stats()
    assert driver.take_sent() == ["pool select cinderpool show"]
    assert stats["total_volumes"] == 1
    assert stats["total_capacity_gb"] == 4
    default_stats = setup_driver(backend).get_volume_stats()
    assert default_stats["total_volumes"] == 0


def test_initialize_and_terminate_connection(backend: Backend) -> None:
    backend.cli(f"chapuser create {CHAP_USER} password {CHAP_PASSWORD}")
    driver = setup_driver(backend)
    vol = new_volume(1)
    vol.update(driver.create_volume(vol))
    driver.take_sent()

    info = driver.initialize_connection(vol, CONNECTOR)
    assert driver.take_sent() == [
        f"volume select {vol['name']} access show",
        f"volume select {vol['name']} access create initiator {CONNECTOR['initiator']}"
        f" authmethod chap username {CHAP_USER}",
    ]
    assert info["data"]["target_portal"] == f"{GROUP_IP}:3260"
    assert iqn_pattern(vol["name"]).match(info["data"]["target_iqn"])
    assert info["data"]["target_lun"] == 0
    assert info["data"]["auth_username"] == CHAP_USER

    # The record is now found, with the ID the array gave it.
    out = driver.eql_execute("volume", "select", vol["name"], "access", "show")
    assert parse_connection(CONNECTOR, out) == "1"
    assert parse_connection(OTHER_CONNECTOR, out) is None
    driver.take_sent()

    # A second initialize (live migration) does not duplicate the record.
    driver.initialize_connection(vol, CONNECTOR)
    assert driver.take_sent() == [f"volume select {vol['name']} access show"]
    assert backend.access_ids(vol["name"]) == ["1"]

    # Another host gets its own record, found with its own ID.
    driver.initialize_connection(vol, OTHER_CONNECTOR)
    assert len(driver.take_sent()) == 2
    out = driver.eql_execute("volume", "select", vol["name"], "access", "show")
    assert parse_connection(CONNECTOR, out) == "1"
    assert parse_connection(OTHER_CONNECTOR, out) == "2"
    driver.take_sent()

    driver.terminate_connection(vol, CONNECTOR)
    assert driver.take_sent() == [
        f"volume select {vol['name']} access show",
        f"volume select {vol['name']} access delete 1",
    ]
    out = driver.eql_execute("volume", "select", vol["name"], "access", "show")
    assert parse_connection(CONNECTOR, out) is None
    assert parse_connection(OTHER_CONNECTOR, out) == "2"
    driver.take_sent()

    # Terminating again finds nothing and sends nothing else.
    driver.terminate_connection(vol, CONNECTOR)
    assert driver.take_sent() == [f"volume select {vol['name']} access show"]
    driver.terminate_connection(vol, OTHER_CONNECTOR)
    assert backend.access_ids(vol["name"]) == []


def test_initialize_connection_without_chap(backend: Backend) -> None:
    driver = setup_driver(backend, use_chap=False)
    vol = new_volume(1)
    vol.update(driver.create_volume(vol))
    driver.take_sent()
    driver.initialize_connection(vol, CONNECTOR)
    assert driver.take_sent()[1] == f"volume select {vol['name']} access create initiator {CONNECTOR['initiator']}"
    out = driver.eql_execute("volume", "select", vol["name"], "access", "show")
    assert parse_connection(CONNECTOR, out) == "1"
    driver.initialize_connection(vol, CONNECTOR)
    assert backend.access_ids(vol["name"]) == ["1"]


def test_snapshots_and_volumes_from_snapshots(backend: Backend) -> None:
    driver = setup_driver(backend)
    vol = new_volume(1)
    driver.create_volume(vol)
    driver.take_sent()

    snap = new_snapshot(vol)
    driver.create_snapshot(snap)
    sent = driver.take_sent()
    assert sent[0] == f"volume select {vol['name']} snapshot create-now"
    auto_name = backend.raw[-2][-1].removeprefix("Snapshot name is ")
    assert backend.raw[-2] == ["Snapshot creation succeeded.", f"Snapshot name is {auto_name}"]
    assert re.fullmatch(re.escape(vol["name"]) + r"-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.1", auto_name), auto_name
    assert sent[1] == f"volume select {vol['name']} snapshot rename {auto_name} {snap['name']}"
    assert backend.snapshot_names(vol["name"]) == [snap["name"]]

    # Same size: clone only.
    same = new_volume(1)
    model = driver.create_volume_from_snapshot(same, snap)
    assert driver.take_sent() == [
        f"volume select {vol['name']} snapshot select {snap['name']} clone {same['name']}",
        f"volume select {same['name']} multihost-access enable",
    ]
    assert iqn_pattern(same["name"]).match(model["provider_location"].split(" ")[1])
    assert backend.show(same["name"])["Size"] == "1GB"

    # Larger: clone, then size <N>G no-snap, which leaves no snapshot behind.
    bigger = new_volume(3)
    model = driver.create_volume_from_snapshot(bigger, snap)
    assert driver.take_sent() == [
        f"volume select {vol['name']} snapshot select {snap['name']} clone {bigger['name']}",
        f"volume select {bigger['name']} size 3G no-snap",
        f"volume select {bigger['name']} multihost-access enable",
    ]
    info = backend.show(bigger["name"])
    assert info["Size"] == "3GB"
    assert info["Snapshots"] == "0"
    assert info["MultiHostAccess"] == "enabled"
    assert info["Thin-Provision"] == "enabled"  # clones of thin volumes are thin
    assert iqn_pattern(bigger["name"]).match(model["provider_location"].split(" ")[1])
    assert backend.snapshot_names(bigger["name"]) == []

    driver.delete_snapshot(snap)
    assert driver.take_sent() == [f"volume select {vol['name']} snapshot delete {snap['name']}"]
    assert backend.raw[-1] == ["Snapshot deletion succeeded."]
    assert backend.snapshot_names(vol["name"]) == []
    # Deleting it again: the error says "does not exist" and the driver swallows it.
    driver.delete_snapshot(snap)
    assert driver.log == [f"Snapshot {snap['name']} could not be found."]
    assert backend.raw[-1][0].startswith("% Error - ") and "does not exist" in backend.raw[-1][0]


def test_create_cloned_volume(backend: Backend) -> None:
    driver = setup_driver(backend)
    src = new_volume(1)
    driver.create_volume(src)
    driver.take_sent()
    clone = new_volume(1)
    model = driver.create_cloned_volume(clone, src)
    assert driver.take_sent() == [
        f"volume select {src['name']} clone {clone['name']}",
        f"volume select {clone['name']} multihost-access enable",
    ]
    assert iqn_pattern(clone["name"]).match(model["provider_location"].split(" ")[1])
    bigger = new_volume(2)
    driver.create_cloned_volume(bigger, src)
    assert driver.take_sent()[1] == f"volume select {bigger['name']} size 2G no-snap"
    assert backend.show(bigger["name"])["Size"] == "2GB"
    assert backend.show(bigger["name"])["Snapshots"] == "0"
    assert backend.snapshot_names(src["name"]) == []
    assert sorted(backend.volume_names()) == sorted([src["name"], clone["name"], bigger["name"]])


def test_extend_volume_takes_no_snapshot(backend: Backend) -> None:
    driver = setup_driver(backend)
    vol = new_volume(1)
    driver.create_volume(vol)
    snap = new_snapshot(vol)
    driver.create_snapshot(snap)
    driver.take_sent()
    driver.extend_volume(vol, 2)
    assert driver.take_sent() == [f"volume select {vol['name']} size 2G no-snap"]
    assert backend.raw[-1] == []
    info = backend.show(vol["name"])
    assert info["Size"] == "2GB"
    assert info["Snapshots"] == "1"
    assert backend.snapshot_names(vol["name"]) == [snap["name"]]
    # Without no-snap the array takes a snapshot first (the bug 1720454 behaviour).
    backend.cli(f"volume select {vol['name']} size 3G")
    assert backend.show(vol["name"])["Snapshots"] == "2"
    thick = setup_driver(backend, thin=False)
    thick_vol = new_volume(1)
    thick.create_volume(thick_vol)
    thick.extend_volume(thick_vol, 2)
    info = backend.show(thick_vol["name"])
    assert (info["Size"], info["VolReserve"], info["Snapshots"]) == ("2GB", "2.01GB", "0")


def test_get_volume_stats_is_consistent(backend: Backend) -> None:
    thin = setup_driver(backend)
    thick = setup_driver(backend, thin=False)
    before = thin.get_volume_stats()
    assert thin.take_sent() == ["pool select default show"]
    lines = backend.raw[-1]
    for key in ("TotalCapacity", "FreeSpace", "VolumeReportedSpace", "TotalVolumes"):
        assert sum(line.startswith(f"{key}:") for line in lines) == 1, (key, lines)
    assert before == {
        "total_capacity_gb": 10,
        "free_capacity_gb": 10,
        "provisioned_capacity_gb": 0,
        "total_volumes": 0,
    }

    volumes = [new_volume(1), new_volume(2)]
    thin.create_volume(volumes[0])
    thick.create_volume(volumes[1])
    after = thin.get_volume_stats()
    assert after["total_volumes"] == 2
    assert after["total_capacity_gb"] == before["total_capacity_gb"]
    # Thick 2G (2.01GB + 100% snapshot reserve) and thin 1G (10% + 100% of that) are out of the pool.
    pool = {line.partition(":")[0]: line.rstrip().partition(" ")[-1] for line in backend.raw[-1] if ": " in line}
    assert pool["VolumeReportedSpace"] == "3.02GB"
    assert pool["TotalCapacity"] == "9.99GB"
    assert pool["FreeSpace"] == "5.77GB"
    assert after["free_capacity_gb"] == 6
    assert after["provisioned_capacity_gb"] == 4  # ceil(3.02)
    thick_stats = thick.get_volume_stats()
    assert thick_stats["provisioned_capacity_gb"] == 4  # total - free

    thin.delete_volume(volumes[0])
    thin.delete_volume(volumes[1])
    assert thin.get_volume_stats() == before


def test_manage_existing_and_unmanage(backend: Backend) -> None:
    backend.cli("volume create legacy-vol 3G")
    legacy_iqn = backend.show("legacy-vol")["iSCSI Name"]
    driver = setup_driver(backend)
    vol = new_volume(3)
    assert driver.manage_existing_get_size(vol, {"source-name": "legacy-vol"}) == 3
    driver.take_sent()
    model = driver.manage_existing(vol, {"source-name": "legacy-vol"})
    assert driver.take_sent() == [
        f"volume rename legacy-vol {vol['name']}",
        f'volume select {vol["name"]} description "OpenStack Managed"',
        f"volume select {vol['name']} multihost-access enable",
        f"volume select {vol['name']} show",
    ]
    # The target name is fixed when the volume is created.
    assert model["provider_location"] == f"{GROUP_IP}:3260,1 {legacy_iqn} 0"
    assert iqn_pattern("legacy-vol").match(legacy_iqn)
    info = backend.show(vol["name"])
    assert info["Description"] == "OpenStack Managed"
    assert info["MultiHostAccess"] == "enabled"
    assert "legacy-vol" not in backend.volume_names()
    driver.unmanage(vol)
    assert backend.show(vol["name"])["Description"] == "OpenStack UnManaged"


def test_delete_volume(backend: Backend) -> None:
    driver = setup_driver(backend)
    vol = new_volume(1)
    driver.create_volume(vol)
    driver.create_snapshot(new_snapshot(vol))
    driver.take_sent()
    out = driver.delete_volume(vol)
    assert driver.take_sent() == [
        f"volume select {vol['name']} show",
        f"volume select {vol['name']} offline",
        f"volume delete {vol['name']}",
    ]
    assert out == ["", "Volume deletion succeeded.", "group-0> "]
    assert backend.raw[-2] == []  # offline prints nothing
    assert vol["name"] not in backend.volume_names()
    # An already missing volume: the show fails with 'does not exist.' and the driver stops there.
    assert driver.delete_volume(vol) == []
    assert driver.take_sent() == [f"volume select {vol['name']} show"]
    assert driver.log == [f"Volume {vol['name']} was not found while trying to delete it."]


@pytest.mark.parametrize(
    "command",
    [
        "volume select {vol} show",
        "volume select {vol} offline",
        "volume select {vol} multihost-access enable",
        "volume select {vol} size 2G no-snap",
        "volume select {vol} access show",
        "volume select {vol} access create initiator iqn.1993-08.org.debian:01:2227dab76162",
        "volume select {vol} snapshot create-now",
        "volume select {vol} clone volume-00000000-0000-0000-0000-000000000001",
        'volume select {vol} description "OpenStack Managed"',
        "volume delete {vol}",
        "volume rename {vol} volume-00000000-0000-0000-0000-000000000002",
        "volume select {existing} snapshot delete snapshot-{uuid}",
        "volume select {existing} snapshot rename snapshot-{uuid} snapshot-x",
        "volume select {existing} snapshot select snapshot-{uuid} clone volume-00000000-0000-0000-0000-000000000003",
        "pool select cinderpool show",
    ],
)
def test_missing_objects_are_errors_that_say_does_not_exist(backend: Backend, command: str) -> None:
    driver = setup_driver(backend)
    existing = new_volume(1)
    driver.create_volume(existing)
    line = command.format(vol=new_volume(1)["name"], existing=existing["name"], uuid=uuid.uuid4())
    args = tuple(re.findall(r'"[^"]*"|\S+', line))
    with pytest.raises(ProcessExecutionError) as caught:
        driver.eql_execute(*args)
    out = caught.value.stdout.split("\n")
    errors = [text for text in out if text.startswith("% Error")]
    assert len(errors) == 1 and errors[0].startswith("% Error - ") and "does not exist" in errors[0], out
    assert "does not exist.\n" in caught.value.stdout


def test_full_driver_lifecycle_in_order(any_backend: Backend) -> None:
    """Every operation of sections 1.4/1.5, in the order a Cinder deployment would run them."""
    backend = any_backend
    backend.cli(f"chapuser create {CHAP_USER} password {CHAP_PASSWORD}")
    driver = PSDriver(backend.transport)
    driver.do_setup()
    assert driver.group_ip == GROUP_IP
    stats0 = driver.get_volume_stats()

    vol = new_volume(1)
    vol.update(driver.create_volume(vol))
    driver.ensure_export(vol)
    conn = driver.initialize_connection(vol, CONNECTOR)
    assert conn["data"]["target_iqn"] == vol["provider_location"].split(" ")[1]
    driver.initialize_connection(vol, CONNECTOR)
    assert backend.access_ids(vol["name"]) == ["1"]

    snap = new_snapshot(vol)
    driver.create_snapshot(snap)
    from_snap = new_volume(2)
    from_snap.update(driver.create_volume_from_snapshot(from_snap, snap))
    clone = new_volume(1)
    clone.update(driver.create_cloned_volume(clone, vol))
    driver.extend_volume(vol, 2)
    assert backend.show(vol["name"])["Size"] == "2GB"
    assert backend.snapshot_names(vol["name"]) == [snap["name"]]

    stats = driver.get_volume_stats()
    assert stats["total_volumes"] == 3
    assert stats["provisioned_capacity_gb"] == 6  # ceil(5.02GB): 137 + 137 + 69 pages of 15MB
    assert stats["free_capacity_gb"] <= stats0["free_capacity_gb"]

    backend.cli("volume create legacy 1G")
    managed = new_volume(1)
    managed.update(driver.manage_existing(managed, {"source-name": "legacy"}))
    assert driver.get_volume_stats()["total_volumes"] == 4

    driver.terminate_connection(vol, CONNECTOR)
    assert backend.access_ids(vol["name"]) == []
    driver.delete_snapshot(snap)
    assert backend.snapshot_names(vol["name"]) == []
    for volume in (from_snap, clone, managed, vol):
        assert driver.delete_volume(volume)[1] == "Volume deletion succeeded."
    assert backend.volume_names() == []
    assert driver.get_volume_stats() == stats0
    assert driver.log == []
    for command in driver.sent:
        assert not command.startswith("stty")
