"""``volume ...`` commands through the sans-IO session: output shapes (research/ps-cli.md 2.3) and effects."""

from __future__ import annotations

import re
from typing import Any

import pytest

from array_sim.member_admin import FILE_LAYOUT


@pytest.fixture
def raid_policy() -> str:
    """No RAID is tested here: the ``group`` fixture's member is one sparse file (quicker to make, flush and delete)."""
    return FILE_LAYOUT

VOLUME_INFO_KEYS = [
    # The Cinder doc sample (ps-cli.md 2.3), in its order.
    "Name", "Size", "VolReserve", "VolReserveInUse", "ReplReserveInUse", "iSCSI Alias", "iSCSI Name",
    "ActualMembers", "Snap-Warn", "Snap-Depletion", "Description", "Snap-Reserve", "Snap-Reserve-Avail",
    "Permission", "DesiredStatus", "Status", "Connections", "Snapshots", "Bind", "Type", "ReplicationReserveSpace",
]  # fmt: skip
LIST_HEADER = "Name            Size       Snapshots Status  Permission Connections TP"
IQN_RE = r"iqn\.2001-05\.com\.equallogic:0-8a0906-[0-9a-f]{9}-[0-9a-f]{16}-"


def list_rows(cli: Any) -> dict[str, list[str]]:
    out = cli.ok("volume show")
    assert out[0] == LIST_HEADER
    assert out[1] == "--------------- ---------- --------- ------- ---------- ----------- --"
    return {row[0]: row[1:] for row in cli.rows("volume show")}


def test_volume_create_prints_creation_and_target_name(cli: Any) -> None:
    out = cli.ok("volume create v1 1G")
    assert out[0] == "Volume creation succeeded."
    assert len(out) == 2
    assert re.fullmatch(r"iSCSI target name is " + IQN_RE + r"v1\.", out[1]), out[1]


def test_volume_list_columns_and_values(cli: Any) -> None:
    assert cli.ok("volume show") == [
        LIST_HEADER,
        "--------------- ---------- --------- ------- ---------- ----------- --",
    ]
    cli.ok("volume create thick1 1G")
    cli.ok("volume create thin1 500MB thin-provision")
    cli.ok("volume select thick1 snapshot create-now")
    cli.quiet("volume select thin1 offline")
    cli.quiet("volume select thin1 read-only")
    out = cli.ok("volume show")
    assert out[2:] == [
        "thick1          1GB        1         online  read-write 0           N",
        "thin1           500MB      0         offline read-only  0           Y",
    ]
    assert cli.ok("show volume") == out


def test_volume_list_wraps_long_names_with_two_space_indent(cli: Any) -> None:
    name = "a-lun-with-a-very-long-lun-name"
    cli.ok("volume create somelun 100MB")
    cli.ok(f"volume create {name} 100MB")
    out = cli.ok("volume show")
    assert out[2:] == [
        "a-lun-with-a-ve 100MB      0         online  read-write 0           N",
        "  ry-long-lun-n",
        "  ame",
        "somelun         100MB      0         online  read-write 0           N",
    ]
    # The XenRT / Proxmox way of re-joining: '^  (\S+)'.
    joined = out[2].split()[0] + "".join(re.match(r"^  (\S+)", line).group(1) for line in out[3:5])
    assert joined == name
    cinder_name = "volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7"
    cli.ok(f"volume create {cinder_name} 1G")
    assert cinder_name in list_rows(cli)


