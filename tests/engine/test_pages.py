"""The data path: page tables, chunk-level copy-on-write, unmap, WRITE SAME and the block device checks."""

from __future__ import annotations

import functools
import random
from datetime import datetime
from pathlib import Path

import pytest

from array_sim import DeviceOffline, Extent, Group, OutOfRange, WriteProtected
from array_sim.pages import PhysPage
from array_sim.units import CHUNK_SIZE, CHUNKS_PER_PAGE, PAGE_SIZE, SECTOR_SIZE, GiB, MiB

from .helpers import state

SPP = PAGE_SIZE // SECTOR_SIZE  # sectors per page
SPC = CHUNK_SIZE // SECTOR_SIZE  # sectors per chunk


@pytest.fixture
def group(tmp_path: Path) -> Group:
    group = Group.init(tmp_path / "group", member_size=4 * GiB, clock=lambda: datetime(2024, 5, 6, 7, 8, 9))
    yield group
    group.close()


@functools.lru_cache(maxsize=8)  # seeded, so the same bytes each call (bytes: immutable)
def pattern(tag: int, length: int) -> bytes:
    """Data that differs for every tag and every position (seeded, so repeatable)."""
    return random.Random(tag).randbytes(length)


def physical(group: Group, map_id: int, page: int) -> PhysPage:
    return group.tables.phys[group.tables.table(map_id)[page]]


def present_chunks(group: Group, map_id: int, page: int) -> list[int]:
    """Indexes of the chunks a volume's page holds of its own."""
    phys = physical(group, map_id, page)
    chunks = group.tables.chunk_maps[phys.address[0]]
    return [start for first, last, here in chunks.runs(phys.address[1], 0, CHUNKS_PER_PAGE) if here
            for start in range(first, last)]


def read_snapshot(group: Group, volume: str, snapshot: str, lba: int, count: int) -> bytes:
    group.set_snapshot_online(volume, snapshot, True)
    try:
        return group.device(volume, snapshot).read(lba, count)
    finally:
        group.set_snapshot_online(volume, snapshot, False)


# --------------------------------------------------------------- copy-on-write


