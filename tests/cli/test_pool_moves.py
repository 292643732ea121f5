"""Several members in pools through the CLI: volumes spread over members, members vacated, deleted and
moved to another pool, volumes moved between pools, pools merged, members powered off and on."""

from __future__ import annotations

import os
from typing import Any

import pytest

from array_sim import DeviceOffline, Group
from array_sim.units import PAGE_SIZE, GiB, MiB

pytestmark = pytest.mark.usefixtures("group")

SECTOR = 512


@pytest.fixture
def raid_policy() -> str:
    return "file"  # member-1 is one sparse file: the added arrays carry the RAID


def _run_moves(group: Group) -> None:
    for _ in range(100_000):
        if not group.background_step(4 * MiB):
            return
    pytest.fail("the background work never ended")


def _add(cli: Any, name: str, pool: str = "default", policy: str = "raid10") -> None:
    """An array of 6 disks of 64MB (RAID 10: 3 mirrors, 12 pages) in ``pool``, verified."""
    cli.quiet(f"simulate member add {name} disks 6 disk-size 64MB pool {pool}")
    cli.quiet(f"member select {name} raid-policy {policy}")
    _run_moves(cli.group)


def _pool_p2(cli: Any) -> None:
    """A pool p2 of two such arrays, m2 and m3, beside default."""
    cli.quiet("pool create p2")
    _add(cli, "m2", "p2")
    _add(cli, "m3", "p2")


def _fill(group: Group, volume: str, pages: int, seed: int) -> dict[int, bytes]:
    """Write a distinct 64 KiB at two places of each of ``pages`` pages; returns what is where (by LBA)."""
    device, written = group.device(volume), {}
    for page in range(pages):
        for offset in (0, 7 * MiB + 4096):
            lba = (page * PAGE_SIZE + offset) // SECTOR
            data = os.urandom(16) * 4096
            data = bytes([seed]) + data[1:]
            device.write(lba, data)
            written[lba] = data
    return written