def test_volume_details_shape(cli: Any) -> None:
    cli.ok("volume create volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7 1G")
    out = cli.ok("volume select volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7 show")
    assert out[0] == "_______________________________ Volume Information ________________________________"
    keys = [line.partition(":")[0] for line in out[1:]]
    assert keys[: len(VOLUME_INFO_KEYS)] == VOLUME_INFO_KEYS
    for line in out[1:]:
        assert re.fullmatch(r"[A-Za-z][A-Za-z -]*[A-Za-z]:( \S.*)?", line), line  # one Key: Value per line
    values = cli.values("volume select volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7 show")
    assert values["Name"] == "volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7"
    assert values["Size"] == "1GB"
    assert values["VolReserve"] == "1.01GB"
    assert values["VolReserveInUse"] == "0MB"
    assert values["ReplReserveInUse"] == "0MB"
    assert values["iSCSI Alias"] == "volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7"
    assert re.fullmatch(IQN_RE + "volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7", values["iSCSI Name"])
    assert values["ActualMembers"] == "1"
    assert values["Snap-Warn"] == "10%"
    assert values["Snap-Depletion"] == "delete-oldest"
    assert values["Description"] == ""
    assert values["Snap-Reserve"] == "100%"
    assert values["Snap-Reserve-Avail"] == "100% (1.01GB)"
    assert values["Permission"] == "read-write"
    assert values["DesiredStatus"] == values["Status"] == "online"
    assert values["Connections"] == "0"
    assert values["Snapshots"] == "0"
    assert values["Bind"] == ""
    assert values["Type"] == "not-replicated"
    assert values["ReplicationReserveSpace"] == "0MB"
    # The Flocker driver's indexes (list with the blank line the channel starts with).
    framed = ["", *out]
    assert framed[2].startswith("Name: ") and framed[3].startswith("Size: ") and framed[8].startswith("iSCSI Name: ")


def test_volume_show_name_adds_access_records(cli: Any) -> None:
    cli.ok("volume create v1 1G")
    cli.ok("volume select v1 access create ipaddress 10.0.0.1")
    detail = cli.ok("volume select v1 show")
    out = cli.ok("volume show v1")
    assert out[: len(detail)] == detail
    assert out[len(detail) :] == [
        "",
        "_________________________________ Access Records __________________________________",
        "ID  Initiator                     Ipaddress       AuthMethod UserName   Apply-To",
        "--- ----------------------------- --------------- ---------- ---------- --------",
        "1                                 10.0.0.1        none                  both",
    ]
    assert any("Volume Information" in line for line in out)  # Eucalyptus' existence test


def test_show_connections_is_an_empty_table(cli: Any) -> None:
    cli.ok("volume create v1 1G")
    out = cli.ok("volume select v1 show connections")
    assert out[0].startswith("Initiator Address ")
    assert len(out) == 2 and set(out[1]) <= {"-", " "}


def test_offline_online_read_only_read_write(cli: Any) -> None:
    cli.ok("volume create v1 1G")
    cli.quiet("volume select v1 offline")
    values = cli.values("volume select v1 show")
    assert values["Status"] == values["DesiredStatus"] == "offline"
    cli.quiet("volume select v1 offline")  # idempotent
    cli.quiet("volume select v1 online")
    assert cli.values("volume select v1 show")["Status"] == "online"
    cli.quiet("volume select v1 read-only")
    assert cli.values("volume select v1 show")["Permission"] == "read-only"
    assert list_rows(cli)["v1"][3] == "read-only"
    cli.quiet("volume select v1 read-write")
    assert cli.values("volume select v1 show")["Permission"] == "read-write"


def test_snapshot_and_thin_settings(cli: Any) -> None:
    cli.ok("volume create v1 1G")
    for command in (
        "snap-reserve 50%",
        "snap-warn 20",
        "snap-depletion volume-offline",
        "thin-provision enable",
        "thin-min-reserve 30%",
        "thin-warn-threshold 70%",
        "thin-max-grow 90%",
        "multihost-access enable",
        "iscsi-alias my-alias",
        'description "a volume for tests"',
    ):
        cli.quiet(f"volume select v1 {command}")
    values = cli.values("volume select v1 show")
    assert values["Snap-Reserve"] == "50%"
    assert values["Snap-Warn"] == "20%"
    assert values["Snap-Depletion"] == "volume-offline"
    assert values["Thin-Provision"] == "enabled"
    # 30% of 69 pages = 21 pages of 15MB, and half of that as snapshot reserve (11 pages).
    assert values["Thin-Min-Reserve"] == "30% (315MB)"
    assert values["VolReserve"] == "315MB"
    assert values["Snap-Reserve-Avail"] == "100% (165MB)"
    assert values["Thin-Growth-Warn"] == "70%"
    assert values["Thin-Growth-Max"] == "90%"
    assert values["MultiHostAccess"] == "enabled"
    assert values["iSCSI Alias"] == "my-alias"
    assert values["Description"] == "a volume for tests"
    assert list_rows(cli)["v1"][-1] == "Y"
    cli.quiet("volume select v1 multihost-access disable")
    cli.quiet("volume select v1 thin-provision disable")
    values = cli.values("volume select v1 show")
    assert values["MultiHostAccess"] == "disabled"
    assert values["Thin-Provision"] == "disabled"
    assert values["VolReserve"] == "1.01GB"
    assert "Thin-Min-Reserve" not in values
    cli.quiet("volume select v1 snap-depletion borrow")
    cli.quiet("volume select v1 snap-depletion delete-oldest")
    assert cli.values("volume select v1 show")["Snap-Depletion"] == "delete-oldest"


