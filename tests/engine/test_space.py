"""Space rules of a PS Series pool: volume reserve, thin provisioning, snapshot reserve policies.

research/ps-cli.md 2.4: thick volumes reserve every page; thin ones reserve
``thin-min-reserve`` (10%) and grow it by 10% when free reserve falls below 6%;
snapshot reserve is a percentage of the volume reserve, and when it runs out
the ``snap-depletion`` policy deletes the oldest snapshot, sets the volume
offline, or borrows free pool space. A request refused for want of space
changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from array_sim import DeviceOffline, Group, InvalidRequest, NoSpace, SpaceExhausted
from array_sim.space import SpaceAccounting
from array_sim.units import CHUNK_SIZE, PAGE_SIZE, SECTOR_SIZE

from .helpers import state

SPP = PAGE_SIZE // SECTOR_SIZE

MakeGroup = Callable[[int], Group]


@pytest.fixture
def make_group(tmp_path: Path) -> Iterator[MakeGroup]:
    """A group whose one member holds ``pages`` pages."""
    groups: list[Group] = []

    def make(pages: int) -> Group:
        group = Group.init(
            tmp_path / f"g{len(groups)}", member_size=pages * PAGE_SIZE, clock=lambda: datetime(2024, 5, 6, 7, 8, 9)
        )
        groups.append(group)
        return group

    yield make
    for group in groups:
        group.close()


def data(tag: int, length: int = CHUNK_SIZE) -> bytes:
    return random.Random(tag).randbytes(length)


def contents(group: Group) -> dict[tuple[str, str | None], list[str]]:
    """A digest of every page of every volume and snapshot, read through the page tables (online or not)."""
    out: dict[tuple[str, str | None], list[str]] = {}
    objects = [(v.name, None, v) for v in group.volume_list()]
    objects += [(group.volumes[s.volume_id].name, s.name, s) for s in group.snapshots.values()]
    for volume, snapshot, record in objects:
        out[(volume, snapshot)] = [
            hashlib.sha256(group.tables.read(record.map_id, page, 0, PAGE_SIZE)).hexdigest()[:16]
            for page in range(record.pages)
        ]
    return out


def read_raw(group: Group, volume: str, snapshot: str | None, offset: int, length: int) -> bytes:
    """Bytes of one page of a volume or snapshot, online or not."""
    record = group.volume(volume) if snapshot is None else group.snapshot(volume, snapshot)
    page, in_page = divmod(offset, PAGE_SIZE)
    return group.tables.read(record.map_id, page, in_page, length)


def snapshot_names(group: Group, volume: str) -> list[str]:
    return [s.name for s in group.snapshots_of(group.volume(volume))]


def free(group: Group) -> int:
    return group.pool_free(group.pool_id("default"))


# ------------------------------------------------------------------- thick


def test_thick_volume_reserves_every_page_and_its_snapshot_reserve(make_group: MakeGroup) -> None:
    group = make_group(100)
    volume = group.create_volume("v", 10 * PAGE_SIZE)
    assert volume.reserve_pages == 10
    assert free(group) == 100 - 10 - 10  # snapshot reserve defaults to 100% of the volume reserve
    group.create_volume("w", 10 * PAGE_SIZE, snap_reserve=50)
    assert free(group) == 80 - 10 - 5
    group.device("v").write(0, data(1, 3 * PAGE_SIZE))
    assert free(group) == 65


def test_thick_volume_the_pool_cannot_hold_is_refused(make_group: MakeGroup) -> None:
    group = make_group(20)
    before = state(group)
    with pytest.raises(NoSpace, match="Not enough free space"):
        group.create_volume("v", 11 * PAGE_SIZE)
    assert state(group) == before
    group.create_volume("v", 10 * PAGE_SIZE)
    assert free(group) == 0
    before = state(group)
    with pytest.raises(NoSpace):
        group.create_volume("w", PAGE_SIZE, thin=True, snap_reserve=0)
    assert state(group) == before


def test_thick_volume_without_snapshot_reserve_fills_the_pool(make_group: MakeGroup) -> None:
    group = make_group(20)
    group.create_volume("v", 20 * PAGE_SIZE, snap_reserve=0)
    assert free(group) == 0
    device = group.device("v")
    device.write_same(0, 20 * SPP, data(1, SECTOR_SIZE))
    assert device.read(19 * SPP, 1) == data(1, SECTOR_SIZE)


# -------------------------------------------------------------------- thin


def test_thin_volume_reserves_its_minimum(make_group: MakeGroup) -> None:
    group = make_group(1000)
    volume = group.create_volume("t", 100 * PAGE_SIZE, thin=True)
    assert volume.reserve_pages == 10
    assert free(group) == 1000 - 10 - 10
    small = group.create_volume("s", PAGE_SIZE, thin=True)
    assert small.reserve_pages == 1  # never less than a page
    half = group.create_volume("h", 100 * PAGE_SIZE, thin=True, thin_min_reserve=50)
    assert half.reserve_pages == 50
    assert free(group) == 1000 - 20 - 2 - 100


def test_thin_reserve_grows_by_ten_percent_when_free_reserve_falls_below_six(make_group: MakeGroup) -> None:
    group = make_group(1000)
    volume = group.create_volume("t", 100 * PAGE_SIZE, thin=True)
    device = group.device("t")
    reserves = []
    for page in range(100):
        device.write(page * SPP + 7, data(page, SECTOR_SIZE))
        reserves.append(volume.reserve_pages)
        in_use = page + 1
        assert group.space.in_use(volume) == in_use
        assert volume.reserve_pages - in_use >= 6 or volume.reserve_pages == 100
        assert free(group) == 1000 - 2 * volume.reserve_pages
    assert reserves[:4] == [10] * 4
    assert reserves[4] == 20  # 5 in use leaves 5 (< 6%) free
    assert reserves[14] == 30
    assert reserves[-1] == 100
    assert all(b - a in (0, 10) for a, b in zip(reserves, reserves[1:], strict=False))
    assert group.catalog.db.execute("SELECT reserve_pages FROM volumes").fetchone()[0] == 100


def test_thin_in_use_warning_is_logged(make_group: MakeGroup) -> None:
    group = make_group(100)
    group.create_volume("t", 10 * PAGE_SIZE, thin=True, thin_warn=30)
    device = group.device("t")
    for page in range(2):
        device.write(page * SPP, data(page, SECTOR_SIZE))
    assert not [e for e in group.events() if "in-use" in e[2]]
    device.write(2 * SPP, data(2, SECTOR_SIZE))
    assert [e[1] for e in group.events() if "in-use space reached 30%" in e[2]] == ["WARNING"]


def thin_with_maximum(group: Group) -> Group:
    """A 10-page thin volume whose maximum in-use space is 50% (5 pages), with 5 pages written."""
    group.create_volume("t", 10 * PAGE_SIZE, thin=True, thin_warn=40, thin_max=50)
    device = group.device("t")
    for page in range(5):
        device.write(page * SPP, data(page))
    group.create_snapshot("t", "s")
    return group


def test_write_past_thin_maximum_fails_and_sets_volume_offline(make_group: MakeGroup) -> None:
    group = thin_with_maximum(make_group(100))
    group.set_snapshot_online("t", "s", True)
    device = group.device("t")
    before, stored = state(group), contents(group)
    with pytest.raises(SpaceExhausted):
        device.write(5 * SPP, data(9))
    volume = group.volume("t")
    assert not volume.online
    # "The group sets the volume offline" (research/ps-cli.md 2.4): the volume only.
    assert group.snapshot("t", "s").online
    assert any(level == "ERROR" and "t" in message for _, level, message, _ in group.events())
    assert contents(group) == stored
    assert group.space.in_use(volume) == 5
    assert before[3] == state(group)[3]  # page tables unchanged
    with pytest.raises(DeviceOffline):
        device.read(0, 1)
    group.set_volume_online("t", True)
    device.write(4 * SPP, data(10))  # pages already in use can still be written
    assert device.read(4 * SPP, 8) == data(10)
    assert device.read(0, 8) == data(0)


def test_raising_thin_maximum_brings_volume_back_online(make_group: MakeGroup) -> None:
    # research/ps-cli.md 2.4 (PS6610 guide p.159): "raising the limit or the size
    # brings it back online automatically".
    group = thin_with_maximum(make_group(100))
    with pytest.raises(SpaceExhausted):
        group.device("t").write(5 * SPP, data(9))
    group.configure_volume("t", thin_max=80)
    assert group.volume("t").online


def test_pool_exhaustion_fails_thin_write_and_changes_nothing(make_group: MakeGroup) -> None:
    group = make_group(4)
    volume = group.create_volume("t", 10 * PAGE_SIZE, thin=True, snap_reserve=0)
    device = group.device("t")
    for page in range(4):
        device.write(page * SPP, data(page))
    assert volume.reserve_pages == 4 and free(group) == 0
    before, stored = state(group), contents(group)
    with pytest.raises(SpaceExhausted):
        device.write(4 * SPP, data(9))
    assert state(group) == before
    assert contents(group) == stored
    assert volume.online  # at 100% maximum in-use space the volume stays online
    assert any(level == "ERROR" and "no free space" in message for _, level, message, _ in group.events())
    device.write(3 * SPP, data(10))  # allocated pages can still be rewritten
    assert device.read(3 * SPP, 8) == data(10)


def test_failed_write_across_a_page_boundary_changes_nothing(make_group: MakeGroup) -> None:
    # BlockError: "A block request that cannot be carried out; stored data is unchanged."
    group = make_group(4)
    group.create_volume("t", 10 * PAGE_SIZE, thin=True, snap_reserve=0)
    device = group.device("t")
    for page in range(4):
        device.write(page * SPP, data(page))
    before, stored = state(group), contents(group)
    with pytest.raises(SpaceExhausted):
        device.write(4 * SPP - 8, data(9, 2 * CHUNK_SIZE))  # the last 4 KiB of page 3, the first of page 4
    assert contents(group) == stored
    assert state(group) == before


def test_failed_write_across_the_thin_maximum_changes_nothing(make_group: MakeGroup) -> None:
    group = thin_with_maximum(make_group(100))
    device = group.device("t")
    stored = contents(group)
    with pytest.raises(SpaceExhausted):
        device.write(5 * SPP - 8, data(9, 2 * CHUNK_SIZE))  # the end of page 4 and the start of page 5
    assert contents(group) == stored


def test_thin_clone_is_thin_and_reserves_what_it_shares(make_group: MakeGroup) -> None:
    group = make_group(1000)
    group.create_volume("t", 100 * PAGE_SIZE, thin=True)
    device = group.device("t")
    for page in range(30):
        device.write(page * SPP, data(page, SECTOR_SIZE))
    clone = group.clone_volume("t", "c")
    assert clone.thin
    assert clone.reserve_pages == 30
    assert group.space.in_use(clone) == 30


def test_thin_thick_conversion(make_group: MakeGroup) -> None:
    group = make_group(100)
    volume = group.create_volume("v", 20 * PAGE_SIZE, snap_reserve=0)
    device = group.device("v")
    for page in range(5):
        device.write(page * SPP, data(page, SECTOR_SIZE))
    group.set_thin("v", True)
    assert volume.thin and volume.reserve_pages == 5
    assert free(group) == 95
    group.set_thin("v", False)
    assert not volume.thin and free(group) == 80
    group.set_thin("v", True)
    group.create_volume("w", 90 * PAGE_SIZE, snap_reserve=0)
    before = state(group)
    with pytest.raises(NoSpace):
        group.set_thin("v", False)
    assert state(group) == before


# --------------------------------------------------------- snapshot reserve


def reserve_of_one_page(group: Group, policy: str, length: int = CHUNK_SIZE) -> Group:
    """A 2-page thick volume whose snapshot reserve (50%) is one page, already used up by s1.

    s1 holds the old page 0; s2 shares both current pages, so the next write
    to page 1 needs a second page of snapshot reserve. Writes are ``length``
    bytes at the start of a page.
    """
    group.create_volume("v", 2 * PAGE_SIZE, snap_reserve=50, snap_depletion=policy)
    device = group.device("v")
    device.write(0, data(1, length))
    device.write(SPP, data(2, length))
    group.create_snapshot("v", "s1")
    device.write(0, data(3, length))
    group.create_snapshot("v", "s2")
    volume = group.volume("v")
    assert group.space.snapshot_in_use(volume, group.snapshots_of(volume)) == 1
    assert group.space.snapshot_reserve(volume) == 1
    return group


def test_new_snapshot_uses_no_reserve_until_the_volume_changes(make_group: MakeGroup) -> None:
    group = make_group(100)
    volume = group.create_volume("v", 4 * PAGE_SIZE)
    group.device("v").write(0, data(1, 4 * PAGE_SIZE))
    before = free(group)
    group.create_snapshot("v", "s")
    assert free(group) == before
    assert group.space.snapshot_in_use(volume, group.snapshots_of(volume)) == 0
    group.device("v").write(SPP, data(2))
    assert group.space.snapshot_in_use(volume, group.snapshots_of(volume)) == 1
    assert free(group) == before


def test_delete_oldest_deletes_the_oldest_snapshot_and_logs_it(make_group: MakeGroup) -> None:
    group = reserve_of_one_page(make_group(100), "delete-oldest")
    device = group.device("v")
    device.write(SPP, data(4))
    assert snapshot_names(group, "v") == ["s2"]
    assert any(level == "WARNING" and "s1" in message for _, level, message, _ in group.events())
    assert device.read(0, 8) == data(3) and device.read(SPP, 8) == data(4)
    assert read_raw(group, "v", "s2", 0, CHUNK_SIZE) == data(3)
    assert read_raw(group, "v", "s2", PAGE_SIZE, CHUNK_SIZE) == data(2)


def test_volume_offline_policy_sets_volume_and_snapshots_offline(make_group: MakeGroup) -> None:
    group = reserve_of_one_page(make_group(100), "volume-offline")
    group.set_snapshot_online("v", "s2", True)
    device = group.device("v")
    stored, tables = contents(group), state(group)[3]
    with pytest.raises(DeviceOffline):
        device.write(SPP, data(4))
    assert not group.volume("v").online
    assert not group.snapshot("v", "s1").online and not group.snapshot("v", "s2").online
    assert snapshot_names(group, "v") == ["s1", "s2"]
    assert contents(group) == stored
    assert state(group)[3] == tables
    assert any(level == "ERROR" and "v" in message for _, level, message, _ in group.events())


def test_borrow_policy_uses_free_pool_space(make_group: MakeGroup) -> None:
    group = reserve_of_one_page(make_group(100), "borrow")
    volume = group.volume("v")
    before = free(group)
    group.device("v").write(SPP, data(4))
    assert snapshot_names(group, "v") == ["s1", "s2"]
    assert group.space.borrowed(volume, group.snapshots_of(volume)) == 1
    assert free(group) == before - 1
    assert read_raw(group, "v", "s1", 0, CHUNK_SIZE) == data(1)
    assert read_raw(group, "v", "s2", PAGE_SIZE, CHUNK_SIZE) == data(2)


def test_borrow_without_free_pool_space_deletes_the_oldest_snapshot(make_group: MakeGroup) -> None:
    # Whole-page writes, so that no page reads through to another (see
    # test_thick_volume_write_never_runs_out_of_space for partial ones).
    group = reserve_of_one_page(make_group(3), "borrow", length=PAGE_SIZE)
    assert free(group) == 0
    group.device("v").write(SPP, data(4, PAGE_SIZE))
    assert snapshot_names(group, "v") == ["s2"]
    assert read_raw(group, "v", "s2", PAGE_SIZE, CHUNK_SIZE) == data(2, CHUNK_SIZE)


def test_snapshot_of_volume_without_snapshot_reserve_is_refused(make_group: MakeGroup) -> None:
    group = make_group(100)
    group.create_volume("v", PAGE_SIZE, snap_reserve=0)
    before = state(group)
    with pytest.raises(InvalidRequest, match="snapshot reserve"):
        group.create_snapshot("v")
    with pytest.raises(InvalidRequest):
        group.create_snapshot("v", "named")
    assert state(group) == before
    assert group.resize_volume("v", 2 * PAGE_SIZE) is None  # growing takes no snapshot then
    assert snapshot_names(group, "v") == []


# --------------------------------------------------------- refused for space


def test_refused_snapshot_reserve_change_changes_nothing(make_group: MakeGroup) -> None:
    group = make_group(30)
    group.create_volume("v", 10 * PAGE_SIZE)
    before = state(group)
    with pytest.raises(NoSpace):
        group.configure_volume("v", snap_reserve=250)
    assert state(group) == before
    group.configure_volume("v", snap_reserve=200)
    assert free(group) == 0


def test_refused_thin_min_reserve_change_changes_nothing(make_group: MakeGroup) -> None:
    group = make_group(20)
    group.create_volume("t", 10 * PAGE_SIZE, thin=True, snap_reserve=0)
    group.create_volume("fill", 17 * PAGE_SIZE, snap_reserve=0)
    before = state(group)
    with pytest.raises(NoSpace):
        group.configure_volume("t", thin_min_reserve=100)
    assert state(group) == before
    assert free(group) == 2


def test_refused_growth_takes_no_snapshot(make_group: MakeGroup) -> None:
    group = make_group(20)
    group.create_volume("v", 5 * PAGE_SIZE)
    group.device("v").write(0, data(1))
    before, stored = state(group), contents(group)
    with pytest.raises(NoSpace):
        group.resize_volume("v", 11 * PAGE_SIZE)
    assert state(group) == before
    assert contents(group) == stored


def test_refused_clone_changes_nothing(make_group: MakeGroup) -> None:
    group = make_group(20)
    group.create_volume("v", 6 * PAGE_SIZE)
    group.device("v").write(0, data(1))
    group.create_snapshot("v", "s")
    before = state(group)
    with pytest.raises(NoSpace):
        group.clone_volume("v", "c")
    with pytest.raises(NoSpace):
        group.clone_volume("v", "c", snapshot="s")
    assert state(group) == before


@pytest.mark.parametrize(("old_pages", "new_pages", "reserve"), [(10, 100, 10), (100, 5, 5)])
def test_resized_thin_volume_reserve_follows_the_new_size(
    make_group: MakeGroup, old_pages: int, new_pages: int, reserve: int
) -> None:
    # The reserve is at least the minimum (10%) of the new size after growing,
    # and never more than the volume after shrinking.
    group = make_group(1000)
    volume = group.create_volume("t", old_pages * PAGE_SIZE, thin=True)
    group.set_volume_online("t", False)
    group.resize_volume("t", new_pages * PAGE_SIZE, snapshot=False)
    assert volume.pages == new_pages
    assert volume.reserve_pages == reserve
    assert group.space.thin_min_reserve(volume) <= volume.reserve_pages <= volume.pages
    assert free(group) == 1000 - 2 * reserve


def test_restore_to_a_larger_snapshot_needs_pool_space(make_group: MakeGroup) -> None:
    group = make_group(8)
    group.create_volume("v", 3 * PAGE_SIZE)
    group.create_snapshot("v", "s")
    group.set_volume_online("v", False)
    group.resize_volume("v", PAGE_SIZE, snapshot=False)
    group.create_volume("w", 2 * PAGE_SIZE)
    assert free(group) == 2
    # Either refused for want of space, or done within it; never overcommitted.
    with contextlib.suppress(NoSpace):
        group.restore_volume("v", "s")
    assert free(group) >= 0


def test_thick_volume_write_never_runs_out_of_space(make_group: MakeGroup) -> None:
    # A thick volume has all its pages reserved; with its snapshot reserve
    # (100%) it owns the whole pool. A snapshot write and then a volume write to
    # the same page must both fit.
    group = make_group(2)
    group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    device.write(0, data(1))
    group.create_snapshot("v", "s")
    group.set_snapshot_online("v", "s", True)
    group.device("v", "s").write(8, data(2))
    device.write(16, data(3))
    assert device.read(16, 8) == data(3)


def test_failed_snapshot_write_deletes_no_snapshot(make_group: MakeGroup) -> None:
    # s1 and s2 both hold the old page 0, which fills the one-page reserve. A
    # write to s2 cannot fit even with s1 gone (s2 still holds that page), so
    # it is refused; refusing it must not delete s1 on the way.
    group = make_group(100)
    group.create_volume("v", 2 * PAGE_SIZE, snap_reserve=50)
    device = group.device("v")
    device.write(0, data(1))
    device.write(SPP, data(2))
    group.create_snapshot("v", "s1")
    group.create_snapshot("v", "s2")
    device.write(0, data(3))
    group.set_snapshot_online("v", "s2", True)
    before, stored = state(group), contents(group)
    with pytest.raises(SpaceExhausted):
        group.device("v", "s2").write(SPP, data(4))
    assert snapshot_names(group, "v") == ["s1", "s2"]
    assert contents(group) == stored
    assert state(group) == before


def test_unmap_keeps_snapshot_reserve_within_pool(make_group: MakeGroup) -> None:
    # Pages a snapshot keeps after the volume unmaps them count against the
    # snapshot reserve, as written-over pages do: the policy must apply and the
    # pool must never be overcommitted.
    group = make_group(4)
    group.create_volume("v", 2 * PAGE_SIZE, snap_reserve=50)
    group.create_volume("w", PAGE_SIZE, snap_reserve=0)
    assert free(group) == 0
    device = group.device("v")
    device.write(0, data(1))
    device.write(SPP, data(2))
    group.create_snapshot("v", "s1")
    device.unmap(0, 2 * SPP)
    volume = group.volume("v")
    assert group.space.snapshot_in_use(volume, group.snapshots_of(volume)) <= group.space.snapshot_reserve(volume)
    assert free(group) >= 0


def test_snapshot_write_is_charged_only_for_a_new_snapshot_page(make_group: MakeGroup) -> None:
    # The volume's write to page 0 moves the old page to the snapshot (one
    # snapshot page). The snapshot's own write then replaces that page with
    # another: still one snapshot page, which the usage figure must say, or
    # the next write needlessly deletes the snapshot.
    group = make_group(100)
    group.create_volume("v", 2 * PAGE_SIZE)  # snapshot reserve 100%: two pages
    device = group.device("v")
    device.write(0, data(1))
    device.write(SPP, data(2))
    group.create_snapshot("v", "s")
    group.set_snapshot_online("v", "s", True)
    device.write(8, data(3))
    group.device("v", "s").write(16, data(4))
    volume = group.volume("v")
    snapshots = group.snapshots_of(volume)
    assert group.space.snapshot_in_use(volume, snapshots) == SpaceAccounting(group.tables).snapshot_in_use(
        volume, snapshots
    )
    device.write(SPP + 8, data(5))  # a second snapshot page: within the reserve
    assert snapshot_names(group, "v") == ["s"]
    assert read_raw(group, "v", "s", 16 * SECTOR_SIZE, CHUNK_SIZE) == data(4)
