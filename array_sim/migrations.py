"""Catalog schema migrations: every group made by an earlier array-sim opens in this one.

Rules of this module:

1. The catalog's schema version is ``PRAGMA user_version``. Release 0.1 kept
   it as ``group_params.schema_version = '1'`` instead (user_version 0), so a
   catalog with user_version 0 reads its version from there.
2. ``MIGRATIONS`` is an ordered table: step N turns a version N-1 catalog into
   version N. Each step runs in one transaction together with the new
   user_version, so a crash mid-migration leaves the previous version intact.
3. A new catalog is made by the version 1 script followed by every step, so
   new groups and migrated groups have the same schema by construction (and
   every step is exercised by every test that makes a group).
4. A catalog newer than ``SCHEMA_VERSION`` is refused: an older array-sim
   cannot know what the newer tables mean.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .errors import InvalidRequest
from .member_ports import assign_ports

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "schema_version", "migrate"]


def _members_describe_their_storage(db: sqlite3.Connection) -> None:
    """Version 2: a member's storage is described, not just located (RAID over disk files).

    ``layout`` is ``file`` (one sparse file, as release 0.1 made), ``unconfigured``
    (an array added to the group whose RAID policy is not set yet) or a RAID
    policy name; ``store`` is then the member's directory of disk files.
    """
    db.execute("ALTER TABLE members ADD COLUMN layout TEXT NOT NULL DEFAULT 'file'")
    db.execute("ALTER TABLE members ADD COLUMN disks INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE members ADD COLUMN disk_size INTEGER NOT NULL DEFAULT 0")
    db.execute("DELETE FROM group_params WHERE key = 'schema_version'")


def _events_have_codes(db: sqlite3.Connection) -> None:
    """Version 3: events carry the member they concern (or '' for the group)."""
    db.execute("ALTER TABLE events ADD COLUMN member TEXT NOT NULL DEFAULT ''")


def _volumes_spread_over_members(db: sqlite3.Connection) -> None:
    """Version 4: several members per pool (``pool``, ``spreads``, ``data_moves``).

    ``volume_members`` is each volume's spread (the members its pages may go to, in order);
    existing volumes get the first three configured members of their pool (groups before version 4
    had one). ``snapshots.offline_reason`` is ``volumes.offline_reason`` for snapshots. ``members.powered`` is 0 while the simulator has a member powered off. ``moves`` holds
    the data moves under way (a member vacated or moved to another pool, a volume moved to another
    pool), so they resume after a restart.
    """
    db.execute(
        "CREATE TABLE volume_members (volume_id INTEGER NOT NULL REFERENCES volumes(id),"
        " member_id INTEGER NOT NULL REFERENCES members(id), position INTEGER NOT NULL,"
        " PRIMARY KEY (volume_id, member_id)) WITHOUT ROWID"
    )
    db.execute("ALTER TABLE members ADD COLUMN powered INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE snapshots ADD COLUMN offline_reason TEXT NOT NULL DEFAULT ''")
    db.execute(
        "CREATE TABLE moves (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, member_id INTEGER REFERENCES members(id),"
        " volume_id INTEGER REFERENCES volumes(id), pool_id INTEGER NOT NULL REFERENCES pools(id),"
        " total_pages INTEGER NOT NULL, started TEXT NOT NULL)"
    )
    for volume_id, pool_id in db.execute("SELECT id, pool_id FROM volumes").fetchall():
        members = db.execute(
            "SELECT id FROM members WHERE pool_id = ? AND layout != 'unconfigured' ORDER BY id LIMIT 3", (pool_id,)
        ).fetchall()
        for position, (member_id,) in enumerate(members):
            db.execute("INSERT INTO volume_members VALUES (?, ?, ?)", (volume_id, member_id, position))


def _members_have_ports(db: sqlite3.Connection) -> None:
    """Version 5: each member's Ethernet ports and their addresses (``member_ports``)."""
    db.execute(
        "CREATE TABLE member_ports (member_id INTEGER NOT NULL REFERENCES members(id), eth INTEGER NOT NULL,"
        " address TEXT NOT NULL UNIQUE, up INTEGER NOT NULL, PRIMARY KEY (member_id, eth)) WITHOUT ROWID"
    )
    row = db.execute("SELECT value FROM group_params WHERE key = 'group_ip'").fetchone()
    for (member_id,) in db.execute("SELECT id FROM members ORDER BY id").fetchall():
        assign_ports(db, member_id, row[0] if row else "127.0.0.1")


