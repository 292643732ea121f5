"""Volume collections and snapshot collections (array_sim/collection_admin.py): membership and its
limits, one snapshot of every volume at one point in time, refusals that change nothing, online,
offline, restore and delete as one, and what deleting volumes, snapshots and collections leaves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, time
from pathlib import Path

import pytest

from array_sim import AlreadyExists, Group, InvalidRequest, NoSpace, NotFound
from array_sim.collection_admin import COLLECTION_VOLUMES_MOST, COLLECTIONS_MOST
from array_sim.member_admin import FILE_LAYOUT
from array_sim.units import PAGE_SIZE, SECTOR_SIZE, GiB, MiB

from .helpers import state

WHEN = datetime(2024, 5, 6, 7, 8, 9)
COLLECTION_TABLES = ("collections", "collection_volumes", "snapcols", "snapcol_snapshots", "schedules")


def block(tag: int) -> bytes:
    return bytes([tag]) * SECTOR_SIZE


def full_state(group: Group) -> tuple[object, ...]:
    db = group.catalog.db
    return state(group), {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall()) for t in COLLECTION_TABLES}


def refused(group: Group, error: type[Exception], request: Callable[[], object], match: str) -> None:
    """``request()`` raises ``error`` and leaves the group, collections included, as it was."""
    before = full_state(group)
    with pytest.raises(error, match=match):
        request()
    assert full_state(group) == before


def snapshot_block(group: Group, volume: str, snapshot: str) -> bytes:
    """Block 0 of an offline snapshot, read through its page table."""
    return group.tables.read(group.snapshot(volume, snapshot).map_id, 0, 0, SECTOR_SIZE)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    """Volumes a, b and c of one page each in a file-backed member; collection ``db`` of a and b."""
    group = Group.init(tmp_path / "group", member_size=GiB, clock=lambda: WHEN, raid_policy=FILE_LAYOUT)
    for name in ("a", "b", "c"):
        group.create_volume(name, PAGE_SIZE)
    group.create_collection("db", ["a", "b"], "the database")
    yield group
    group.close()


def test_collections_list_their_volumes_in_order(group: Group) -> None:
    collection = group.collection("db")
    assert (collection.name, collection.description) == ("db", "the database")
    assert [v.name for v in group.collection_volumes(collection)] == ["a", "b"]
    group.add_to_collection("db", "c")
    group.remove_from_collection("db", "a")
    group.add_to_collection("db", "a")
    assert [v.name for v in group.collection_volumes(group.collection("db"))] == ["b", "c", "a"]
    group.create_collection("logs", ["c"])
    assert [c.name for c in group.collections()] == ["db", "logs"]
    assert [c.name for c in group.collections_of(group.volume("c"))] == ["db", "logs"]  # a volume may be in several
    group.rename_collection("logs", "journal")
    group.set_collection_description("journal", "redo")
    assert group.collection("journal").description == "redo"
    group.delete_collection("journal")
    assert [c.name for c in group.collections()] == ["db"]


def test_collection_requests_that_are_refused_change_nothing(group: Group) -> None:
    refused(group, AlreadyExists, lambda: group.create_collection("db", ["c"]), "already exists")
    refused(group, InvalidRequest, lambda: group.create_collection("x", []), "at least one volume")
    refused(group, NotFound, lambda: group.create_collection("x", ["a", "nosuch"]), "nosuch does not exist")
    refused(group, InvalidRequest, lambda: group.create_collection("x", ["a", "c", "a"]), "a is named more")
    refused(group, InvalidRequest, lambda: group.create_collection("bad/name", ["a"]), "collection name")
    refused(group, AlreadyExists, lambda: group.add_to_collection("db", "a"), "already in collection db")
    refused(group, NotFound, lambda: group.remove_from_collection("db", "c"), "not in collection db")
    group.remove_from_collection("db", "b")
    refused(group, InvalidRequest, lambda: group.remove_from_collection("db", "a"), "only volume")
    refused(group, NotFound, lambda: group.delete_collection("nosuch"), "Collection nosuch does not exist")
    refused(group, AlreadyExists, lambda: group.rename_collection("db", "db"), "already exists")


def test_the_limits_of_volumes_per_collection_and_collections_per_group(group: Group) -> None:
    names = [f"v{i}" for i in range(COLLECTION_VOLUMES_MOST + 1)]
    for name in names:
        group.create_volume(name, MiB, thin=True)
    refused(group, InvalidRequest, lambda: group.create_collection("big", names), f"at most {COLLECTION_VOLUMES_MOST}")
    group.create_collection("big", names[:-1])
    refused(group, InvalidRequest, lambda: group.add_to_collection("big", names[-1]), "the most a collection")
    for i in range(COLLECTIONS_MOST - 2):
        group.create_collection(f"c{i}", ["a"])
    refused(
        group, InvalidRequest, lambda: group.create_collection("one-more", ["a"]), f"{COLLECTIONS_MOST} collections"
    )


def test_a_snapshot_collection_is_one_snapshot_of_every_volume_at_one_time(group: Group) -> None:
    group.device("a").write(0, block(1))
    group.device("b").write(0, block(2))
    group.create_snapshot("a")  # a's own counter: its next snapshot is .2
    taken = group.create_snapshot_collection("db", description="nightly")
    assert taken.name == "db-2024-05-06-07:08:09.1" and taken.complete and taken.made_with == 2
    snaps = group.snapcol_snapshots(taken)
    assert [s.name for s in snaps] == ["a-2024-05-06-07:08:09.2", "b-2024-05-06-07:08:09.1"]
    assert {s.created for s in snaps} == {taken.created} == {"2024-05-06T07:08:09"}
    assert all(s.description == "nightly" and not s.online for s in snaps)
    assert all(group.snapshot_collection_of(s) == taken for s in snaps)
    assert group.create_snapshot_collection("db").name == "db-2024-05-06-07:08:09.2"
    assert group.create_snapshot_collection("db", "by-hand").name == "by-hand"
    refused(group, AlreadyExists, lambda: group.create_snapshot_collection("db", "by-hand"), "already exists")
    group.device("a").write(0, block(3))
    assert snapshot_block(group, "a", snaps[0].name) == block(1)
    assert snapshot_block(group, "b", snaps[1].name) == block(2)
    assert group.snapshot_collection_of(group.snapshot("a", "a-2024-05-06-07:08:09.1")) is None
    assert [s.name for s in group.snapshot_collections("db")] == [taken.name, "db-2024-05-06-07:08:09.2", "by-hand"]
    assert any("Snapshot collection db-2024-05-06-07:08:09.1 of collection db created" in e[2] for e in group.events())


def test_the_clock_names_and_stamps_each_snapshot_collection(tmp_path: Path) -> None:
    times = iter([datetime(2026, 1, 5, 16, 0, 0), datetime(2026, 1, 5, 16, 0, 1)])
    with Group.init(tmp_path / "g", member_size=GiB, raid_policy=FILE_LAYOUT) as group:
        group.create_volume("a", MiB, thin=True)
        group.create_volume("b", MiB, thin=True)
        group.create_collection("db", ["a", "b"])
        group.clock = lambda: next(times)  # read once per snapshot collection, not per snapshot
        taken = group.create_snapshot_collection("db")
        assert taken.name == "db-2026-01-05-16:00:00.1"
        names = [s.name for s in group.snapcol_snapshots(taken)]
        assert names == ["a-2026-01-05-16:00:00.1", "b-2026-01-05-16:00:00.1"]


def test_a_snapshot_collection_that_cannot_be_whole_is_not_taken(group: Group, tmp_path: Path) -> None:
    group.configure_volume("b", snap_reserve=0)
    refused(group, InvalidRequest, lambda: group.create_snapshot_collection("db"), "b has no snapshot reserve")
    group.configure_volume("b", snap_reserve=100)
    # A failure half-way (b's default snapshot name already taken) rolls a's snapshot back too.
    group.create_snapshot("b", "b-2024-05-06-07:08:09.2")
    refused(group, AlreadyExists, lambda: group.create_snapshot_collection("db"), "already exists")
    group.create_collection("empty", ["c"])
    group.set_volume_online("c", False)
    group.delete_volume("c")
    refused(group, InvalidRequest, lambda: group.create_snapshot_collection("empty"), "has no volumes")
    refused(group, NotFound, lambda: group.create_snapshot_collection("nosuch"), "does not exist")


def test_a_volume_on_a_member_that_is_off_is_refused_with_the_rest(tmp_path: Path) -> None:
    with Group.init(tmp_path / "g", member_size=GiB, clock=lambda: WHEN, raid_policy=FILE_LAYOUT) as group:
        group.create_pool("far")
        group.add_member("member-2", GiB, "far", raid_policy=FILE_LAYOUT)
        group.create_volume("a", PAGE_SIZE)
        group.create_volume("b", PAGE_SIZE, pool="far")
        group.device("b").write(0, block(2))
        group.create_collection("db", ["a", "b"])
        taken = group.create_snapshot_collection("db")
        group.power_member("member-2", False)
        refused(group, InvalidRequest, lambda: group.create_snapshot_collection("db"), "b is offline")
        refused(group, InvalidRequest, lambda: group.set_snapshot_collection_online("db", taken.name, True), "offline")
        group.power_member("member-2", True)
        group.set_snapshot_collection_online("db", taken.name, True)


def test_online_offline_and_delete_act_on_the_whole_set(group: Group) -> None:
    taken = group.create_snapshot_collection("db")
    group.set_snapshot_collection_online("db", taken.name, True)
    assert all(s.online for s in group.snapcol_snapshots(taken))
    group.set_snapshot_collection_online("db", taken.name, False)
    assert not any(s.online for s in group.snapcol_snapshots(taken))
    names = [s.name for s in group.snapcol_snapshots(taken)]
    group.delete_snapshot_collection("db", taken.name)
    assert group.snapshot_collections("db") == []
    assert not group.snapshots_of(group.volume("a")) and not group.snapshots_of(group.volume("b")), names
    assert any(f"Snapshot collection {taken.name} of collection db deleted" in e[2] for e in group.events())
    refused(group, NotFound, lambda: group.delete_snapshot_collection("db", taken.name), "does not exist")


def test_restore_as_one_brings_every_volume_back_and_keeps_what_they_held(group: Group) -> None:
    group.device("a").write(0, block(1))
    group.device("b").write(0, block(2))
    taken = group.create_snapshot_collection("db")
    group.device("a").write(0, block(3))
    group.device("b").write(0, block(4))
    refused(group, InvalidRequest, lambda: group.restore_snapshot_collection("db", taken.name), "must be offline")
    group.set_volume_online("a", False)
    refused(group, InvalidRequest, lambda: group.restore_snapshot_collection("db", taken.name), "must be offline")
    group.set_volume_online("b", False)
    group.set_snapshot_collection_online("db", taken.name, True)
    refused(group, InvalidRequest, lambda: group.restore_snapshot_collection("db", taken.name), "must be offline")
    group.set_snapshot_collection_online("db", taken.name, False)
    saved = group.restore_snapshot_collection("db", taken.name)
    assert saved.name == "db-2024-05-06-07:08:09.2" and saved.complete
    assert saved.description == f"before restore from {taken.name}"
    for name in ("a", "b"):
        group.set_volume_online(name, True)
    assert group.device("a").read(0, 1) == block(1) and group.device("b").read(0, 1) == block(2)
    before = {group.volumes[s.volume_id].name: snapshot_block(group, group.volumes[s.volume_id].name, s.name)
              for s in group.snapcol_snapshots(saved)}  # fmt: skip
    assert before == {"a": block(3), "b": block(4)}
    assert any(f"restored from snapshot collection {taken.name}" in e[2] for e in group.events())


def test_restore_to_larger_thick_volumes_must_fit_the_pool_together(tmp_path: Path) -> None:
    with Group.init(tmp_path / "g", member_size=6 * PAGE_SIZE, clock=lambda: WHEN, raid_policy=FILE_LAYOUT) as group:
        for name in ("a", "b"):
            group.create_volume(name, 2 * PAGE_SIZE, snap_reserve=0)
            group.configure_volume(name, snap_reserve=50)
        group.create_collection("db", ["a", "b"])
        taken = group.create_snapshot_collection("db")
        for name in ("a", "b"):
            group.set_volume_online(name, False)
            group.resize_volume(name, PAGE_SIZE, snapshot=False)
        # Each would fit alone (two pages free), not both: nothing is restored.
        group.configure_volume("a", snap_reserve=100)
        refused(group, NoSpace, lambda: group.restore_snapshot_collection("db", taken.name), "earlier sizes")


def test_an_incomplete_snapshot_collection_is_shown_so_and_not_restored(group: Group) -> None:
    taken = group.create_snapshot_collection("db")
    first, second = group.snapcol_snapshots(taken)
    group.delete_snapshot("a", first.name)
    left = group.snapshot_collection("db", taken.name)
    assert not left.complete and left.snapshot_ids == [second.id]
    for name in ("a", "b"):
        group.set_volume_online(name, False)
    refused(group, InvalidRequest, lambda: group.restore_snapshot_collection("db", taken.name), "1 of its 2")
    group.set_snapshot_collection_online("db", taken.name, True)  # acts on what is left
    assert group.snapshot("b", second.name).online
    group.delete_snapshot("b", second.name)  # the last one: the snapshot collection goes with it
    assert group.snapshot_collections("db") == []


def test_a_deleted_volume_leaves_its_collections_and_snapshot_collections(group: Group) -> None:
    taken = group.create_snapshot_collection("db")
    group.set_volume_online("a", False)
    group.delete_volume("a")
    assert group.collection("db").volume_ids == [group.volume("b").id]
    left = group.snapshot_collection("db", taken.name)
    assert not left.complete and [group.snapshots[i].name for i in left.snapshot_ids] == ["b-2024-05-06-07:08:09.1"]


def test_a_deleted_collection_keeps_the_snapshots_and_drops_its_schedules(group: Group) -> None:
    taken = group.create_snapshot_collection("db")
    collection_id = group.collection("db").id
    db = group.catalog.db
    with group.catalog.transaction():  # a schedule of the collection, as schedule_admin stores one
        db.execute(
            "INSERT INTO schedules (volume_id, collection_id, name, kind, start, end_date, end_time, repeat_minutes,"
            " every_days, max_keep, enabled, next_run, created) VALUES (NULL, ?, 's', 'daily', ?, '', '', 0, 1, 10,"
            " 1, '', '')",
            (collection_id, datetime.combine(WHEN.date(), time(1)).isoformat()),
        )
    snaps = [s.name for s in group.snapcol_snapshots(taken)]
    group.delete_collection("db")
    assert [s.name for s in group.snapshots.values()] == snaps  # ordinary snapshots now
    assert all(group.snapshot_collection_of(s) is None for s in group.snapshots.values())
    assert db.execute("SELECT count(*) FROM schedules").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM snapcols").fetchone() == (0,)


def test_collections_survive_a_reopen(tmp_path: Path) -> None:
    with Group.init(tmp_path / "g", member_size=GiB, clock=lambda: WHEN, raid_policy=FILE_LAYOUT) as group:
        group.create_volume("a", MiB, thin=True)
        group.create_volume("b", MiB, thin=True)
        group.create_collection("db", ["b", "a"])
        taken = group.create_snapshot_collection("db")
    with Group.open(tmp_path / "g", clock=lambda: WHEN) as group:
        assert [v.name for v in group.collection_volumes(group.collection("db"))] == ["b", "a"]
        assert group.snapshot_collection("db", taken.name) == taken
        assert group.create_snapshot_collection("db").name == "db-2024-05-06-07:08:09.2"