def test_volume_create_options(cli: Any) -> None:
    cli.ok("pool create p2")
    cli.group.add_member("member-2", 2 * 1024**3, "p2")
    out = cli.ok(
        'volume create v1 2GB pool p2 thin-provision description "hello world" offline read-only '
        "iscsi-alias alias1 unrestricted multihost-access enable snap-depletion borrow snap-reserve 20% "
        "snap-warn 5% thin-min-reserve 50% thin-warn-threshold 80% thin-max-grow 95%"
    )
    assert out[0] == "Volume creation succeeded."
    values = cli.values("volume select v1 show")
    assert values["Pool"] == "p2"
    assert values["Size"] == "2GB"
    assert values["Thin-Provision"] == "enabled"
    assert values["Description"] == "hello world"
    assert values["Status"] == "offline"
    assert values["Permission"] == "read-only"
    assert values["iSCSI Alias"] == "alias1"
    assert values["MultiHostAccess"] == "enabled"
    assert values["Snap-Depletion"] == "borrow"
    assert values["Snap-Reserve"] == "20%"
    assert values["Snap-Warn"] == "5%"
    assert values["Thin-Min-Reserve"].startswith("50% ")
    assert values["Thin-Growth-Warn"] == "80%"
    assert values["Thin-Growth-Max"] == "95%"
    # 'unrestricted' adds an access record for any address.
    assert cli.rows("volume select v1 access show") == [["1", "", "*.*.*.*", "none", "", "both"]]


@pytest.mark.parametrize(
    ("size", "shown", "reserve"),
    [("1G", "1GB", "1.01GB"), ("1GB", "1GB", "1.01GB"), ("2G", "2GB", "2.01GB"), ("500MB", "500MB", "510MB"),
     ("500", "500MB", "510MB"), ("15MB", "15MB", "15MB"), ("1.5GB", "1.5GB", "1.51GB"), ("1TB", "1TB", "1TB")],
)  # fmt: skip
def test_volume_sizes(cli: Any, size: str, shown: str, reserve: str) -> None:
    cli.group.add_member("member-2", 2 * 1024**4, "default")
    cli.ok(f"volume create v {size}")
    values = cli.values("volume select v show")
    assert (values["Size"], values["VolReserve"]) == (shown, reserve)


def test_volume_clone(cli: Any) -> None:
    cli.ok("volume create src 1G thin-provision")
    cli.quiet("volume select src description source")
    out = cli.ok("volume select src clone copy1")
    assert out[0] == "Volume creation succeeded."
    assert re.fullmatch(r"iSCSI target name is " + IQN_RE + r"copy1\.", out[1])
    cli.ok('volume select src clone copy2 description "a copy"')
    src, copy1, copy2 = (cli.values(f"volume select {n} show") for n in ("src", "copy1", "copy2"))
    assert copy1["Size"] == copy2["Size"] == src["Size"]
    assert copy1["Thin-Provision"] == "enabled"  # clones of thin volumes are thin
    assert copy1["Description"] == ""
    assert copy2["Description"] == "a copy"
    assert copy1["iSCSI Name"] != src["iSCSI Name"]
    assert copy1["Snapshots"] == "0" and src["Snapshots"] == "0"  # a clone uses no snapshot
    assert copy1["Status"] == "online"
    assert sorted(list_rows(cli)) == ["copy1", "copy2", "src"]


