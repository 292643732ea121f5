"""``member`` and ``simulate`` through the CLI: arrays added and configured, disks failed, replaced and rebuilt."""

from __future__ import annotations

from typing import Any

import pytest

from array_sim import DeviceOffline
from array_sim.units import MiB

pytestmark = pytest.mark.usefixtures("group")


def _rebuild(cli: Any) -> None:
    for _ in range(10_000):
        if not cli.group.background_step(8 * MiB):
            return
    pytest.fail("reconstruction never ended")


def _disk_rows(cli: Any, member: str = "member-1") -> dict[str, list[str]]:
    return {row[0]: row for row in cli.rows(f"member select {member} show disks")}


def test_an_added_array_joins_the_pool_when_its_raid_policy_is_set(cli: Any) -> None:
    before = cli.values("pool select default show")["TotalCapacity"]
    cli.quiet("simulate member add m2 disks 8 disk-size 150MB")
    rows = {row[0]: row for row in cli.rows("member show")}
    assert rows["m2"][1:] == ["on-line", "unconfigured", "8", "0MB", "0MB", "default"]
    assert cli.values("pool select default show")["TotalCapacity"] == before
    assert "no RAID policy" in cli.error("member select m2 show disks")
    cli.quiet("member select m2 raid-policy raid10")
    values = cli.values("member select m2 show")
    assert (values["RaidPolicy"], values["RaidStatus"], values["Spares"], values["TotalSpace"]) == (
        "raid10", "verifying", "2", "450MB",  # 3 mirrors of 150MB disks, 2 hot spares
    )  # fmt: skip
    _rebuild(cli)  # the background verification of the new set
    assert cli.values("member select m2 show")["RaidStatus"] == "ok"
    assert cli.values("pool select default show")["TotalCapacity"] != before
    disks = _disk_rows(cli, "m2")
    assert [disks[str(n)][1] for n in range(8)] == ["on-line"] * 6 + ["spare"] * 2
    assert "already has RAID policy" in cli.error("member select m2 raid-policy raid6")
    events = cli.ok("show events")
    assert any("m2" in line and "RAID policy set to raid10" in line for line in events)
    assert any("m2" in line and "Verification" in line and "0 parity mismatch" in line for line in events)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("simulate member add m2 disks 2", "disks"),
        ("simulate member add m2 disks x", "whole number"),
        ("simulate member add m2 disks ٣", "whole number"),
        ("simulate member add member-1", "already exists"),
        ("simulate member add m2 pool nowhere", "does not exist"),
        ("simulate member add m2 disk-size 14MB", "disk size"),
        ("simulate member add bad/name", "Invalid member name"),
        ("simulate member select member-1 disk 12 fail", "Invalid disk 12"),
        ("simulate member select member-1 disk 0 explode", "fault"),
        ("simulate member select member-1 disk 0 bad-sectors 0", "length"),
        ("simulate member select member-9 disk 0 fail", "does not exist"),
        ("simulate volume select v", "object"),
        ("member select member-1 raid-policy raid7", "RAID policy"),
    ],
)
def test_bad_simulate_and_member_lines_change_nothing(cli: Any, helpers: Any, line: str, says: str) -> None:
    before = helpers.group_state(cli.group)
    assert says in cli.error(line)
    assert helpers.group_state(cli.group) == before


def test_a_raid_policy_needs_enough_disks(cli: Any) -> None:
    cli.quiet("simulate member add m2 disks 4 disk-size 100MB")
    assert "disk" in cli.error("member select m2 raid-policy raid6")
    assert cli.rows("member show")[1][2] == "unconfigured"
    cli.quiet("member select m2 raid-policy raid6-nospares")
    assert cli.values("member select m2 show")["Spares"] == "0"


