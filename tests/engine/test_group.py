"""Group management rules: lifecycle and lock, names and IQNs, volume and snapshot operations,
access records, CHAP users and CLI settings (research/ps-cli.md 2.4).

Every refused request is checked to leave the catalog, the in-memory records and the data as
they were.
"""

from __future__ import annotations

import functools
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from array_sim import (
    AlreadyExists,
    DeviceOffline,
    Group,
    GroupLocked,
    InvalidRequest,
    NotFound,
)
from array_sim.access_admin import CLI_SETTINGS
from array_sim.units import CHUNK_SIZE, PAGE_SIZE, SECTOR_SIZE, GiB, MiB

from .helpers import state

SPP = PAGE_SIZE // SECTOR_SIZE
WHEN = datetime(2024, 5, 6, 7, 8, 9)
IQN_RE = re.compile(r"^iqn\.2001-05\.com\.equallogic:0-8a0906-([0-9a-f]{9})-([0-9a-f]{16})-(.+)$")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    group = Group.init(tmp_path / "group", member_size=4 * GiB, clock=lambda: WHEN)
    yield group
    group.close()


@functools.lru_cache(maxsize=8)  # seeded, so the same bytes each call (bytes: immutable)
def data(tag: int, length: int = CHUNK_SIZE) -> bytes:
    return random.Random(tag).randbytes(length)


def read(group: Group, volume: str, snapshot: str | None = None, lba: int = 0, count: int = 8) -> bytes:
    """Read a volume or snapshot, setting it online for the read if it is offline."""
    record = group.volume(volume) if snapshot is None else group.snapshot(volume, snapshot)
    if record.online:
        return group.device(volume, snapshot).read(lba, count)
    page, in_page = divmod(lba * SECTOR_SIZE, PAGE_SIZE)
    return group.tables.read(record.map_id, page, in_page, count * SECTOR_SIZE)


def refused(group: Group, error: type[Exception], request: Callable[[], object], match: str | None = None) -> None:
    """``request()`` raises ``error`` and leaves the group as it was."""
    before = state(group)
    with pytest.raises(error, match=match):
        request()
    assert state(group) == before


# ----------------------------------------------------------------- lifecycle


def test_init_makes_default_pool_with_one_member(tmp_path: Path) -> None:
    with Group.init(tmp_path, name="eql", member_size=GiB, group_ip="10.1.2.3") as group:
        assert group.name == "eql"
        assert group.group_ip == "10.1.2.3"
        assert list(group.pools.values()) == ["default"]
        assert group.members() == [("member-1", "default", 68, 68)]
        assert 0 <= group.group_id < 1 << 36
        disks = sorted((tmp_path / "members" / "member-1").glob("disk-*.img"))
        assert len(disks) == 12  # a RAID 6 member of 12 disks: 9 data + 2 parity + 1 spare hold 68 pages
        (size,) = {disk.stat().st_size for disk in disks}
        assert size % 65536 == 0 and 9 * (size - 65536) < GiB <= 9 * size
    with Group.open(tmp_path) as group:
        assert group.name == "eql" and group.members() == [("member-1", "default", 68, 68)]


def test_init_refuses_an_existing_group_and_a_tiny_member(tmp_path: Path) -> None:
    Group.init(tmp_path / "a", member_size=GiB).close()
    with pytest.raises(InvalidRequest, match="already exists"):
        Group.init(tmp_path / "a", member_size=GiB)
    with pytest.raises(InvalidRequest, match="15MB"):
        Group.init(tmp_path / "b", member_size=10 * MiB)