def _objects_keep_their_serial(db: sqlite3.Connection) -> None:
    """Version 6: volumes and snapshots keep the serial their IQN was made with (``naming.unit_identity``:
    VPD 80h and 83h come from it, the same whichever front end serves the object). Objects made
    before have it only inside their IQN, which is read once here."""
    for table in ("volumes", "snapshots"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN serial INTEGER NOT NULL DEFAULT 0")
        for row_id, iqn in db.execute(f"SELECT id, iqn FROM {table}").fetchall():
            db.execute(f"UPDATE {table} SET serial = ? WHERE id = ?", (int(iqn.split("-")[4], 16), row_id))


def _administration_accounts(db: sqlite3.Connection) -> None:
    """Version 7: the group's administration accounts (``accounts``): who may log in over SSH.

    ``password`` is a salted hash (never the password); ``public_key`` the one SSH key an account
    may have ('' for none). A group made before has no account yet: the next ``serve`` makes
    ``grpadmin`` with a generated password and logs it (a migration has nobody to tell a password
    to); ``array-sim init`` makes it for a new group.
    """
    db.execute(
        "CREATE TABLE accounts (name TEXT PRIMARY KEY, password TEXT NOT NULL, kind TEXT NOT NULL,"
        " enabled INTEGER NOT NULL, description TEXT NOT NULL, public_key TEXT NOT NULL,"
        " key_description TEXT NOT NULL, created TEXT NOT NULL)"
    )


def _volume_collections(db: sqlite3.Connection) -> None:
    """Version 8: volume collections and their snapshot collections (``collection_admin``, ``snapcol_admin``).

    ``collection_volumes`` lists each collection's volumes (``position``: the order they joined); a
    volume deleted leaves its collections (the cascade). ``snapcols`` are the snapshot collections,
    ``made_with`` how many snapshots each was taken with; ``snapcol_snapshots`` puts a snapshot in
    its snapshot collection: a snapshot deleted leaves it, and a snapshot collection left with no
    snapshot goes too (the trigger). Deleting a collection deletes its snapshot collections, not
    their snapshots.
    """
    db.execute(
        "CREATE TABLE collections (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL,"
        " snapcol_counter INTEGER NOT NULL, created TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE collection_volumes (collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,"
        " volume_id INTEGER NOT NULL REFERENCES volumes(id) ON DELETE CASCADE, position INTEGER NOT NULL,"
        " PRIMARY KEY (collection_id, volume_id)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX collection_volumes_volume ON collection_volumes (volume_id)")
    db.execute(
        "CREATE TABLE snapcols (id INTEGER PRIMARY KEY,"
        " collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE, name TEXT NOT NULL,"
        " description TEXT NOT NULL, made_with INTEGER NOT NULL, created TEXT NOT NULL, UNIQUE (collection_id, name))"
    )
    db.execute(
        "CREATE TABLE snapcol_snapshots (snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,"
        " snapcol_id INTEGER NOT NULL REFERENCES snapcols(id) ON DELETE CASCADE)"
    )
    db.execute("CREATE INDEX snapcol_snapshots_snapcol ON snapcol_snapshots (snapcol_id)")
    db.execute(
        "CREATE TRIGGER snapcol_emptied AFTER DELETE ON snapcol_snapshots"
        " WHEN NOT EXISTS (SELECT 1 FROM snapcol_snapshots WHERE snapcol_id = OLD.snapcol_id)"
        " BEGIN DELETE FROM snapcols WHERE id = OLD.snapcol_id; END"
    )


def _snapshot_schedules(db: sqlite3.Connection) -> None:
    """Version 9: snapshot schedules (``schedule_admin``) of a volume or of a volume collection.

    ``next_run`` is a schedule's first run not yet taken (ISO, '' for none). ``schedule_snapshots``
    records which schedule made a snapshot (``max-keep`` counts those); ``snapcol_id`` is the snapshot
    collection a collection schedule's run made. Collections are referred to by id only, not by a
    foreign key, so this step needs nothing of theirs (it may run before or after theirs).
    """
    db.execute(
        "CREATE TABLE schedules (id INTEGER PRIMARY KEY,"
        " volume_id INTEGER REFERENCES volumes(id) ON DELETE CASCADE, collection_id INTEGER,"
        " name TEXT NOT NULL, kind TEXT NOT NULL, start TEXT NOT NULL, end_date TEXT NOT NULL,"
        " end_time TEXT NOT NULL, repeat_minutes INTEGER NOT NULL, every_days INTEGER NOT NULL,"
        " max_keep INTEGER NOT NULL, enabled INTEGER NOT NULL, next_run TEXT NOT NULL, created TEXT NOT NULL,"
        " CHECK ((volume_id IS NULL) != (collection_id IS NULL)))"
    )
    db.execute("CREATE UNIQUE INDEX schedules_name ON schedules (ifnull(volume_id, -collection_id), name)")
    db.execute(
        "CREATE TABLE schedule_snapshots (snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,"
        " schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE, snapcol_id INTEGER)"
    )
    db.execute("CREATE INDEX schedule_snapshots_schedule ON schedule_snapshots (schedule_id)")


#: (version reached, what the step does); applied in order.
MIGRATIONS: tuple[tuple[int, Callable[[sqlite3.Connection], None]], ...] = (
    (2, _members_describe_their_storage),
    (3, _events_have_codes),
    (4, _volumes_spread_over_members),
    (5, _members_have_ports),
    (6, _objects_keep_their_serial),
    (7, _administration_accounts),
    (8, _volume_collections),
    (9, _snapshot_schedules),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]


def schema_version(db: sqlite3.Connection) -> int:
    """The catalog's schema version (rule 1)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    try:
        row = db.execute("SELECT value FROM group_params WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is None:
        raise InvalidRequest("the catalog has no schema version; it was not made by array-sim")
    return int(row[0])


def migrate(db: sqlite3.Connection, where: str) -> int:
    """Bring the catalog to ``SCHEMA_VERSION``, one transaction per step; returns the version found."""
    found = schema_version(db)
    if found > SCHEMA_VERSION:
        raise InvalidRequest(
            f"the group in {where} has catalog schema {found}, made by a newer array-sim; this one reads up to "
            f"{SCHEMA_VERSION}"
        )
    for version, step in MIGRATIONS:
        if version <= found:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            db.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return found
