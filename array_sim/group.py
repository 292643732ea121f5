"""The group on disk: open or create it, and hold its pools, members, volumes and snapshots.

A group directory holds::

    catalog.sqlite3          every object and page table (see catalog.py)
    members/<name>/          a member: its disk files, RAID superblock and dirty-stripe map
                             (array_sim/raid), and chunks.map: which 4 KiB chunks of each
                             page slot hold data (chunk_map.py)
    members/<name>.store     a member made by release 0.1: one sparse file, no RAID
                             (member_store.FileStore), with members/<name>.chunks
    group.lock               held (flock) by the one process that has the group open

Volume and snapshot operations are in ``volume_admin.py`` and
``snapshot_admin.py`` (collections: ``collection_admin.py``); this module keeps the state they share and
gives every device the allocation policy that every write goes through (``allocation_policy.py``).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from .access_admin import AccessAdmin
from .allocation_policy import AllocationPolicy
from .catalog import Catalog
from .errors import GroupLocked, InvalidRequest, NotFound
from .capacity_balancer import CapacityBalancer
from .collection_admin import CollectionAdmin
from .data_moves import DataMoves
from .member_admin import DEFAULT_DISKS, DEFAULT_RAID_POLICY, MemberAdmin
from .member_states import MemberStates
from .migrations import migrate
from .naming import UnitIdentity, check_text, unit_identity
from .pages import PageTables
from .pool import DEFAULT_POOL, Placement, pool_named
from .pool_admin import PoolAdmin
from .records import Snapshot, Volume, load_rows
from .schedule_admin import ScheduleAdmin
from .schedule_runner import ScheduleRunner
from .snapshot_admin import SnapshotAdmin
from .space import SpaceAccounting
from .spreads import Spreads
from .units import PAGE_SIZE, GiB
from .volume_admin import VolumeAdmin
from .volume_device import VolumeDevice

__all__ = ["Group", "default_group_dir"]

DEFAULT_MEMBER_SIZE = 100 * GiB
#: Group parameters that are free text, and their row of ``naming.TEXT_LIMITS``.
_GROUP_TEXT_FIELDS = {"description": "description", "target_auth_username": "chap_user"}


def default_group_dir() -> Path:
    """``$ARRAY_SIM_DIR``, else the per-user data directory (XDG)."""
    if os.environ.get("ARRAY_SIM_DIR"):
        return Path(os.environ["ARRAY_SIM_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "array-sim" / "group"


R = TypeVar("R", Volume, Snapshot)


def _merge(current: dict[int, R], rows: list[R]) -> dict[int, R]:
    """Rows by id, reusing (and updating) the record objects already held."""
    merged: dict[int, R] = {}
    for row in rows:
        record = current.get(row.id)
        if record is not None:
            record.__dict__.update(row.__dict__)
            row = record
        merged[row.id] = row
    return merged


class Group(
    VolumeAdmin, SnapshotAdmin, AccessAdmin, PoolAdmin, MemberStates, DataMoves, CapacityBalancer, ScheduleAdmin,
    ScheduleRunner, CollectionAdmin, AllocationPolicy,
):
    """An open PS Series group. Only one process may have a group open at a time."""

    def __init__(self, directory: Path, clock: Callable[[], datetime] = datetime.now) -> None:
        self.directory = Path(directory)
        self.clock = clock
        self._lock_fd = os.open(self.directory / "group.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise GroupLocked(f"the group in {self.directory} is open in another process") from None
        self.catalog = Catalog(self.directory / Catalog.FILE_NAME)
        try:
            migrate(self.catalog.db, str(self.directory))
        except BaseException:
            self.catalog.close()
            os.close(self._lock_fd)
            raise
        self.placement = Placement()
        self.pools: dict[int, str] = dict(self.catalog.db.execute("SELECT id, name FROM pools"))
        #: Called with ``(level, message, member)`` after each event is committed (``serve`` logs them).
        self.event_listeners: list[Callable[[str, str, str], None]] = []
        self.member_admin = MemberAdmin(self.directory, self.catalog, self.placement, self.pools, self.log_event)
        chunk_maps = self.member_admin.open_all()
        self.tables = PageTables(self.catalog, self.placement, chunk_maps)
        self.space = SpaceAccounting(self.tables)
        self.spreads = Spreads(self.catalog, self.placement)
        self.volumes: dict[int, Volume] = {}
        self.snapshots: dict[int, Snapshot] = {}
        self.moves = {}
        self._load()
        self.catalog.on_rollback = self._load
        self.member_admin.on_offline = self._member_offline
        self.member_admin.check_offline()

    def _load(self) -> None:
        """(Re)load memory from the catalog; records keep their identity for open devices."""
        self.tables.load()
        self.space.forget()
        self.volumes = _merge(self.volumes, load_rows(self.catalog.db, Volume))
        self.snapshots = _merge(self.snapshots, load_rows(self.catalog.db, Snapshot))
        self.spreads.load({v.id: v.pool_id for v in self.volumes.values()})
        self._load_moves()

    # --------------------------------------------------------------- lifecycle

    @classmethod
    def init(
        cls,
        directory: Path,
        name: str = "group-0",
        member_size: int = DEFAULT_MEMBER_SIZE,
        group_ip: str = "127.0.0.1",
        clock: Callable[[], datetime] = datetime.now,
        disks: int = DEFAULT_DISKS,
        raid_policy: str = DEFAULT_RAID_POLICY,
    ) -> Group:
        """Create a group with the pool ``default`` and one RAID member of ``member_size`` usable bytes."""
        directory = Path(directory)
        if (directory / Catalog.FILE_NAME).exists():
            raise InvalidRequest(f"a group already exists in {directory}")
        capacity = member_size // PAGE_SIZE
        if capacity < 1:
            raise InvalidRequest("the member size must be at least 15MB")
        (directory / "members").mkdir(parents=True, exist_ok=True)
        catalog = Catalog.create(directory / Catalog.FILE_NAME)
        with catalog.transaction() as db:
            for key, value in (
                ("name", name),
                ("group_ip", group_ip),
                ("group_id", str(secrets.randbits(36))),
                ("created", clock().isoformat(timespec="seconds")),
            ):
                db.execute("INSERT INTO group_params VALUES (?, ?)", (key, value))
            db.execute("INSERT INTO pools (name) VALUES (?)", (DEFAULT_POOL,))
        catalog.close()
        group = cls(directory, clock)
        try:
            group.add_member("member-1", member_size, DEFAULT_POOL, disks, raid_policy)
        except BaseException:
            group.close()
            (directory / Catalog.FILE_NAME).unlink()
            raise
        return group

    @classmethod
    def open(cls, directory: Path, clock: Callable[[], datetime] = datetime.now) -> Group:
        """Open an existing group (raises NotFound if there is none)."""
        if not (Path(directory) / Catalog.FILE_NAME).exists():
            raise NotFound(f"no group in {directory}; run 'array-sim init' first")
        return cls(directory, clock)

    def flush(self) -> None:
        """Make everything acknowledged so far durable against power loss."""
        self.tables.flush()
        self.placement.flush()
        self.catalog.checkpoint()

    def settle(self) -> None:
        """What the member stores keep in memory between writes goes to their disks (``raid.held``)."""
        self.placement.settle()

    def close(self) -> None:
        self.flush()
        for chunk_map in self.tables.chunk_maps.values():
            chunk_map.close()
        self.placement.close()
        self.catalog.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- group settings

    @property
    def name(self) -> str:
        return self.catalog.param("name") or "group-0"

    @property
    def group_ip(self) -> str:
        return self.catalog.param("group_ip") or "127.0.0.1"

    @property
    def group_id(self) -> int:
        return int(self.catalog.param("group_id") or 0)

    def unit_identity(self, obj: Volume | Snapshot) -> UnitIdentity:
        """The SCSI identity of a volume or snapshot (``naming.unit_identity``), for every front end."""
        return unit_identity(self.group_id, obj.serial)

    def target_credentials(self) -> tuple[str, str] | None:
        """The (user, secret) the target answers mutual CHAP with (``grpparams target-auth-*``), if set."""
        name, secret = self.catalog.param("target_auth_username"), self.catalog.param("target_auth_password")
        return (name, secret) if name and secret else None

    def set_group_param(self, key: str, value: str) -> None:
        """A group parameter (``grpparams``); the texts get their limits (``naming.TEXT_LIMITS``)."""
        field = _GROUP_TEXT_FIELDS.get(key)
        if field is not None:
            check_text(field, value)
        self.catalog.set_param(key, value)

    def log_event(self, level: str, message: str, member: str = "") -> None:
        """Append to the group's event log (``show events``); listeners hear it once it is committed."""
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO events (time, level, message, member) VALUES (?, ?, ?, ?)",
                (self.clock().isoformat(timespec="seconds"), level, message, member),
            )
            for listener in self.event_listeners:
                self.catalog.after_commit(lambda listener=listener: listener(level, message, member))

    def events(self) -> list[tuple[str, str, str, str]]:
        """(time, level, message, member) of the event log, oldest first."""
        return list(self.catalog.db.execute("SELECT time, level, message, member FROM events ORDER BY id"))

    # ------------------------------------------------------- pools and members

    def pool_id(self, name: str) -> int:
        return pool_named(self.pools, name)

    def add_member(
        self, name: str, size: int, pool: str, disks: int = DEFAULT_DISKS, raid_policy: str = DEFAULT_RAID_POLICY
    ) -> None:
        """Add a configured member (an array) of at least ``size`` usable bytes to a pool."""
        member_id, chunk_map = self.member_admin.create_member(name, pool, size, disks, raid_policy)
        self.tables.chunk_maps[member_id] = chunk_map
        self.spreads.member_joined(member_id, self.pool_id(pool))

    def add_array(self, name: str, pool: str, disks: int, disk_size: int) -> None:
        """Bring an unconfigured array into the group (``simulate member add``; only a simulator does this)."""
        self.member_admin.add_unconfigured(name, pool, disks, disk_size)

    def configure_member(self, name: str, raid_policy: str) -> None:
        """``member select M raid-policy P``: the RAID set is initialised and its capacity joins the pool."""
        member_id, chunk_map = self.member_admin.configure(name, raid_policy)
        self.tables.chunk_maps[member_id] = chunk_map
        self.spreads.member_joined(member_id, self.placement.members[member_id].pool_id)

    def background_step(self, budget: int = 1 << 20) -> bool:
        """One slice of long work (RAID reconstruction and verification, data moves); True while any remains.

        Also the schedules' runner: every snapshot due by now is taken first (``schedule_runner``)."""
        self.run_schedules()
        raid = self.member_admin.background_step(budget)
        return self.moves_step(budget) or raid

    def members(self) -> list[tuple[str, str, int, int]]:
        """(name, pool, capacity pages, free slots) of every member."""
        return [
            (m.name, self.pools[m.pool_id], m.capacity_pages, m.free_pages) for m in self.placement.members.values()
        ]

    # ---------------------------------------------------------------- devices

    def device(self, volume: str, snapshot: str | None = None) -> VolumeDevice:
        """The block device of a volume, or of one of its snapshots."""
        vol = self.volume(volume)
        snap = self.snapshot(volume, snapshot) if snapshot is not None else None
        return VolumeDevice(
            self.tables, self.space, self._before_allocate, self._restore_reserve, self.flush, vol,
            self.spreads.of(vol.id), snap
        )
