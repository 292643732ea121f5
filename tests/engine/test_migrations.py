"""Catalog migrations: a group made by every earlier schema version opens, with its data intact."""

from __future__ import annotations

import sqlite3
import tarfile
from pathlib import Path

import pytest

from array_sim import Group, InvalidRequest
from array_sim.catalog import Catalog
from array_sim.migrations import MIGRATIONS, SCHEMA_VERSION, schema_version
from array_sim.units import SECTOR_SIZE

FIXTURES = Path(__file__).parent / "fixtures"


def _unpack(name: str, into: Path) -> Path:
    with tarfile.open(FIXTURES / name) as archive:
        archive.extractall(into, filter="data")
    return into


@pytest.fixture
def group_v1(tmp_path: Path) -> Path:
    """A group made by release 0.1 (schema 1): thin vol1 with snapshot snap1, thick1, an access record."""
    return _unpack("group-schema-1.tar.gz", tmp_path / "group")


def test_release_0_1_group_opens_with_its_data(group_v1: Path) -> None:
    with Group.open(group_v1) as group:
        assert schema_version(group.catalog.db) == SCHEMA_VERSION
        assert group.name == "group-v1"
        vol1 = group.device("vol1")
        assert vol1.read(0, 8) == b"C" * 4096
        assert vol1.read(40000, 1) == b"B" * SECTOR_SIZE
        group.set_snapshot_online("vol1", "snap1", True)
        snap = group.device("vol1", "snap1")
        assert snap.read(0, 8) == b"A" * 4096
        assert group.device("thick1").read(100, 2) == b"D" * 1024
        assert group.volume("vol1").description == "made by release 0.1"
        assert [m[0] for m in group.members()] == ["member-1"]
        member_id = group.member_admin.member_id("member-1")
        for name in ("vol1", "thick1"):  # step 4: each volume's spread is its pool's member
            assert group.spreads.of(group.volume(name).id).members == [member_id]
            assert group.members_holding(group.volume(name)) == ["member-1"]
        for obj in (group.volume("vol1"), group.volume("thick1"), group.snapshot("vol1", "snap1")):
            # step 6: the serial kept beside the IQN gives the identity release 0.1 served (VPD 80h/83h)
            identity = group.unit_identity(obj)
            assert identity.serial == obj.iqn.split("-")[3] + obj.iqn.split("-")[4]
            assert identity.naa == bytes.fromhex("6090a0" + identity.serial.rjust(26, "0"))
        vol1.write(8, b"E" * 512)
    with Group.open(group_v1) as group:
        assert group.device("vol1").read(8, 1) == b"E" * 512


def test_new_catalog_equals_migrated_catalog(group_v1: Path, tmp_path: Path) -> None:
    """Rule 3 of migrations.py: one schema whichever way the catalog was made."""

    def shape(db: sqlite3.Connection) -> list[tuple[str, str]]:
        return sorted(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))

    Group.open(group_v1).close()
    new = Catalog.create(tmp_path / "new.sqlite3")
    old = Catalog(group_v1 / Catalog.FILE_NAME)
    try:
        assert shape(new.db) == shape(old.db)
        assert schema_version(new.db) == schema_version(old.db) == SCHEMA_VERSION
    finally:
        new.close()
        old.close()


@pytest.mark.parametrize("stop", [version for version, _ in MIGRATIONS[:-1]])
def test_every_intermediate_version_opens(group_v1: Path, stop: int) -> None:
    """A catalog left at each intermediate version (as an older release would leave it) migrates on."""
    db = sqlite3.connect(group_v1 / Catalog.FILE_NAME, isolation_level=None)
    for version, step in MIGRATIONS:
        if version > stop:
            break
        step(db)
        db.execute(f"PRAGMA user_version = {version}")
    db.close()
    with Group.open(group_v1) as group:
        assert schema_version(group.catalog.db) == SCHEMA_VERSION
        assert group.device("vol1").read(0, 1) == b"C" * 512


def test_a_newer_catalog_is_refused_and_left_alone(group_v1: Path) -> None:
    Group.open(group_v1).close()
    path = group_v1 / Catalog.FILE_NAME
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(InvalidRequest, match="newer array-sim"):
        Group.open(group_v1)
    assert path.read_bytes() == before
    # the lock was released: a second attempt is refused the same way, not as "in use"
    with pytest.raises(InvalidRequest, match="newer array-sim"):
        Group.open(group_v1)


def test_a_failed_step_leaves_the_previous_version(group_v1: Path) -> None:
    """Rule 2: a step and its version bump are one transaction."""
    path = group_v1 / Catalog.FILE_NAME
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("ALTER TABLE members ADD COLUMN layout TEXT")  # makes step 2 fail half-way
    db.close()
    with pytest.raises(sqlite3.OperationalError):
        Group.open(group_v1)
    db = sqlite3.connect(path)
    assert schema_version(db) == 1
    db.close()


def test_a_member_without_raid_can_still_be_made(tmp_path: Path) -> None:
    """``array-sim init --raid-policy file``: one sparse file, as release 0.1 made (the benchmarks' baseline)."""
    with Group.init(tmp_path / "g", member_size=150 << 20, raid_policy="file") as group:
        assert (tmp_path / "g" / "members" / "member-1.store").stat().st_size == 10 * (15 << 20)
        group.create_volume("v", 30 << 20)
        group.device("v").write(3, b"x" * 512)
        (report,) = group.member_admin.reports()
        assert (report.raid_policy, report.capacity_pages, report.health.raid_status) == ("file", 10, "ok")
    with Group.open(tmp_path / "g") as group:
        assert group.device("v").read(3, 1) == b"x" * 512