def test_clone_takes_the_options_real_clients_send(cli: Any) -> None:
    """Cinder, OpenNebula and eqlscript clone with ``unrestricted``, ``online``, ``description``; the
    rest are the volume settings ``volume create`` takes."""
    cli.ok("volume create src 1G")
    cli.ok('volume select src clone c1 unrestricted online description "from src"')
    c1 = cli.values("volume select c1 show")
    assert (c1["Status"], c1["Description"], c1["Thin-Provision"]) == ("online", "from src", "disabled")
    assert [row[2] for row in cli.rows("volume select c1 access show")] == ["*.*.*.*"]
    cli.ok("volume select src clone c2 offline read-only thin-provision snap-reserve 50%")
    c2 = cli.values("volume select c2 show")
    assert (c2["Status"], c2["Permission"], c2["Thin-Provision"]) == ("offline", "read-only", "enabled")
    assert c2["Snap-Reserve"] == "50%"
    cli.ok("volume select src snapshot create-now")
    snap = cli.rows("volume select src snapshot show")[0][0]
    cli.ok(f"volume select src snapshot select {snap} clone c3 unrestricted")
    assert cli.rows("volume select c3 access show")[0][2] == "*.*.*.*"
    before = list_rows(cli)
    assert "sideways" in cli.error("volume select src clone c4 sideways")
    assert "Not enough free space" in cli.error("volume select src clone c5 snap-reserve 9000%")
    assert list_rows(cli) == before  # refused whole


def test_volume_rename_keeps_the_target_name(cli: Any) -> None:
    cli.ok("volume create old 1G")
    iqn = cli.values("volume select old show")["iSCSI Name"]
    cli.quiet("volume rename old new")
    values = cli.values("volume select new show")
    assert values["Name"] == "new"
    assert values["iSCSI Name"] == iqn
    assert "old" not in list_rows(cli)
    assert "does not exist" in cli.error("volume select old show")


def test_volume_size_grow_and_shrink(cli: Any) -> None:
    cli.ok("volume create v 1G")
    (said,) = cli.ok("volume select v size 2G")
    values = cli.values("volume select v show")
    assert (values["Size"], values["Snapshots"]) == ("2GB", "1")  # a snapshot first, unless no-snap
    snaps = cli.rows("volume select v snapshot show")
    assert len(snaps) == 1 and snaps[0][0].startswith("v-")
    assert said == f"Snapshot {snaps[0][0]} was created before the size change."
    cli.quiet("volume select v size 3G no-snap")
    values = cli.values("volume select v show")
    assert (values["Size"], values["Snapshots"]) == ("3GB", "1")
    cli.quiet("volume select v offline")
    cli.quiet("volume select v size 1G no-snap")
    assert cli.values("volume select v show")["Size"] == "1GB"
    cli.quiet("volume select v size 1G no-snap")  # same size: nothing to do


def test_volume_delete(cli: Any) -> None:
    cli.ok("volume create v 1G")
    cli.ok("volume create keep 1G")
    cli.ok("volume select v snapshot create-now")
    cli.ok("volume select v access create ipaddress 10.0.0.1")
    before = cli.values("pool select default show")
    cli.quiet("volume select v offline")
    assert cli.run("volume delete v") == ["Volume deletion succeeded."]
    assert list(list_rows(cli)) == ["keep"]
    after = cli.values("pool select default show")
    assert after["TotalVolumes"] == "1" and before["TotalVolumes"] == "2"
    assert after["TotalSnapshots"] == "0"
    # The name is free again, and the new volume starts clean.
    cli.ok("volume create v 1G")
    values = cli.values("volume select v show")
    assert values["Snapshots"] == "0"
    assert cli.rows("volume select v access show") == []


def test_target_names_use_only_iscsi_name_characters(cli: Any) -> None:
    """RFC 3720 3.2.6.2 / RFC 3722: an iSCSI name holds only a-z, 0-9, '-', '.' and ':'.

    A volume name the group accepts must give a valid target name (or be refused).
    """
    for name in ("MyVol.A:b", "my_vol", "Data_01"):
        out = cli.run(f"volume create {name} 100MB")
        if out[0].startswith("% Error - "):
            continue
        iqn = out[1].removeprefix("iSCSI target name is ")[:-1]
        assert re.fullmatch(r"[a-z0-9.:-]+", iqn), iqn


def test_volumes_with_long_names_can_have_snapshots(cli: Any) -> None:
    """Any name the group accepts for a volume (up to 63 characters) must allow snapshots and growth."""
    cli.error(f"volume create {'v' * 64} 100MB")
    name = "v" * 63
    cli.ok(f"volume create {name} 100MB")
    out = cli.ok(f"volume select {name} snapshot create-now")
    snap = out[1].removeprefix("Snapshot name is ")
    assert snap in [row[0] for row in cli.rows(f"volume select {name} snapshot show")]
    cli.ok(f"volume select {name} size 200MB")
    assert cli.values(f"volume select {name} show")["Snapshots"] == "2"