def test_failed_disk_is_rebuilt_on_the_spare_while_data_stays_readable(cli: Any) -> None:
    cli.ok("volume create v1 100MB")
    device = cli.group.device("v1")
    data = bytes(range(256)) * (4 * MiB // 256)
    device.write(0, data)
    cli.quiet("simulate member select member-1 disk 3 fail")
    values = cli.values("member select member-1 show")
    assert values["RaidStatus"] == "reconstructing" and values["Spares"] == "0"
    disks = _disk_rows(cli)
    assert disks["3"][1] == "failed"
    assert disks["11"][1].startswith("on-line (reconstructing")
    assert device.read(0, len(data) // 512) == data  # reads of disk 3 rebuilt from parity
    device.write(8, b"\xee" * 4096)  # writes go on
    expected = data[:4096] + b"\xee" * 4096 + data[8192:]
    _rebuild(cli)
    values = cli.values("member select member-1 show")
    assert values["RaidStatus"] == "ok"
    assert device.read(0, len(data) // 512) == expected
    events = [line.lower() for line in cli.ok("show events") if ":member-1:" in line]
    assert [word for word in ("failed", "spare", "started", "finished") if any(word in line for line in events)] == [
        "failed", "spare", "started", "finished",
    ]  # fmt: skip
    cli.quiet("simulate member select member-1 disk 3 replace")
    assert _disk_rows(cli)["3"][1] == "spare"
    assert cli.values("member select member-1 show")["Spares"] == "1"
    cli.quiet("simulate member select member-1 disk 0 fail")  # the rebuilt set still survives a failure
    assert device.read(0, len(data) // 512) == expected


def test_beyond_tolerance_the_member_and_its_volumes_go_offline(cli: Any) -> None:
    cli.ok("volume create v1 100MB")
    cli.ok("volume create v2 30MB")
    cli.group.device("v1").write(0, b"\x01" * 4096)
    for disk in (0, 1):  # RAID 6: the spare takes disk 0's place, disk 1 leaves two missing
        cli.quiet(f"simulate member select member-1 disk {disk} fail")
    assert cli.group.device("v1").read(0, 8) == b"\x01" * 4096
    cli.quiet("simulate member select member-1 disk 2 fail")
    assert cli.values("member select member-1 show")["Status"] == "off-line"
    assert cli.rows("member show")[0][1] == "off-line"
    assert cli.values("volume select v1 show")["Status"].startswith("offline")
    assert cli.values("volume select v2 show")["Status"] == "online"  # no data on the member yet
    with pytest.raises(DeviceOffline):
        cli.group.device("v1").read(0, 8)
    assert "member that is offline" in cli.error("volume select v1 online")
    assert any("member-1 is offline" in line for line in cli.ok("show events last 3"))


def test_latent_sector_errors_are_rebuilt_rewritten_and_counted(cli: Any) -> None:
    cli.ok("volume create v1 100MB")
    device = cli.group.device("v1")
    data = bytes(range(251)) * 4096
    device.write(0, data[: len(data) // 512 * 512])
    for disk in range(9):  # one bad strip in each of the first nine stripes: each can be rebuilt
        cli.quiet(f"simulate member select member-1 disk {disk} bad-sectors {disk * 65536} 65536")
    assert device.read(0, len(data) // 512) == data[: len(data) // 512 * 512]
    errors = [int(_disk_rows(cli)[str(disk)][3]) for disk in range(9)]
    assert sum(errors) > 0
    assert device.read(0, len(data) // 512) == data[: len(data) // 512 * 512]
    assert [int(_disk_rows(cli)[str(disk)][3]) for disk in range(9)] == errors  # rewritten: no error twice


def _raid(cli: Any) -> Any:
    return cli.group.member_admin.raid("member-1")


def test_verification_rewrites_parity_that_disagrees_with_the_data(cli: Any) -> None:
    cli.ok("volume create v1 100MB")
    device = cli.group.device("v1")
    data = bytes(range(253)) * 8192
    device.write(0, data[: len(data) // 512 * 512])
    # RAID 6 over 11 disks and a spare: stripe 0 has P on disk 10, Q on disk 0, data from disk 1
    with open(_raid(cli).directory / "disk-10.img", "r+b") as disk:  # silent corruption of that P
        disk.write(b"\xff" * 4096)
    cli.quiet("simulate member select member-1 verify")
    assert cli.values("member select member-1 show")["RaidStatus"] == "verifying"
    _rebuild(cli)
    assert cli.values("member select member-1 show")["RaidStatus"] == "ok"
    assert any("1 parity mismatch(es) corrected" in line for line in cli.ok("show events"))
    cli.quiet("simulate member select member-1 disk 1 fail")  # stripe 0's first data strip now comes from P
    cli.quiet("simulate member select member-1 disk 11 fail")  # and no spare rebuilds it first
    assert device.read(0, len(data) // 512) == data[: len(data) // 512 * 512]


def test_verification_rewrites_latent_errors_and_skips_unwritten_stripes(cli: Any) -> None:
    cli.ok("volume create v1 100MB")
    device = cli.group.device("v1")
    data = bytes(range(241)) * 4096
    device.write(0, data[: len(data) // 512 * 512])
    cli.quiet("simulate member select member-1 disk 3 bad-sectors 0 4096")
    cli.quiet("simulate member select member-1 verify")
    _rebuild(cli)
    assert int(_disk_rows(cli)["3"][3]) == 1  # found by the scrub, not by a read
    assert any("0 parity mismatch(es) corrected" in line for line in cli.ok("show events"))
    assert device.read(0, len(data) // 512) == data[: len(data) // 512 * 512]
    assert int(_disk_rows(cli)["3"][3]) == 1


def test_verification_waits_while_a_set_is_degraded(cli: Any) -> None:
    cli.quiet("simulate member select member-1 disk 11 fail")  # the spare: nothing to rebuild
    cli.quiet("simulate member select member-1 disk 0 fail")
    cli.quiet("simulate member select member-1 verify")
    assert cli.values("member select member-1 show")["RaidStatus"] == "degraded"
    assert not cli.group.background_step(8 * MiB)
    cli.quiet("simulate member select member-1 disk 11 replace")  # a spare again: rebuilt, then verified
    _rebuild(cli)
    assert cli.values("member select member-1 show")["RaidStatus"] == "ok"
    assert any("Verification" in line and "finished" in line for line in cli.ok("show events"))


def test_show_events_numbers_lines_and_keeps_the_newest(cli: Any) -> None:
    cli.quiet("simulate member add m2 disks 6 disk-size 100MB")
    cli.quiet("member select m2 raid-policy raid5")
    events = cli.ok("show events")
    assert [line.split(":")[0] for line in events] == [str(n) for n in range(1, len(events) + 1)]
    assert cli.ok("show events last 1") == events[-1:]
    assert "Invalid number of events" in cli.error("show events last 0")