def test_small_write_after_snapshot_copies_only_the_touched_chunks(group: Group) -> None:
    volume = group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    original = pattern(1, 2 * MiB)
    device.write(0, original)
    old_pid = group.tables.table(volume.map_id)[0]
    group.create_snapshot("v", "s")

    device.write(10 * SPC, pattern(2, CHUNK_SIZE))
    new = physical(group, volume.map_id, 0)
    assert new.id != old_pid
    assert new.backing == old_pid
    assert present_chunks(group, volume.map_id, 0) == [10]

    # An unaligned sector write that straddles chunks 20 and 21 adds just those two.
    device.write(21 * SPC - 1, pattern(3, 2 * SECTOR_SIZE))
    assert present_chunks(group, volume.map_id, 0) == [10, 20, 21]

    expected = bytearray(original)
    expected[10 * CHUNK_SIZE : 11 * CHUNK_SIZE] = pattern(2, CHUNK_SIZE)
    expected[21 * CHUNK_SIZE - SECTOR_SIZE : 21 * CHUNK_SIZE + SECTOR_SIZE] = pattern(3, 2 * SECTOR_SIZE)
    assert device.read(0, 2 * MiB // SECTOR_SIZE) == expected
    assert device.read(2 * MiB // SECTOR_SIZE, SPP - 2 * MiB // SECTOR_SIZE) == bytes(PAGE_SIZE - 2 * MiB)
    assert read_snapshot(group, "v", "s", 0, 2 * MiB // SECTOR_SIZE) == original
    assert group.tables.phys[old_pid].refs == 2  # the snapshot's entry and the new page's backing


def test_snapshot_write_copies_only_the_touched_chunks(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, pattern(1, 64 * 1024))
    snapshot = group.create_snapshot("v", "s")
    group.set_snapshot_online("v", "s", True)
    group.device("v", "s").write(3 * SPC + 1, pattern(2, SECTOR_SIZE))
    assert present_chunks(group, snapshot.map_id, 0) == [3]
    expected = bytearray(pattern(1, 64 * 1024))
    expected[3 * CHUNK_SIZE + SECTOR_SIZE : 3 * CHUNK_SIZE + 2 * SECTOR_SIZE] = pattern(2, SECTOR_SIZE)
    assert group.device("v", "s").read(0, 128) == expected
    assert group.device("v").read(0, 128) == pattern(1, 64 * 1024)


def test_page_whose_chunks_are_all_its_own_drops_its_backing(group: Group) -> None:
    volume = group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    device.write(0, pattern(1, CHUNK_SIZE))
    old_pid = group.tables.table(volume.map_id)[0]
    group.create_snapshot("v", "s")
    device.write(0, pattern(2, PAGE_SIZE // 2))
    assert physical(group, volume.map_id, 0).backing == old_pid
    device.write(PAGE_SIZE // 2 // SECTOR_SIZE, pattern(3, PAGE_SIZE // 2))
    assert physical(group, volume.map_id, 0).backing is None
    assert len(present_chunks(group, volume.map_id, 0)) == CHUNKS_PER_PAGE
    assert group.tables.phys[old_pid].refs == 1
    assert read_snapshot(group, "v", "s", 0, SPC) == pattern(1, CHUNK_SIZE)
    assert device.read(0, SPP) == pattern(2, PAGE_SIZE // 2) + pattern(3, PAGE_SIZE // 2)


def test_write_to_an_unshared_page_is_in_place(group: Group) -> None:
    volume = group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    device.write(0, pattern(1, CHUNK_SIZE))
    pid = group.tables.table(volume.map_id)[0]
    device.write(5, pattern(2, SECTOR_SIZE))
    assert group.tables.table(volume.map_id)[0] == pid
    assert len(group.tables.phys) == 1


def test_chains_of_snapshots_each_keep_their_data(group: Group) -> None:
    group.create_volume("v", 2 * PAGE_SIZE, snap_reserve=1000)
    device = group.device("v")
    versions = []
    for tag in range(4):
        # Each version changes one unaligned sector range and one range across the page boundary.
        device.write(tag * 3 + 1, pattern(10 + tag, 3 * SECTOR_SIZE))
        device.write(SPP - 2 - tag, pattern(20 + tag, 5 * SECTOR_SIZE))
        versions.append((device.read(0, 32), device.read(SPP - 8, 16)))
        group.create_snapshot("v", f"s{tag}")
    group.delete_snapshot("v", "s1")
    for tag in (0, 2, 3):
        assert (read_snapshot(group, "v", f"s{tag}", 0, 32), read_snapshot(group, "v", f"s{tag}", SPP - 8, 16)) == (
            versions[tag]
        )
    assert (device.read(0, 32), device.read(SPP - 8, 16)) == versions[3]


def test_write_across_page_boundary(group: Group) -> None:
    volume = group.create_volume("v", 3 * PAGE_SIZE, thin=True)
    device = group.device("v")
    data = pattern(1, 5 * SECTOR_SIZE)
    device.write(SPP - 3, data)
    assert device.read(SPP - 3, 5) == data
    assert device.read(SPP - 4, 1) == bytes(SECTOR_SIZE)
    assert device.read(SPP + 2, 1) == bytes(SECTOR_SIZE)
    assert sorted(group.tables.table(volume.map_id)) == [0, 1]
    assert device.extents(0, 3 * SPP) == [Extent(0, 2 * SPP, True), Extent(2 * SPP, SPP, False)]


def test_layered_pages_survive_reopen(tmp_path: Path) -> None:
    group = Group.init(tmp_path, member_size=GiB)
    group.create_volume("v", 2 * PAGE_SIZE)
    device = group.device("v")
    device.write(0, pattern(1, MiB))
    group.create_snapshot("v", "s")
    device.write(7, pattern(2, 3 * SECTOR_SIZE))
    device.write(SPP - 1, pattern(3, 2 * SECTOR_SIZE))
    expected = device.read(0, 2 * SPP)
    before = state(group)
    group.close()
    with Group.open(tmp_path) as group:
        assert state(group) == before
        assert group.device("v").read(0, 2 * SPP) == expected
        assert read_snapshot(group, "v", "s", 0, MiB // SECTOR_SIZE) == pattern(1, MiB)
        group.device("v").write(8, pattern(4, SECTOR_SIZE))
        assert group.device("v").read(8, 1) == pattern(4, SECTOR_SIZE)


# --------------------------------------------------------- unmap, write same


def test_unmap_whole_page_returns_thin_space(group: Group) -> None:
    volume = group.create_volume("v", 3 * PAGE_SIZE, thin=True)
    device = group.device("v")
    device.write(0, pattern(1, CHUNK_SIZE))
    device.write(SPP + 100, pattern(2, CHUNK_SIZE))
    assert group.space.in_use(volume) == 2
    member_free = group.members()[0][3]
    device.unmap(SPP, SPP)
    assert group.space.in_use(volume) == 1
    assert group.members()[0][3] == member_free + 1
    assert device.extents(0, 3 * SPP) == [Extent(0, SPP, True), Extent(SPP, 2 * SPP, False)]
    assert device.read(SPP, SPP) == bytes(PAGE_SIZE)
    assert device.read(0, SPC) == pattern(1, CHUNK_SIZE)


def test_unmap_of_all_written_chunks_frees_the_page(group: Group) -> None:
    volume = group.create_volume("v", PAGE_SIZE, thin=True)
    device = group.device("v")
    device.write(5 * SPC, pattern(1, 2 * CHUNK_SIZE))
    assert device.extents(0, SPP) == [Extent(0, SPP, True)]
    device.unmap(5 * SPC, 2 * SPC)
    assert group.space.in_use(volume) == 0
    assert device.extents(0, SPP) == [Extent(0, SPP, False)]
    assert device.read(0, SPP) == bytes(PAGE_SIZE)


def test_unmap_part_of_a_page_reads_zeros_there_only(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE, thin=True)
    device = group.device("v")
    data = bytearray(pattern(1, 64 * 1024))
    device.write(0, data)
    device.unmap(3, 21)  # sectors 3..23: partial chunk, a whole chunk, partial chunk
    data[3 * SECTOR_SIZE : 24 * SECTOR_SIZE] = bytes(21 * SECTOR_SIZE)
    assert device.read(0, 128) == data
    assert device.extents(0, SPP) == [Extent(0, SPP, True)]
    # A later unaligned write into the cleared chunk merges with zeros, not the old data.
    device.write(9, pattern(2, SECTOR_SIZE))
    data[9 * SECTOR_SIZE : 10 * SECTOR_SIZE] = pattern(2, SECTOR_SIZE)
    assert device.read(0, 128) == data


def test_unmap_of_a_page_a_snapshot_shares_keeps_the_snapshot_data(group: Group) -> None:
    volume = group.create_volume("v", 2 * PAGE_SIZE, thin=True)
    device = group.device("v")
    device.write(0, pattern(1, 2 * PAGE_SIZE))
    group.create_snapshot("v", "s")
    device.unmap(0, SPP + 4)
    assert device.read(0, SPP + 4) == bytes(PAGE_SIZE + 4 * SECTOR_SIZE)
    assert device.read(SPP + 4, SPP - 4) == pattern(1, 2 * PAGE_SIZE)[PAGE_SIZE + 4 * SECTOR_SIZE :]
    assert sorted(group.tables.table(volume.map_id)) == [1]
    assert read_snapshot(group, "v", "s", 0, 2 * SPP) == pattern(1, 2 * PAGE_SIZE)


def test_unmap_in_a_snapshot_leaves_the_volume(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, pattern(1, MiB))
    group.create_snapshot("v", "s")
    group.set_snapshot_online("v", "s", True)
    group.device("v", "s").unmap(0, SPP)
    assert group.device("v", "s").read(0, SPP) == bytes(PAGE_SIZE)
    assert group.device("v").read(0, MiB // SECTOR_SIZE) == pattern(1, MiB)


def test_write_same_fills_every_block(group: Group) -> None:
    volume = group.create_volume("v", 2 * PAGE_SIZE, thin=True)
    device = group.device("v")
    block = pattern(7, SECTOR_SIZE)
    device.write_same(SPP - 5, 10, block)
    assert device.read(SPP - 5, 10) == block * 10
    assert device.read(SPP - 6, 1) == bytes(SECTOR_SIZE)
    assert device.read(SPP + 5, 1) == bytes(SECTOR_SIZE)
    assert group.space.in_use(volume) == 2


def test_write_same_zeros_with_and_without_unmap(group: Group) -> None:
    volume = group.create_volume("v", 2 * PAGE_SIZE, thin=True)
    device = group.device("v")
    device.write(0, pattern(1, 2 * PAGE_SIZE))
    device.write_same(0, SPP, bytes(SECTOR_SIZE), unmap=False)
    assert device.read(0, SPP) == bytes(PAGE_SIZE)
    assert device.extents(0, SPP) == [Extent(0, SPP, True)]
    device.write_same(SPP, SPP, bytes(SECTOR_SIZE), unmap=True)
    assert device.read(SPP, SPP) == bytes(PAGE_SIZE)
    assert device.extents(SPP, SPP) == [Extent(SPP, SPP, False)]
    assert group.space.in_use(volume) == 1


def test_extents_report_pages(group: Group) -> None:
    group.create_volume("v", 4 * PAGE_SIZE, thin=True)
    device = group.device("v")
    device.write(2 * SPP + 7, pattern(1, SECTOR_SIZE))
    assert device.extents(0, 4 * SPP) == [
        Extent(0, 2 * SPP, False),
        Extent(2 * SPP, SPP, True),
        Extent(3 * SPP, SPP, False),
    ]
    assert device.extents(2 * SPP + 10, 20) == [Extent(2 * SPP + 10, 20, True)]
    assert device.extents(SPP - 1, 2) == [Extent(SPP - 1, 2, False)]


# ------------------------------------------------------------ device checks


def test_device_geometry(group: Group) -> None:
    group.create_volume("g", GiB, thin=True)
    device = group.device("g")
    assert device.block_size == SECTOR_SIZE
    assert device.num_blocks * SECTOR_SIZE == 1_085_276_160
    assert device.thin and device.online and not device.read_only
    assert device.name == "g"
    assert device.iqn == group.volume("g").iqn


def test_offline_volume_refuses_all_io(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    device.write(0, pattern(1, CHUNK_SIZE))
    group.set_volume_online("v", False)
    before = state(group)
    for request in (
        lambda: device.read(0, 1),
        lambda: device.write(0, pattern(2, SECTOR_SIZE)),
        lambda: device.unmap(0, 8),
        lambda: device.write_same(0, 8, pattern(2, SECTOR_SIZE)),
        lambda: device.extents(0, 8),
    ):
        with pytest.raises(DeviceOffline):
            request()
    assert state(group) == before
    group.set_volume_online("v", True)
    assert device.read(0, SPC) == pattern(1, CHUNK_SIZE)


def test_offline_snapshot_refuses_io(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.create_snapshot("v", "s")
    snapshot = group.device("v", "s")
    assert not snapshot.online
    before = state(group)
    with pytest.raises(DeviceOffline):
        snapshot.read(0, 1)
    with pytest.raises(DeviceOffline):
        snapshot.write(0, pattern(1, SECTOR_SIZE))
    assert state(group) == before


def test_read_only_volume_and_snapshot_refuse_writes(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    device.write(0, pattern(1, CHUNK_SIZE))
    group.create_snapshot("v", "s")
    group.set_snapshot_online("v", "s", True)
    group.set_volume_read_only("v", True)
    group.set_snapshot_read_only("v", "s", True)
    before = state(group)
    for target in (device, group.device("v", "s")):
        assert target.read_only
        with pytest.raises(WriteProtected):
            target.write(0, pattern(2, SECTOR_SIZE))
        with pytest.raises(WriteProtected):
            target.unmap(0, SPP)
        with pytest.raises(WriteProtected):
            target.write_same(0, 8, bytes(SECTOR_SIZE), unmap=True)
        assert target.read(0, SPC) == pattern(1, CHUNK_SIZE)
    assert state(group) == before
    group.set_volume_read_only("v", False)
    device.write(0, pattern(3, SECTOR_SIZE))
    assert device.read(0, 1) == pattern(3, SECTOR_SIZE)


@pytest.mark.parametrize(("lba", "count"), [(-1, 1), (SPP, 1), (SPP - 1, 2), (0, SPP + 1), (10 * SPP, 0)])
def test_out_of_range_requests_change_nothing(group: Group, lba: int, count: int) -> None:
    group.create_volume("v", PAGE_SIZE, thin=True)
    device = group.device("v")
    device.write(SPP - 8, pattern(1, CHUNK_SIZE))
    before = state(group)
    for request in (
        lambda: device.read(lba, count),
        lambda: device.write(lba, pattern(2, max(count, 1) * SECTOR_SIZE)),
        lambda: device.unmap(lba, count),
        lambda: device.write_same(lba, count, pattern(2, SECTOR_SIZE)),
        lambda: device.extents(lba, count),
    ):
        with pytest.raises(OutOfRange):
            request()
    assert state(group) == before
    assert device.read(SPP - 8, 8) == pattern(1, CHUNK_SIZE)


def test_malformed_requests_are_refused(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    before = state(group)
    with pytest.raises(ValueError, match="whole number of blocks"):
        device.write(0, b"x" * 100)
    with pytest.raises(ValueError, match="exactly one block"):
        device.write_same(0, 8, b"x" * 1024)
    assert state(group) == before


def test_fua_and_flush(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    device.write(0, pattern(1, SECTOR_SIZE), fua=True)
    device.flush()
    assert device.read(0, 1) == pattern(1, SECTOR_SIZE)


# ---------------------------------------------------------------- placement


def test_pages_spread_over_the_members_of_the_volume_pool(group: Group) -> None:
    group.add_member("member-2", GiB, "default")
    group.create_pool("fast")
    group.add_member("member-3", GiB, "fast")
    members = {m.name: m.id for m in group.placement.members.values()}
    volume = group.create_volume("v", 6 * PAGE_SIZE, thin=True, snap_reserve=0)
    other = group.create_volume("w", 2 * PAGE_SIZE, pool="fast", snap_reserve=0)
    device = group.device("v")
    for page in range(6):
        device.write(page * SPP, pattern(page, SECTOR_SIZE))
    group.device("w").write(0, pattern(9, 2 * PAGE_SIZE))
    on = [physical(group, volume.map_id, p).address[0] for p in range(6)]
    # member-1 is larger (4GB) and so takes pages until the free counts meet
    assert set(on) <= {members["member-1"], members["member-2"]}
    assert {physical(group, other.map_id, p).address[0] for p in range(2)} == {members["member-3"]}
    for page in range(6):
        assert device.read(page * SPP, 1) == pattern(page, SECTOR_SIZE)
    assert group.device("w").read(0, 2 * SPP) == pattern(9, 2 * PAGE_SIZE)


def test_pages_go_to_the_member_with_most_free_slots(group: Group) -> None:
    group.add_member("member-2", 4 * GiB, "default")
    volume = group.create_volume("v", 6 * PAGE_SIZE, thin=True, snap_reserve=0)
    device = group.device("v")
    for page in range(6):
        device.write(page * SPP, pattern(page, SECTOR_SIZE))
    members = [physical(group, volume.map_id, p).address[0] for p in range(6)]
    assert sorted(members.count(m) for m in set(members)) == [3, 3]