def _check(group: Group, volume: str, written: dict[int, bytes], snapshot: str | None = None) -> None:
    device = group.device(volume, snapshot)
    for lba, data in written.items():
        assert device.read(lba, len(data) // SECTOR) == data, (volume, snapshot, lba)


def _where(group: Group, volume: str) -> set[str]:
    return set(group.members_holding(group.volume(volume)))


def test_a_volume_spreads_over_at_most_three_members_by_free_percentage(cli: Any) -> None:
    for name in ("m2", "m3", "m4"):
        _add(cli, name)
    cli.ok("volume create v1 150MB")
    values = cli.values("volume select v1 show")
    assert values["ActualMembers"] == "3"
    assert values["Members"] == "member-1, m2, m3"  # the three with most free space (ties: oldest first)
    written = _fill(cli.group, "v1", 9, 1)
    holders = {cli.group.placement.members[cli.group.tables.phys[p].address[0]].name
               for p in cli.group.tables.table(cli.group.volume("v1").map_id).values()}
    assert holders == {"member-1", "m2", "m3"}  # by free percentage: the small arrays get pages too
    _check(cli.group, "v1", written)
    cli.ok("volume create v2 30MB")
    assert "m4" in cli.values("volume select v2 show")["Members"]  # m4 is now the emptiest array
    assert len(cli.group.spreads.of(cli.group.volume("v2").id).members) == 3


def test_member_delete_vacates_it_then_it_leaves_the_group(cli: Any, tmp_path: Any) -> None:
    _add(cli, "m2")
    cli.ok("volume create v1 150MB")
    written = _fill(cli.group, "v1", 8, 2)
    cli.ok("volume select v1 snapshot create-now")
    after = _fill(cli.group, "v1", 2, 3)
    assert "m2" in _where(cli.group, "v1")
    out = cli.ok("member select m2 delete")
    assert out == ["Member deletion started; the member leaves the group once its data has moved."]
    values = cli.values("member select m2 show")
    assert values["Status"] == "vacate" and values["Operation"] == "vacate 0%"
    snapshot = cli.group.snapshots_of(cli.group.volume("v1"))[0].name
    cli.group.background_step(4 * MiB)  # a page is being copied while the volume is written
    more = _fill(cli.group, "v1", 3, 4)
    _run_moves(cli.group)
    assert "m2" not in [r[0] for r in cli.rows("member show")]
    assert not (tmp_path / "g" / "members" / "m2").exists()
    assert _where(cli.group, "v1") == {"member-1"}
    _check(cli.group, "v1", {**written, **after, **more})
    cli.quiet(f"volume select v1 snapshot select {snapshot} online")
    _check(cli.group, "v1", written, snapshot)
    events = "\n".join(cli.ok("show events"))
    assert "Member m2 is being vacated" in events and "Member m2 was removed from the group." in events
    assert "Vacating member m2: 50% complete." in events


def test_member_pool_moves_the_member_after_its_data(cli: Any) -> None:
    _add(cli, "m2")
    cli.quiet("pool create p2")
    cli.ok("volume create v1 150MB")
    written = _fill(cli.group, "v1", 6, 5)
    cli.quiet("member select m2 pool p2")
    assert cli.values("member select m2 show")["Operation"].startswith("move-pool p2 ")
    _run_moves(cli.group)
    values = cli.values("member select m2 show")
    assert (values["Pool"], values["Status"], values["Operation"], values["UsedSpace"]) == ("p2", "on-line", "none", "0MB")
    assert _where(cli.group, "v1") == {"member-1"}
    _check(cli.group, "v1", written)
    assert cli.values("pool select p2 show")["TotalCapacity"] == values["TotalSpace"]


def test_volume_pool_moves_the_volume_and_its_snapshots_online(cli: Any) -> None:
    _pool_p2(cli)
    cli.ok("volume create v1 60MB")
    written = _fill(cli.group, "v1", 4, 6)
    cli.ok("volume select v1 snapshot create-now")
    snapshot = cli.group.snapshots_of(cli.group.volume("v1"))[0].name
    cli.quiet(f"volume select v1 snapshot select {snapshot} online")
    after = _fill(cli.group, "v1", 2, 7)
    free_before = cli.values("pool select default show")["FreeSpace"]
    cli.quiet("volume select v1 pool p2")
    values = cli.values("volume select v1 show")
    assert values["Pool"] == "p2" and values["Operation"].startswith("move-pool p2 ")
    assert cli.values("pool select default show")["FreeSpace"] != free_before  # the reserve left at once
    cli.group.background_step(4 * MiB)
    during = _fill(cli.group, "v1", 1, 8)
    _check(cli.group, "v1", {**written, **after, **during})
    _run_moves(cli.group)
    assert _where(cli.group, "v1") == {"m2", "m3"}
    assert cli.values("volume select v1 show")["Operation"] == "none"
    _check(cli.group, "v1", {**written, **after, **during})
    _check(cli.group, "v1", written, snapshot)
    assert "Volume v1 moved to pool p2." in "\n".join(cli.ok("show events"))


def test_a_volume_sharing_pages_with_clones_moves_and_every_volume_keeps_its_data(cli: Any) -> None:
    """v1 is a clone of w and has a clone c1 and a snapshot cloned as c2: its move gives v1 and its
    snapshot private copies in p2 of what they share, and w, c1 and c2 keep theirs in default."""
    _pool_p2(cli)
    group = cli.group
    cli.ok("volume create w 60MB")
    w = _fill(group, "w", 4, 1)
    cli.ok("volume select w clone v1")
    v1 = {**w, **_fill(group, "v1", 1, 2)}  # v1 overlays on one page of w's, shares three whole
    cli.ok("volume select v1 snapshot create-now")
    snapshot = group.snapshots_of(group.volume("v1"))[0].name
    cli.quiet(f"volume select v1 snapshot select {snapshot} online")
    cli.ok("volume select v1 clone c1")
    cli.ok(f"volume select v1 snapshot select {snapshot} clone c2")
    at_snapshot = dict(v1)
    v1.update(_fill(group, "v1", 2, 3))
    c1 = {**at_snapshot, **_fill(group, "c1", 3, 4)}
    cli.quiet("volume select v1 pool p2")
    assert "clone it once the move is complete" in cli.error("volume select v1 clone c3")
    group.background_step(4 * MiB)
    v1.update(_fill(group, "v1", 4, 5))  # written while it moves
    _run_moves(group)
    assert _where(cli.group, "v1") == {"m2", "m3"}
    assert _where(cli.group, "w") == _where(cli.group, "c1") == _where(cli.group, "c2") == {"member-1"}
    family = group._volume_pages(group.volume("v1"))
    for other in ("w", "c1", "c2"):
        assert family.isdisjoint(group._volume_pages(group.volume(other)))
    expected = {"w": w, "v1": v1, "c1": c1, "c2": at_snapshot}
    for name, written in expected.items():
        _check(group, name, written)
    _check(group, "v1", at_snapshot, snapshot)
    for name in ("w", "c1", "c2"):
        cli.quiet(f"volume select {name} offline")
        cli.ok(f"volume delete {name}")
    _check(group, "v1", v1)
    _check(group, "v1", at_snapshot, snapshot)


def test_pages_a_moving_clone_shares_do_not_count_as_leaving(cli: Any) -> None:
    """c shares every page with w: moving c to p2 leaves them all to w in default, so default's free
    space during the move is already what it is after it (only c's reserve left, at once)."""
    _pool_p2(cli)
    group = cli.group
    cli.ok("volume create w 60MB")
    w = _fill(group, "w", 4, 1)
    cli.ok("volume select w clone c")
    c = {**w, **_fill(group, "c", 1, 2)}  # one page of its own, which does leave
    default = group.pool_id("default")
    cli.quiet("volume select c pool p2")
    during = group.pool_free(default)
    _run_moves(group)
    assert group.pool_free(default) == during + 1
    _check(group, "c", c)
    _check(group, "w", w)


def test_pool_merge_moves_members_and_volumes_without_moving_data(cli: Any) -> None:
    cli.quiet("pool create p2")
    _add(cli, "m2", "p2")
    cli.ok("volume create v1 30MB pool p2")
    written = _fill(cli.group, "v1", 2, 9)
    cli.quiet("pool merge p2 default")
    assert "p2" not in [r[0] for r in cli.rows("pool show")]
    assert cli.values("volume select v1 show")["Pool"] == "default"
    assert cli.values("member select m2 show")["Pool"] == "default"
    assert _where(cli.group, "v1") == {"m2"} and not cli.group.moves  # no data moved to merge
    _check(cli.group, "v1", written)
    _run_moves(cli.group)  # then the capacity balancer evens m2 and member-1 out
    assert _where(cli.group, "v1") == {"member-1", "m2"}
    _check(cli.group, "v1", written)


def test_cancel_operation_leaves_the_member_where_it_was(cli: Any) -> None:
    _add(cli, "m2")
    cli.ok("volume create v1 150MB")
    written = _fill(cli.group, "v1", 8, 10)
    used = cli.values("member select m2 show")["UsedSpace"]
    cli.ok("member select m2 delete")
    cli.group.background_step(64 * 1024)  # the first 64 KiB of the page on m2: its copy is under way
    assert cli.group.move_of_member(cli.group.member_admin.member_id("m2")).page is not None
    cli.quiet("member select m2 cancel-operation")
    values = cli.values("member select m2 show")
    assert (values["Status"], values["Operation"]) == ("on-line", "none")
    assert values["UsedSpace"] == used  # the page being copied stayed where it was
    assert not cli.group.moves
    _check(cli.group, "v1", written)
    assert "no operation in progress" in cli.error("member select m2 cancel-operation")


def test_a_powered_off_member_takes_exactly_its_volumes_offline(cli: Any) -> None:
    cli.quiet("pool create p2")
    _add(cli, "m3", "p2")
    cli.ok("volume create v2 30MB pool p2")
    other = _fill(cli.group, "v2", 1, 12)
    _add(cli, "m2")
    cli.ok("volume create v1 150MB")
    written = _fill(cli.group, "v1", 4, 11)
    assert "m2" in _where(cli.group, "v1")
    capacity = cli.values("pool select default show")["TotalCapacity"]
    cli.quiet("simulate member select m2 power off")
    assert cli.values("member select m2 show")["Status"] == "off-line"
    assert cli.values("volume select v1 show")["Status"] == "offline (member-offline)"
    assert cli.values("volume select v2 show")["Status"] == "online"
    assert cli.values("pool select default show")["TotalCapacity"] != capacity
    with pytest.raises(DeviceOffline):
        cli.group.device("v1").read(0, 8)
    assert "offline" in cli.error("volume select v1 online")
    _check(cli.group, "v2", other)
    cli.quiet("simulate member select m2 power on")
    assert cli.values("volume select v1 show")["Status"] == "online"
    assert cli.values("pool select default show")["TotalCapacity"] == capacity
    _check(cli.group, "v1", written)
    assert "already powered on" in cli.error("simulate member select m2 power on")


def test_a_move_resumes_after_the_group_is_reopened(tmp_path: Any) -> None:
    group = Group.init(tmp_path / "own", member_size=GiB, raid_policy="file")
    try:
        group.add_array("m2", "default", 6, 64 * MiB)
        group.configure_member("m2", "raid10")
        _run_moves(group)
        group.create_volume("v1", 150 * MiB)
        written = _fill(group, "v1", 8, 13)
        assert "m2" in _where(group, "v1")
        group.delete_member("m2")
        for _ in range(3):
            group.background_step(64 * 1024)  # one page copied and switched, the next one half copied
    finally:
        group.close()
    group = Group.open(tmp_path / "own")
    try:
        assert group.move_of_member(group.member_admin.member_id("m2")) is not None
        _check(group, "v1", written)
        _run_moves(group)
        assert [r.name for r in group.member_admin.reports()] == ["member-1"]
        _check(group, "v1", written)
    finally:
        group.close()


@pytest.mark.parametrize(
    ("setup", "line", "says"),
    [
        ([], "member select member-1 delete", "only member of the group"),
        (["simulate member add m2 disks 6 disk-size 64MB", "member select m2 raid-policy raid10",
          "volume create big 150MB"], "member select member-1 delete", "Not enough free space"),
        ([], "member select member-1 pool default", "already in pool default"),
        ([], "member select member-1 pool nowhere", "does not exist"),
        ([], "member select member-1 cancel-operation", "no operation in progress"),
        ([], "volume select v1 pool default", "already in pool default"),
        (["pool create p2"], "volume select v1 pool p2", "Not enough free space in pool p2"),
        (["pool create p2"], "pool merge default p2", "default pool cannot be merged"),
        (["pool create p2"], "pool merge p2 p2", "into itself"),
        ([], "pool merge nowhere default", "does not exist"),
        ([], "simulate member select member-1 power sideways", "power state"),
    ],
)
def test_refused_moves_change_nothing(cli: Any, setup: list[str], line: str, says: str, helpers: Any) -> None:
    cli.ok("volume create v1 30MB")
    _fill(cli.group, "v1", 2, 14)
    for command in setup:
        cli.ok(command)
    _run_moves(cli.group)
    before = helpers.group_state(cli.group)
    assert says in cli.error(line)
    assert helpers.group_state(cli.group) == before


def test_a_new_member_receives_data_from_the_capacity_balancer(tmp_path: Any) -> None:
    group = Group.init(tmp_path / "own", member_size=10 * PAGE_SIZE, raid_policy="file")
    try:
        group.create_volume("v1", 8 * PAGE_SIZE, snap_reserve=0)
        written = _fill(group, "v1", 8, 15)
        group.add_member("m2", 10 * PAGE_SIZE, "default", raid_policy="file")
        assert _where(group, "v1") == {"member-1", "m2"}  # in the spread at once, with no data yet
        _run_moves(group)
        on = {m.name: m.capacity_pages - m.free_pages for m in group.placement.members.values()}
        assert on == {"member-1": 4, "m2": 4}  # 40% and 40% used: one more page would not even them out
        _check(group, "v1", written)
    finally:
        group.close()
