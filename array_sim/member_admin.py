"""The group's members: arrays of disks with a RAID policy, their faults and their reports.

Rules of this module:

1. A member's storage is built from its catalog row (``layout``, ``disks``,
   ``disk_size``, ``store``), never from a path alone: ``file`` is one sparse
   file (groups made by release 0.1), a RAID policy name is a directory of
   disk files (``array_sim.raid``), and ``unconfigured`` is an array that was
   added to the group but has no RAID policy yet: it has disks and no
   capacity, as on the array before ``member select M raid-policy P``.
2. Only the simulator adds arrays and breaks disks; those operations are
   here for the ``simulate`` CLI noun and the tests, and each logs the event
   the array would log.
3. When a member's RAID fails (more failed disks than its policy
   tolerates), ``on_offline`` is called once: the group sets off-line every
   volume and snapshot with data on it (``member_states``), and they stay
   off-line: their data is lost.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog
from .chunk_map import ChunkMap
from .errors import InvalidRequest, NotFound
from .member_ports import assign_ports
from .member_store import FileStore, SlotStore, StoreHealth
from .naming import valid_object_name
from .pages import PageTables
from .pool import Placement, pool_named
from .pool_admin import check_member_room
from .raid.layout import STRIP
from .raid.policy import POLICIES
from .raid.store import RaidStore, disk_size_for
from .units import PAGE_SIZE, MiB

__all__ = ["MemberReport", "MemberAdmin", "MEMBER_OFFLINE", "FILE_LAYOUT", "DEFAULT_DISKS", "DEFAULT_RAID_POLICY"]

#: ``offline_reason`` of a volume whose data was on a member that went off-line.
MEMBER_OFFLINE = "member-offline"
#: ``layout`` of a member without RAID: one sparse file.
FILE_LAYOUT = "file"
#: A PS4100-sized array (12 drives) in the array's default policy.
DEFAULT_DISKS = 12
DEFAULT_RAID_POLICY = "raid6"

#: ``(level, message, member)`` -> logged in the group's event log.
EventLogger = Callable[[str, str, str], None]


@dataclass(frozen=True)
class MemberReport:
    """What ``member show`` and ``member select M show`` print (names from EQLMEMBER-MIB)."""

    name: str
    pool: str
    #: The RAID policy, ``file`` (no RAID, release 0.1) or ``unconfigured``.
    raid_policy: str
    #: on-line, off-line or vacate (eqlMemberState; powered off counts as off-line).
    state: str
    health: StoreHealth
    capacity_pages: int
    free_pages: int
    disks: int
    disk_size: int


def _chunk_map_path(directory: Path, layout: str, store: str) -> Path:
    if layout == FILE_LAYOUT:
        return PageTables.chunk_map_path(directory / store)
    return directory / store / "chunks.map"


class MemberAdmin:
    """Opens members' stores and carries out the member operations of the group."""

    def __init__(
        self, directory: Path, catalog: Catalog, placement: Placement, pools: dict[int, str], log: EventLogger
    ) -> None:
        self.directory = directory
        self.catalog = catalog
        self.placement = placement
        self.pools = pools
        self.log = log
        #: Called with a member id when it goes off-line (rule 3); set by the group.
        self.on_offline: Callable[[int], None] = lambda member_id: None
        self._offline_seen: set[int] = set()

    # ----------------------------------------------------------------- opening

    def open_all(self) -> dict[int, ChunkMap]:
        """Open every configured member's store; returns their chunk maps."""
        chunk_maps: dict[int, ChunkMap] = {}
        rows = self.catalog.db.execute("SELECT id, name, pool_id, capacity_pages, store, layout, powered FROM members")
        rows = rows.fetchall()
        self._remove_leftovers({Path(store).name for *_, store, _layout, _powered in rows})
        for member_id, name, pool_id, capacity, store, layout, powered in rows:
            if layout == "unconfigured":
                continue
            self._attach(member_id, name, pool_id, self._open_store(name, layout, store, capacity))
            self.placement.members[member_id].powered = bool(powered)
            chunk_maps[member_id] = ChunkMap(_chunk_map_path(self.directory, layout, store), capacity)
        return chunk_maps

    def _remove_leftovers(self, stores: set[str]) -> None:
        """Files of members that left the group: a crash after the commit that removed a member may have
        left them (``data_moves``); nothing else lives in ``members/``."""
        folder = self.directory / "members"
        if not folder.is_dir():
            return
        keep = stores | {Path(s).with_suffix(".chunks").name for s in stores}
        for entry in folder.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def _open_store(self, name: str, layout: str, store: str, capacity: int) -> SlotStore:
        if layout == FILE_LAYOUT:
            return FileStore(self.directory / store, capacity)
        raid = RaidStore.open(self.directory / store, name=name)
        if raid.capacity_pages != capacity:
            raise InvalidRequest(f"member {name}: its disks hold {raid.capacity_pages} pages, the catalog says {capacity}")
        return raid

    def _attach(self, member_id: int, name: str, pool_id: int, store: SlotStore) -> None:
        if isinstance(store, RaidStore):
            store.events = lambda level, message: self.log(level, message, name)
        self.placement.add_member(member_id, name, pool_id, store)
        if not store.health().online:
            self._offline_seen.add(member_id)

    # ------------------------------------------------------------------ adding

    @staticmethod
    def _last_id(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT last_insert_rowid()").fetchone()[0])

    def member_id(self, name: str) -> int:
        return self._row(name)[0]

    def _row(self, name: str) -> tuple[int, int, str, str, int, int]:
        row = self.catalog.db.execute(
            "SELECT id, pool_id, store, layout, disks, disk_size FROM members WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise NotFound(f"Member {name} does not exist.")
        return row

    def _check_new_name(self, name: str) -> None:
        if not valid_object_name(name):
            raise InvalidRequest(f"Invalid member name '{name}'; use up to 63 letters, digits, '.', '-' or ':'.")
        if self.catalog.db.execute("SELECT 1 FROM members WHERE name = ?", (name,)).fetchone():
            raise InvalidRequest(f"Member {name} already exists.")

    def add_unconfigured(self, name: str, pool: str, disks: int, disk_size: int) -> None:
        """Bring an array into the group (``simulate member add``): disks, but no RAID policy yet."""
        self._check_new_name(name)
        pool_id = pool_named(self.pools, pool)
        check_member_room(self.catalog, pool_id, pool)
        if not 3 <= disks <= 48:  # the fewest any RAID policy takes; the largest PS arrays hold 48
            raise InvalidRequest(f"Invalid number of disks {disks}; an array has 3 to 48.")
        if disk_size < MiB or disk_size % STRIP:
            raise InvalidRequest("The disk size must be at least 1MB and a whole number of 64KB strips.")
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO members (name, pool_id, capacity_pages, store, layout, disks, disk_size)"
                " VALUES (?, ?, 0, ?, 'unconfigured', ?, ?)",
                (name, pool_id, f"members/{name}", disks, disk_size),
            )
            assign_ports(db, self._last_id(db), self.catalog.param("group_ip") or "127.0.0.1")
            self.log("INFO", f"Member {name} was added to the group; its RAID policy is not configured.", name)

    def configure(self, name: str, raid_policy: str, verify: bool = True) -> tuple[int, ChunkMap]:
        """``member select M raid-policy P``: initialise the RAID set; its capacity joins the pool.

        The new set is then verified in the background (RAID status ``verifying``), as the array
        verifies a RAID set it has initialised; ``array-sim init`` (``verify`` False) makes its
        member as if that had long finished. Returns the member's id and its new chunk map.
        """
        member_id, pool_id, store, layout, disks, disk_size = self._row(name)
        if raid_policy not in POLICIES:
            raise InvalidRequest(f"Invalid RAID policy '{raid_policy}'; use one of {', '.join(POLICIES)}.")
        if layout != "unconfigured":
            raise InvalidRequest(f"Member {name} already has RAID policy {layout}.")
        directory = self.directory / store
        if directory.exists():  # left by a crash before the catalog commit below
            shutil.rmtree(directory)
        raid = RaidStore.create(directory, raid_policy, disks, disk_size, name=name)
        chunk_path = _chunk_map_path(self.directory, raid_policy, store)
        try:
            ChunkMap.create(chunk_path, raid.capacity_pages).close()
            with self.catalog.transaction() as db:
                db.execute(
                    "UPDATE members SET layout = ?, capacity_pages = ? WHERE id = ?",
                    (raid_policy, raid.capacity_pages, member_id),
                )
                self.log("INFO", f"Member {name} RAID policy set to {raid_policy}; the RAID set is initialized.", name)
        except BaseException:
            raid.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._attach(member_id, name, pool_id, raid)
        if verify:
            raid.start_verify()
        return member_id, ChunkMap(chunk_path, raid.capacity_pages)

    def create_member(self, name: str, pool: str, usable: int, disks: int, raid_policy: str) -> tuple[int, ChunkMap]:
        """A configured member of at least ``usable`` bytes (``array-sim init``).

        ``raid_policy`` ``file`` makes a member without RAID, one sparse file as release 0.1 made
        (``array-sim init --raid-policy file``: the fastest store, and the benchmarks' baseline).
        """
        if raid_policy == FILE_LAYOUT:
            return self._create_file_member(name, pool, usable)
        if raid_policy not in POLICIES:
            raise InvalidRequest(f"Invalid RAID policy '{raid_policy}'; use one of {', '.join(POLICIES)}.")
        with self.catalog.transaction():
            self.add_unconfigured(name, pool, disks, disk_size_for(raid_policy, disks, max(usable, PAGE_SIZE)))
            return self.configure(name, raid_policy, verify=False)

    def _create_file_member(self, name: str, pool: str, usable: int) -> tuple[int, ChunkMap]:
        pool_id = pool_named(self.pools, pool)
        capacity = usable // PAGE_SIZE
        if capacity < 1:
            raise InvalidRequest("the member size must be at least 15MB")
        self._check_new_name(name)
        check_member_room(self.catalog, pool_id, pool)
        store = f"members/{name}.store"
        (self.directory / "members").mkdir(exist_ok=True)
        FileStore.create(self.directory / store, capacity).close()
        chunk_path = _chunk_map_path(self.directory, FILE_LAYOUT, store)
        ChunkMap.create(chunk_path, capacity).close()
        with self.catalog.transaction() as db:
            member_id = int(
                db.execute(
                    "INSERT INTO members (name, pool_id, capacity_pages, store, layout) VALUES (?, ?, ?, ?, ?)",
                    (name, pool_id, capacity, store, FILE_LAYOUT),
                ).lastrowid
                or 0
            )
            assign_ports(db, member_id, self.catalog.param("group_ip") or "127.0.0.1")
        self._attach(member_id, name, pool_id, FileStore(self.directory / store, capacity))
        return member_id, ChunkMap(chunk_path, capacity)

    # ------------------------------------------------------------------ faults

    def raid(self, name: str) -> RaidStore:
        member_id, _, _, layout, _, _ = self._row(name)
        if layout == "unconfigured":
            raise InvalidRequest(f"Member {name} has no RAID policy yet; set one with 'member select {name} raid-policy'.")
        store = self.placement.members[member_id].store
        if not isinstance(store, RaidStore):
            raise InvalidRequest(f"Member {name} has no disks: it was made by array-sim 0.1 as one file.")
        return store

    def _check_disk(self, store: RaidStore, disk: int) -> None:
        if not 0 <= disk < len(store.disks()):
            raise InvalidRequest(f"Invalid disk {disk}; member disks are 0 to {len(store.disks()) - 1}.")

    def fail_disk(self, name: str, disk: int) -> None:
        store = self.raid(name)
        self._check_disk(store, disk)
        store.fail_disk(disk)
        self.check_offline()

    def replace_disk(self, name: str, disk: int) -> None:
        store = self.raid(name)
        self._check_disk(store, disk)
        store.replace_disk(disk)
        self.check_offline()

    def verify(self, name: str) -> None:
        """Start verifying member ``name``'s RAID set(s) now (``simulate member select M verify``)."""
        store = self.raid(name)
        if not store.health().online:
            raise InvalidRequest(f"Member {name} is offline.")
        store.start_verify()

    def add_bad_sectors(self, name: str, disk: int, offset: int, length: int) -> None:
        store = self.raid(name)
        self._check_disk(store, disk)
        if offset < 0 or length <= 0 or offset + length > store.disk_size:
            raise InvalidRequest(f"Invalid range; disk {disk} has {store.disk_size} bytes.")
        store.add_bad_sectors(disk, offset, length)

    def check_offline(self) -> None:
        """Apply rule 3 to every member that went off-line since the last check."""
        for member_id, member in self.placement.members.items():
            if member_id not in self._offline_seen and not member.store.health().online:
                self._offline_seen.add(member_id)
                self.on_offline(member_id)

    def background_step(self, budget: int) -> bool:
        """One slice of long work (reconstruction, verification) on each member that has some; True while any remains."""
        more = False
        for member in self.placement.members.values():
            if member.powered:
                more = member.store.background_step(budget) or more
        self.check_offline()
        return more

    # ---------------------------------------------------------------- reports

    def reports(self) -> list[MemberReport]:
        rows = self.catalog.db.execute(
            "SELECT id, name, pool_id, layout, disks, disk_size FROM members ORDER BY id"
        ).fetchall()
        reports = []
        for member_id, name, pool_id, layout, disks, disk_size in rows:
            member = self.placement.members.get(member_id)
            if member is None:
                health, capacity, free = StoreHealth(raid_status="unconfigured"), 0, 0
            else:
                health, capacity, free = member.store.health(), member.capacity_pages, member.free_pages
            if member is None or member.online:
                state = "vacate" if member is not None and member.vacating else "on-line"
            else:
                state = "off-line"
            reports.append(
                MemberReport(name, self.pools[pool_id], layout, state, health, capacity, free, disks, disk_size)
            )
        return reports

    def report(self, name: str) -> MemberReport:
        for report in self.reports():
            if report.name == name:
                return report
        raise NotFound(f"Member {name} does not exist.")
