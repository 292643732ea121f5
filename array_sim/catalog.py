"""The group catalog: every object of the group and every page table, in sqlite.

Rules of this module:

1. Every change happens inside ``Catalog.transaction()``; a failure rolls the
   whole change back, so the catalog on disk is always consistent.
2. The database runs in WAL mode with ``synchronous=NORMAL``: a committed
   transaction is in the OS page cache when ``commit`` returns, so it survives
   ``kill -9`` of the process; ``checkpoint()`` (called by ``flush``) makes it
   survive power loss too (sqlite.org/wal.html, "synchronous=NORMAL").
3. Reference counts are not stored: they are derived from ``page_map`` and
   ``phys_pages.backing_id`` when the group opens, so they can never disagree
   with the tables.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .migrations import migrate

__all__ = ["Catalog"]

#: The catalog as release 0.1 made it (schema version 1); later versions are
#: reached by the steps of migrations.py, for new and old groups alike.
_SCHEMA_1 = """
CREATE TABLE group_params (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pools (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE members (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    pool_id INTEGER NOT NULL REFERENCES pools(id),
    capacity_pages INTEGER NOT NULL, store TEXT NOT NULL);
CREATE TABLE volumes (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    pool_id INTEGER NOT NULL REFERENCES pools(id),
    map_id INTEGER NOT NULL UNIQUE,
    size_bytes INTEGER NOT NULL, pages INTEGER NOT NULL,
    thin INTEGER NOT NULL, thin_min_reserve INTEGER NOT NULL,
    thin_warn INTEGER NOT NULL, thin_max INTEGER NOT NULL,
    reserve_pages INTEGER NOT NULL,
    snap_reserve INTEGER NOT NULL, snap_warn INTEGER NOT NULL,
    snap_depletion TEXT NOT NULL,
    description TEXT NOT NULL, alias TEXT NOT NULL, online INTEGER NOT NULL, offline_reason TEXT NOT NULL,
    read_only INTEGER NOT NULL, multihost INTEGER NOT NULL,
    iqn TEXT NOT NULL, snap_counter INTEGER NOT NULL, created TEXT NOT NULL);
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    volume_id INTEGER NOT NULL REFERENCES volumes(id),
    name TEXT NOT NULL, map_id INTEGER NOT NULL UNIQUE,
    size_bytes INTEGER NOT NULL, pages INTEGER NOT NULL,
    created TEXT NOT NULL, online INTEGER NOT NULL,
    read_only INTEGER NOT NULL, description TEXT NOT NULL, iqn TEXT NOT NULL,
    UNIQUE (volume_id, name));
CREATE TABLE phys_pages (
    id INTEGER PRIMARY KEY,
    member_id INTEGER NOT NULL REFERENCES members(id),
    slot INTEGER NOT NULL,
    backing_id INTEGER REFERENCES phys_pages(id),
    UNIQUE (member_id, slot));
CREATE TABLE page_map (
    map_id INTEGER NOT NULL, page_index INTEGER NOT NULL,
    phys_id INTEGER NOT NULL REFERENCES phys_pages(id),
    PRIMARY KEY (map_id, page_index)) WITHOUT ROWID;
CREATE INDEX page_map_phys ON page_map (phys_id);
CREATE TABLE access_records (
    id INTEGER PRIMARY KEY,
    volume_id INTEGER NOT NULL REFERENCES volumes(id),
    number INTEGER NOT NULL,
    initiator TEXT NOT NULL, ipaddress TEXT NOT NULL,
    auth_method TEXT NOT NULL, chap_user TEXT NOT NULL, apply_to TEXT NOT NULL,
    UNIQUE (volume_id, number));
CREATE TABLE chap_users (
    name TEXT PRIMARY KEY, password TEXT NOT NULL, enabled INTEGER NOT NULL);
CREATE TABLE cli_settings (
    account TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (account, key));
CREATE TABLE events (
    id INTEGER PRIMARY KEY, time TEXT NOT NULL,
    level TEXT NOT NULL, message TEXT NOT NULL);
"""


class Catalog:
    """A connection to the group's sqlite catalog."""

    FILE_NAME = "catalog.sqlite3"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        self._after_commit: list[Callable[[], None]] = []
        #: Called after a rolled-back transaction, to resync in-memory state.
        self.on_rollback: Callable[[], None] | None = None

    @classmethod
    def create(cls, path: Path) -> Catalog:
        """Create a new, empty catalog file at ``path``."""
        catalog = cls(path)
        catalog.db.executescript("BEGIN;" + _SCHEMA_1 + "INSERT INTO group_params VALUES ('schema_version', '1');COMMIT;")
        migrate(catalog.db, str(path.parent))
        return catalog

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block as one transaction; nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            self._after_commit.clear()
            if self.on_rollback is not None:
                self.on_rollback()
            raise
        self._depth = 0
        self.db.execute("COMMIT")
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction commits (at once outside one)."""
        if self._depth:
            self._after_commit.append(callback)
        else:
            callback()

    def param(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM group_params WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_param(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO group_params VALUES (?, ?)", (key, value))

    def next_id(self, counter: str) -> int:
        """Take the next value of a named counter kept in ``group_params``."""
        with self.transaction():
            value = int(self.param(counter, "0") or 0) + 1
            self.set_param(counter, str(value))
        return value

    def checkpoint(self) -> None:
        """Copy the WAL into the database with fsyncs, for durability against power loss."""
        self.db.execute("PRAGMA wal_checkpoint(FULL)")

    def close(self) -> None:
        self.db.close()