def test_open_of_a_directory_without_a_group(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no group"):
        Group.open(tmp_path)


def test_second_open_in_the_same_process_is_locked_out(tmp_path: Path) -> None:
    group = Group.init(tmp_path, member_size=GiB)
    with pytest.raises(GroupLocked):
        Group.open(tmp_path)
    group.create_volume("v", PAGE_SIZE)  # the first holder is unaffected
    group.close()
    with Group.open(tmp_path) as group:
        assert [v.name for v in group.volume_list()] == ["v"]


def test_open_from_another_process_is_locked_out(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom array_sim import Group, GroupLocked\n"
        "try:\n    Group.open(sys.argv[1]).close()\n"
        "except GroupLocked:\n    print('locked')\nelse:\n    print('opened')\n"
    )
    group = Group.init(tmp_path, member_size=GiB)
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "locked", run.stderr
    group.close()
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "opened", run.stderr


def test_group_held_by_another_process_is_locked_out(tmp_path: Path) -> None:
    Group.init(tmp_path, member_size=GiB).close()
    code = (
        "import sys\nfrom array_sim import Group\n"
        "g = Group.open(sys.argv[1])\nprint('ready', flush=True)\nsys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(GroupLocked):
            Group.open(tmp_path)
    finally:
        holder.communicate("", timeout=60)
    Group.open(tmp_path).close()


def test_catalog_and_data_survive_reopen(tmp_path: Path) -> None:
    group = Group.init(tmp_path, member_size=GiB, clock=lambda: WHEN)
    group.create_volume("v", 2 * PAGE_SIZE, thin=True, description="d")
    group.device("v").write(SPP - 1, data(1))
    group.create_snapshot("v")
    group.create_access("v", initiator="iqn.1993-08.org.debian:01:abc")
    group.create_chap_user("alice", "0123456789abc")
    group.set_cli_setting("grpadmin", "paging", "off")
    before = state(group)
    group.close()
    with Group.open(tmp_path, clock=lambda: WHEN) as group:
        assert state(group) == before
        assert group.device("v").read(SPP - 1, 8) == data(1)


def test_events_are_kept_in_order(group: Group) -> None:
    group.log_event("INFO", "one")
    group.log_event("WARNING", "two")
    group.log_event("ERROR", "three", "member-1")
    assert group.events()[-3:] == [
        (WHEN.isoformat(), "INFO", "one", ""),
        (WHEN.isoformat(), "WARNING", "two", ""),
        (WHEN.isoformat(), "ERROR", "three", "member-1"),
    ]


def test_group_parameters(group: Group) -> None:
    group.set_group_param("name", "eql2")
    group.set_group_param("group_ip", "10.0.0.9")
    assert (group.name, group.group_ip) == ("eql2", "10.0.0.9")


# ------------------------------------------------------------- pools, members


def test_pools_and_members(group: Group) -> None:
    group.create_pool("fast")
    group.add_member("member-2", GiB, "fast")
    assert ("member-2", "fast", 68, 68) in group.members()
    assert group.pool_free(group.pool_id("fast")) == 68
    refused(group, InvalidRequest, lambda: group.create_pool("fast"), "already exists")
    refused(group, InvalidRequest, lambda: group.add_member("member-2", GiB, "default"), "already exists")
    refused(group, NotFound, lambda: group.add_member("member-3", GiB, "slow"), "does not exist")
    refused(group, NotFound, lambda: group.create_volume("v", PAGE_SIZE, pool="slow"), "does not exist")
    refused(group, InvalidRequest, lambda: group.create_pool("bad name"), "Invalid pool name")
    volume = group.create_volume("v", PAGE_SIZE, pool="fast")
    assert group.pool_volumes(group.pool_id("fast")) == [volume]
    assert group.pool_free(group.pool_id("fast")) == 66


# ------------------------------------------------------------- IQNs and names


def test_volume_iqn_has_the_array_shape(group: Group) -> None:
    first = IQN_RE.match(group.create_volume("vol-A1", PAGE_SIZE).iqn)
    second = IQN_RE.match(group.create_volume("vol-b2", PAGE_SIZE).iqn)
    assert first and second
    assert first.group(1) == second.group(1) == f"{group.group_id:09x}"  # the group part
    assert first.group(2) != second.group(2)  # a serial per object
    assert (first.group(3), second.group(3)) == ("vol-a1", "vol-b2")


def test_snapshot_iqn_has_the_array_shape_and_its_own_serial(group: Group) -> None:
    volume = group.create_volume("v", PAGE_SIZE)
    snapshot = group.create_snapshot("v", "snap-1")
    match = IQN_RE.match(snapshot.iqn)
    assert match and match.group(3) == "snap-1"
    assert match.group(2) != IQN_RE.match(volume.iqn).group(2)  # type: ignore[union-attr]


def test_rename_keeps_the_iqn(group: Group) -> None:
    iqn = group.create_volume("old", PAGE_SIZE).iqn
    group.device("old").write(0, data(1))
    snapshot_iqn = group.create_snapshot("old", "s").iqn
    group.rename_volume("old", "new")
    assert group.volume("new").iqn == iqn
    assert group.device("new").read(0, 8) == data(1)
    assert [s.name for s in group.snapshots_of(group.volume("new"))] == ["s"]
    refused(group, NotFound, lambda: group.volume("old"), "does not exist")
    group.rename_snapshot("new", "s", "t")
    assert group.snapshot("new", "t").iqn == snapshot_iqn


def test_rename_errors_change_nothing(group: Group) -> None:
    group.create_volume("a", PAGE_SIZE)
    group.create_volume("b", PAGE_SIZE)
    group.create_snapshot("a", "s1")
    group.create_snapshot("a", "s2")
    refused(group, AlreadyExists, lambda: group.rename_volume("a", "b"), "already exists")
    refused(group, InvalidRequest, lambda: group.rename_volume("a", "bad name"), "Invalid volume name")
    refused(group, NotFound, lambda: group.rename_volume("zz", "c"), "does not exist")
    refused(group, AlreadyExists, lambda: group.rename_snapshot("a", "s1", "s2"), "already exists")
    refused(group, NotFound, lambda: group.rename_snapshot("a", "s9", "s3"), "does not exist")
    refused(group, InvalidRequest, lambda: group.rename_snapshot("a", "s1", "-x"), "Invalid snapshot name")


def test_default_snapshot_names_are_volume_and_time(group: Group) -> None:
    group.create_volume("vol1", PAGE_SIZE)
    first = group.create_snapshot("vol1")
    second = group.create_snapshot("vol1", description="nightly")
    assert first.name == "vol1-2024-05-06-07:08:09.1"
    assert second.name == "vol1-2024-05-06-07:08:09.2"
    assert second.description == "nightly"
    assert first.created == "2024-05-06T07:08:09"
    assert not first.online and not first.read_only  # created offline and read-write
    assert group.create_snapshot("vol1", "mine").name == "mine"
    assert group.create_snapshot("vol1").name == "vol1-2024-05-06-07:08:09.4"


def test_clock_is_read_at_each_snapshot(tmp_path: Path) -> None:
    now = [datetime(2024, 1, 1)]
    with Group.init(tmp_path, member_size=GiB, clock=lambda: now[0]) as group:
        group.create_volume("v", PAGE_SIZE)
        now[0] = datetime(2024, 12, 31, 23, 59, 58)
        assert group.create_snapshot("v").name == "v-2024-12-31-23:59:58.1"
        now[0] = datetime(2025, 2, 3, 4, 5, 6)
        assert group.create_snapshot("v").name == "v-2025-02-03-04:05:06.2"
        assert group.snapshot("v", "v-2025-02-03-04:05:06.2").created == "2025-02-03T04:05:06"


def test_snapshot_name_errors_change_nothing(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, data(1))
    group.create_snapshot("v", "s")
    refused(group, AlreadyExists, lambda: group.create_snapshot("v", "s"), "already exists")
    refused(group, InvalidRequest, lambda: group.create_snapshot("v", "a b"), "Invalid snapshot name")
    refused(group, InvalidRequest, lambda: group.create_snapshot("v", "s" * 128), "Invalid snapshot name")
    refused(group, NotFound, lambda: group.create_snapshot("nope"), "does not exist")
    # The refused requests rolled back in memory too: the next default name, and I/O, are as before.
    assert group.create_snapshot("v").name == "v-2024-05-06-07:08:09.2"
    group.device("v").write(0, data(2))
    assert read(group, "v", "s") == data(1)
    assert group.device("v").read(0, 8) == data(2)


# ------------------------------------------------------------- volume create


def test_create_volume_records_its_settings(group: Group) -> None:
    volume = group.create_volume(
        "v", GiB, thin=True, description="d", online=False, read_only=True,
        snap_reserve=150, snap_warn=20, snap_depletion="borrow", thin_min_reserve=30, thin_warn=70, thin_max=90,
    )  # fmt: skip
    assert (volume.size_bytes, volume.pages) == (GiB, 69)
    assert volume.thin and not volume.online and volume.read_only and not volume.multihost
    assert (volume.snap_reserve, volume.snap_warn, volume.snap_depletion) == (150, 20, "borrow")
    assert (volume.thin_min_reserve, volume.thin_warn, volume.thin_max) == (30, 70, 90)
    assert volume.reserve_pages == 21
    assert volume.alias == "v" and volume.description == "d"
    assert volume.created == "2024-05-06T07:08:09"


@pytest.mark.parametrize(
    ("name", "size", "settings", "error", "match"),
    [
        ("bad name", PAGE_SIZE, {}, InvalidRequest, "Invalid volume name"),
        ("-lead", PAGE_SIZE, {}, InvalidRequest, "Invalid volume name"),
        ("under_score", PAGE_SIZE, {}, InvalidRequest, "Invalid volume name"),
        ("x" * 64, PAGE_SIZE, {}, InvalidRequest, "Invalid volume name"),
        ("v", 0, {}, InvalidRequest, "greater than zero"),
        ("v", -PAGE_SIZE, {}, InvalidRequest, "greater than zero"),
        ("v", PAGE_SIZE, {"colour": "red"}, InvalidRequest, "Unknown volume setting"),
        ("v", PAGE_SIZE, {"snap_reserve": 10001}, InvalidRequest, "Invalid value"),
        ("v", PAGE_SIZE, {"snap_depletion": "panic"}, InvalidRequest, "Invalid value"),
        ("v", PAGE_SIZE, {"thin_max": 0}, InvalidRequest, "Invalid value"),
        ("v", PAGE_SIZE, {"multihost": "yes"}, InvalidRequest, "Invalid value"),
        ("v", PAGE_SIZE, {"thin_warn": 80, "thin_max": 70}, InvalidRequest, "warning limit"),
        ("taken", PAGE_SIZE, {}, AlreadyExists, "already exists"),
    ],
)
def test_create_volume_errors_change_nothing(
    group: Group, name: str, size: int, settings: dict[str, object], error: type[Exception], match: str
) -> None:
    group.create_volume("taken", PAGE_SIZE)
    refused(group, error, lambda: group.create_volume(name, size, **settings), match)


def test_volume_defaults(group: Group) -> None:
    defaults = group.volume_defaults()
    assert defaults == {
        "snap_reserve": 100, "snap_warn": 10, "snap_depletion": "delete-oldest",
        "thin_min_reserve": 10, "thin_warn": 60, "thin_max": 100,
    }  # fmt: skip
    group.set_volume_default("snap_reserve", 200)
    group.set_volume_default("snap_depletion", "volume-offline")
    volume = group.create_volume("v", PAGE_SIZE)
    assert (volume.snap_reserve, volume.snap_depletion) == (200, "volume-offline")
    refused(group, InvalidRequest, lambda: group.set_volume_default("colour", 1), "Unknown volume default")
    refused(group, InvalidRequest, lambda: group.set_volume_default("snap_warn", 101), "Invalid value")


def test_configure_volume(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.configure_volume("v", description="new", alias="al", multihost=True, snap_warn=5)
    volume = group.volume("v")
    assert (volume.description, volume.alias, volume.multihost, volume.snap_warn) == ("new", "al", True, 5)
    refused(group, InvalidRequest, lambda: group.configure_volume("v", thin_max=50), "warning limit")
    refused(group, InvalidRequest, lambda: group.configure_volume("v", size=1), "Unknown volume setting")
    refused(group, InvalidRequest, lambda: group.configure_volume("v", thin_warn=0), "Invalid value")
    refused(group, NotFound, lambda: group.configure_volume("w", snap_warn=5), "does not exist")


# ------------------------------------------------------------ volume delete


def test_delete_needs_the_volume_offline(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, data(1))
    refused(group, InvalidRequest, lambda: group.delete_volume("v"), "offline")
    assert group.device("v").read(0, 8) == data(1)


def test_delete_takes_snapshots_and_access_records_and_frees_space(group: Group) -> None:
    free = group.pool_free(1)
    members = group.members()
    group.create_volume("v", 2 * PAGE_SIZE)
    group.device("v").write(0, data(1, 2 * PAGE_SIZE))
    group.create_snapshot("v", "s")
    group.device("v").write(0, data(2))
    group.create_access("v", ipaddress="10.0.0.*")
    group.set_volume_online("v", False)
    group.delete_volume("v")
    assert group.volume_list() == [] and group.snapshots == {}
    assert group.catalog.db.execute("SELECT COUNT(*) FROM access_records").fetchone()[0] == 0
    assert group.tables.phys == {}
    assert (group.pool_free(1), group.members()) == (free, members)
    refused(group, NotFound, lambda: group.delete_volume("v"), "does not exist")
    group.create_volume("v", PAGE_SIZE)  # the name can be used again, with fresh data
    assert group.device("v").read(0, SPP) == bytes(PAGE_SIZE)
    assert group.access_records("v") == []


def test_delete_of_a_clone_source_keeps_the_clone(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, data(1))
    group.clone_volume("v", "c")
    group.set_volume_online("v", False)
    group.delete_volume("v")
    assert group.device("c").read(0, 8) == data(1)


# --------------------------------------------------------------- resize


def test_grow_is_online_and_takes_a_snapshot_first(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(SPP - 8, data(1))
    taken = group.resize_volume("v", 2 * PAGE_SIZE)
    assert taken is not None and taken.name == "v-2024-05-06-07:08:09.1"
    assert taken.pages == 1 and taken.size_bytes == PAGE_SIZE
    volume = group.volume("v")
    assert volume.online and volume.pages == 2
    device = group.device("v")
    assert device.num_blocks == 2 * SPP
    assert device.read(SPP - 8, 8) == data(1)
    assert device.read(SPP, SPP) == bytes(PAGE_SIZE)  # the new space reads zeros
    device.write(SPP, data(2))
    assert read(group, "v", taken.name, SPP - 8, 8) == data(1)


def test_grow_without_snapshot(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    assert group.resize_volume("v", 100 * MiB, snapshot=False) is None
    volume = group.volume("v")
    assert (volume.size_bytes, volume.pages) == (100 * MiB, 7)
    assert group.snapshots_of(volume) == []


def test_shrink_needs_the_volume_offline(group: Group) -> None:
    group.create_volume("v", 3 * PAGE_SIZE)
    refused(group, InvalidRequest, lambda: group.resize_volume("v", PAGE_SIZE), "offline")


def test_shrink_drops_the_pages_past_the_new_end(group: Group) -> None:
    group.create_volume("v", 3 * PAGE_SIZE)
    device = group.device("v")
    device.write(SPP - 8, data(1, 2 * CHUNK_SIZE))
    device.write(2 * SPP, data(2))
    group.set_volume_online("v", False)
    taken = group.resize_volume("v", PAGE_SIZE, snapshot=False)
    assert taken is None
    group.set_volume_online("v", True)
    assert device.num_blocks == SPP
    assert device.read(SPP - 8, 8) == data(1, 2 * CHUNK_SIZE)[:CHUNK_SIZE]
    group.resize_volume("v", 3 * PAGE_SIZE, snapshot=False)
    assert device.read(SPP, 2 * SPP) == bytes(2 * PAGE_SIZE)  # shrunk-away data does not come back


def test_resize_errors_change_nothing(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    refused(group, InvalidRequest, lambda: group.resize_volume("v", 0), "greater than zero")
    refused(group, NotFound, lambda: group.resize_volume("w", PAGE_SIZE), "does not exist")


# ------------------------------------------------------------ clone, restore


def test_clone_of_a_volume_is_independent(group: Group) -> None:
    source = group.create_volume("v", 2 * PAGE_SIZE, thin=True)
    group.device("v").write(0, data(1, 2 * PAGE_SIZE))
    clone = group.clone_volume("v", "c", description="copy")
    assert clone.online and not clone.read_only and clone.thin
    assert clone.description == "copy"
    assert clone.pages == source.pages and clone.pool_id == source.pool_id
    assert clone.iqn != source.iqn and clone.iqn.endswith("-c")
    group.device("c").write(SPP - 1, data(2, 2 * SECTOR_SIZE))
    group.device("v").write(10, data(3, SECTOR_SIZE))
    original = data(1, 2 * PAGE_SIZE)
    assert group.device("v").read(SPP - 1, 2) == original[PAGE_SIZE - SECTOR_SIZE : PAGE_SIZE + SECTOR_SIZE]
    assert group.device("c").read(10, 1) == original[10 * SECTOR_SIZE : 11 * SECTOR_SIZE]
    assert group.device("c").read(SPP - 1, 2) == data(2, 2 * SECTOR_SIZE)
    assert group.device("v").read(10, 1) == data(3, SECTOR_SIZE)
    assert group.snapshots_of(clone) == []


def test_clone_of_a_snapshot_has_the_snapshot_data_and_size(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, data(1))
    group.create_snapshot("v", "s")
    group.resize_volume("v", 3 * PAGE_SIZE, snapshot=False)
    group.device("v").write(0, data(2))
    clone = group.clone_volume("v", "c", snapshot="s")
    assert clone.pages == 1
    assert group.device("c").read(0, 8) == data(1)
    group.device("c").write(0, data(3))
    assert read(group, "v", "s") == data(1)
    assert group.device("v").read(0, 8) == data(2)


def test_clone_of_a_written_snapshot(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, data(1))
    group.create_snapshot("v", "s")
    group.set_snapshot_online("v", "s", True)
    group.device("v", "s").write(1, data(2, SECTOR_SIZE))
    group.clone_volume("v", "c", snapshot="s")
    expected = bytearray(data(1))
    expected[SECTOR_SIZE : 2 * SECTOR_SIZE] = data(2, SECTOR_SIZE)
    assert group.device("c").read(0, 8) == expected
    assert group.device("v").read(0, 8) == data(1)


def test_clone_errors_change_nothing(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.create_volume("c", PAGE_SIZE)
    refused(group, AlreadyExists, lambda: group.clone_volume("v", "c"), "already exists")
    refused(group, NotFound, lambda: group.clone_volume("w", "d"), "does not exist")
    refused(group, NotFound, lambda: group.clone_volume("v", "d", snapshot="s"), "does not exist")


def test_restore_brings_back_the_snapshot_and_leaves_a_snapshot_of_the_replaced_data(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE, snap_reserve=500)
    device = group.device("v")
    device.write(0, data(1))
    group.create_snapshot("v", "s")
    group.resize_volume("v", 2 * PAGE_SIZE, snapshot=False)
    device.write(0, data(2))
    device.write(SPP, data(3))
    group.set_volume_online("v", False)
    saved = group.restore_volume("v", "s")
    assert saved.name == "v-2024-05-06-07:08:09.2"
    assert [s.name for s in group.snapshots_of(group.volume("v"))] == ["s", saved.name]
    assert not group.volume("v").online  # it stays offline until set online
    with pytest.raises(DeviceOffline):
        device.read(0, 1)
    group.set_volume_online("v", True)
    assert device.num_blocks == SPP  # the snapshot's size comes back too
    assert device.read(0, 8) == data(1)
    assert (read(group, "v", saved.name), read(group, "v", saved.name, SPP)) == (data(2), data(3))
    assert saved.pages == 2
    device.write(0, data(4))
    assert read(group, "v", "s") == data(1)


def test_restore_needs_volume_and_snapshot_offline(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.device("v").write(0, data(1))
    group.create_snapshot("v", "s")
    group.device("v").write(0, data(2))
    refused(group, InvalidRequest, lambda: group.restore_volume("v", "s"), "offline")
    group.set_volume_online("v", False)
    group.set_snapshot_online("v", "s", True)
    refused(group, InvalidRequest, lambda: group.restore_volume("v", "s"), "offline")
    group.set_snapshot_online("v", "s", False)
    refused(group, NotFound, lambda: group.restore_volume("v", "t"), "does not exist")
    assert read(group, "v") == data(2)


def test_refused_restore_rolls_back_completely(group: Group) -> None:
    # The automatic snapshot is refused (no snapshot reserve left) inside the restore's transaction.
    group.create_volume("v", PAGE_SIZE)
    device = group.device("v")
    device.write(0, data(1))
    group.create_snapshot("v", "s")
    device.write(0, data(2))
    group.configure_volume("v", snap_reserve=0)
    group.set_volume_online("v", False)
    refused(group, InvalidRequest, lambda: group.restore_volume("v", "s"), "snapshot reserve")
    group.set_volume_online("v", True)
    assert device.read(0, 8) == data(2)
    device.write(8, data(3))  # the device made before the rollback still works
    assert device.read(8, 8) == data(3)
    assert read(group, "v", "s") == data(1)


def test_snapshot_online_read_only_description_delete(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.create_snapshot("v", "s")
    group.set_snapshot_online("v", "s", True)
    group.set_snapshot_read_only("v", "s", True)
    group.set_snapshot_description("v", "s", "kept")
    snapshot = group.snapshot("v", "s")
    assert snapshot.online and snapshot.read_only and snapshot.description == "kept"
    group.delete_snapshot("v", "s")
    refused(group, NotFound, lambda: group.snapshot("v", "s"), "does not exist")
    refused(group, NotFound, lambda: group.delete_snapshot("v", "s"), "does not exist")
    refused(group, NotFound, lambda: group.set_snapshot_online("v", "s", True), "does not exist")


def test_device_of_missing_objects(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    refused(group, NotFound, lambda: group.device("w"), "does not exist")
    refused(group, NotFound, lambda: group.device("v", "s"), "does not exist")


# ------------------------------------------------------------ access records


def test_access_records(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    first = group.create_access("v", initiator="iqn.1993-08.org.debian:01:2227dab76162")
    second = group.create_access("v", ipaddress="*.*.*.*", chap_user="alice", apply_to="volume")
    third = group.create_access("v", ipaddress="10.1.2.3", auth_method="chap", apply_to="snapshot")
    assert [r.number for r in group.access_records("v")] == [1, 2, 3]
    assert (first.initiator, first.ipaddress, first.auth_method, first.apply_to) == (
        "iqn.1993-08.org.debian:01:2227dab76162", "", "none", "both",
    )  # fmt: skip
    assert (second.chap_user, second.auth_method) == ("alice", "chap")  # a CHAP user implies chap
    assert (third.ipaddress, third.apply_to) == ("10.1.2.3", "snapshot")
    group.delete_access("v", 2)
    assert [r.number for r in group.access_records("v")] == [1, 3]
    assert group.create_access("v", ipaddress="192.168.*.*").number == 4
    group.create_volume("w", PAGE_SIZE)
    assert group.create_access("w", initiator="iqn.x").number == 1  # numbered per volume


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, InvalidRequest, "needs an initiator"),
        ({"ipaddress": "10.0.0.256"}, InvalidRequest, "Invalid IP address"),
        ({"ipaddress": "10.0.0"}, InvalidRequest, "Invalid IP address"),
        ({"ipaddress": "host"}, InvalidRequest, "Invalid IP address"),
        ({"initiator": "iqn.x", "apply_to": "all"}, InvalidRequest, "apply-to"),
        ({"initiator": "iqn.x", "auth_method": "radius"}, InvalidRequest, "authentication method"),
    ],
)
def test_access_record_errors_change_nothing(
    group: Group, kwargs: dict[str, str], error: type[Exception], match: str
) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.create_access("v", initiator="iqn.a")
    refused(group, error, lambda: group.create_access("v", **kwargs), match)


def test_access_record_lookup_errors(group: Group) -> None:
    group.create_volume("v", PAGE_SIZE)
    group.create_access("v", initiator="iqn.a")
    refused(group, NotFound, lambda: group.delete_access("v", 2), "does not exist")
    refused(group, NotFound, lambda: group.delete_access("w", 1), "does not exist")
    refused(group, NotFound, lambda: group.create_access("w", initiator="iqn.a"), "does not exist")
    refused(group, NotFound, lambda: group.access_records("w"), "does not exist")


# ---------------------------------------------------------------- CHAP users


def test_chap_users(group: Group) -> None:
    alice = group.create_chap_user("alice", "0123456789ab")
    bob = group.create_chap_user("bob@example.com", enabled=False)
    assert (alice.name, alice.password, alice.enabled) == ("alice", "0123456789ab", True)
    assert len(bob.password) == 16 and bob.password.isalnum() and not bob.enabled
    assert [u.name for u in group.chap_users()] == ["alice", "bob@example.com"]
    group.update_chap_user("alice", password="a-much-longer-secret", enabled=False)
    assert (group.chap_user("alice").password, group.chap_user("alice").enabled) == ("a-much-longer-secret", False)
    group.update_chap_user("alice", enabled=True)
    assert group.chap_user("alice").password == "a-much-longer-secret"
    group.delete_chap_user("alice")
    assert [u.name for u in group.chap_users()] == ["bob@example.com"]


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        (lambda g: g.create_chap_user("bob", "0123456789ab"), AlreadyExists, "already exists"),
        (lambda g: g.create_chap_user("bad name", "0123456789ab"), InvalidRequest, "Invalid CHAP user name"),
        (lambda g: g.create_chap_user("", "0123456789ab"), InvalidRequest, "Invalid CHAP user name"),
        (lambda g: g.create_chap_user("carol", "short"), InvalidRequest, "12 to 255"),
        (lambda g: g.create_chap_user("carol", "x" * 256), InvalidRequest, "12 to 255"),
        (lambda g: g.update_chap_user("bob", password="short"), InvalidRequest, "12 to 255"),
        (lambda g: g.update_chap_user("carol", enabled=False), NotFound, "does not exist"),
        (lambda g: g.delete_chap_user("carol"), NotFound, "does not exist"),
        (lambda g: g.chap_user("carol"), NotFound, "does not exist"),
    ],
)
def test_chap_user_errors_change_nothing(
    group: Group, request_: Callable[[Group], object], error: type[Exception], match: str
) -> None:
    group.create_chap_user("bob", "0123456789ab")
    refused(group, error, lambda: request_(group), match)


# -------------------------------------------------------------- CLI settings


def test_cli_settings_are_per_account_and_persist(tmp_path: Path) -> None:
    with Group.init(tmp_path, member_size=GiB) as group:
        assert group.cli_settings("grpadmin") == CLI_SETTINGS
        assert CLI_SETTINGS["paging"] == "on" and CLI_SETTINGS["confirmation"] == "on"
        group.set_cli_setting("grpadmin", "paging", "off")
        group.set_cli_setting("grpadmin", "formatoutput", "off")
        group.set_cli_setting("grpadmin", "paging", "off")
    with Group.open(tmp_path) as group:
        settings = group.cli_settings("grpadmin")
        assert (settings["paging"], settings["formatoutput"], settings["events"]) == ("off", "off", "on")
        assert group.cli_settings("other") == CLI_SETTINGS
        group.set_cli_setting("grpadmin", "paging", "on")
        assert group.cli_settings("grpadmin")["paging"] == "on"


def test_cli_setting_errors_change_nothing(group: Group) -> None:
    refused(group, InvalidRequest, lambda: group.set_cli_setting("grpadmin", "colour", "on"), "Unknown CLI setting")
    refused(group, InvalidRequest, lambda: group.set_cli_setting("grpadmin", "paging", "yes"), "use on or off")
