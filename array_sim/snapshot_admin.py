"""Snapshot operations of the group: create, rename, online/offline, permission, delete, restore.

PS Series behaviour (research/ps-cli.md 2.4): a snapshot is instant (the page
table is copied, not the data); it is created offline and read-write; its
default name is ``<volume>-<YYYY>-<MM>-<DD>-<hh>:<mm>:<ss>.<n>``; a volume
without snapshot reserve cannot have snapshots. Restore needs the volume and
the snapshot offline and first takes a snapshot of the current data, which it
leaves behind, as the array does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import AlreadyExists, InvalidRequest, NoSpace
from .naming import check_text, default_snapshot_name, target_iqn
from .records import Snapshot, Volume, insert_row, update_row

if TYPE_CHECKING:
    from datetime import datetime

    from .catalog import Catalog
    from .pages import PageTables
    from .space import SpaceAccounting

__all__ = ["SnapshotAdmin"]


class SnapshotAdmin:
    """Snapshot operations; mixed into ``Group``, whose state they use."""

    if TYPE_CHECKING:
        catalog: Catalog
        tables: PageTables
        space: SpaceAccounting
        volumes: dict[int, Volume]
        snapshots: dict[int, Snapshot]
        group_id: int

        def clock(self) -> datetime: ...
        def volume(self, name: str) -> Volume: ...
        def snapshots_of(self, volume: Volume) -> list[Snapshot]: ...
        def _find_snapshot(self, volume: Volume, name: str) -> Snapshot: ...
        def pool_free(self, pool_id: int) -> int: ...
        def held_offline(self, map_id: int) -> bool: ...

    def snapshot(self, volume: str, name: str) -> Snapshot:
        return self._find_snapshot(self.volume(volume), name)

    def create_snapshot(
        self, volume: str, name: str | None = None, description: str = "", when: datetime | None = None
    ) -> Snapshot:
        """Take a snapshot now; its cost is one page-table row per allocated page.

        ``when`` (default: the group's clock) is its timestamp and the time in its default name: the
        snapshots of one snapshot collection share one (``snapcol_admin``).
        """
        vol = self.volume(volume)
        if self.held_offline(vol.map_id):
            raise InvalidRequest(f"Volume {volume} is offline: its data is on a member that is offline.")
        if vol.snap_reserve == 0:
            raise InvalidRequest(f"Volume {volume} has no snapshot reserve; set snap-reserve first.")
        check_text("description", description)
        when = when or self.clock()
        with self.catalog.transaction() as db:
            number = vol.snap_counter + 1
            update_row(db, vol, snap_counter=number)
            name = name or default_snapshot_name(vol.name, when, number)
            self._check_snapshot_name(vol, name)
            serial = self.catalog.next_id("next_serial")
            snapshot = Snapshot(
                id=0, volume_id=vol.id, name=name, map_id=self.tables.new_map(),
                size_bytes=vol.size_bytes, pages=vol.pages,
                created=when.isoformat(timespec="seconds"), online=False, read_only=False,
                description=description,
                iqn=target_iqn(self.group_id, serial, name), serial=serial,
            )  # fmt: skip
            insert_row(db, snapshot)
            self.tables.copy_map(vol.map_id, snapshot.map_id)
        self.snapshots[snapshot.id] = snapshot
        self.space.forget(vol)
        return snapshot

    def _check_snapshot_name(self, volume: Volume, name: str) -> None:
        check_text("snapshot_name", name)
        if any(s.name == name for s in self.snapshots_of(volume)):
            raise AlreadyExists(f"Snapshot {name} already exists.")

    def rename_snapshot(self, volume: str, name: str, new_name: str) -> None:
        vol = self.volume(volume)
        snapshot = self._find_snapshot(vol, name)
        self._check_snapshot_name(vol, new_name)
        with self.catalog.transaction() as db:
            update_row(db, snapshot, name=new_name)

    def set_snapshot_online(self, volume: str, name: str, online: bool) -> None:
        snapshot = self.snapshot(volume, name)
        if online and self.held_offline(snapshot.map_id):
            raise InvalidRequest(f"Snapshot {name} cannot be set online: its data is on a member that is offline.")
        with self.catalog.transaction() as db:
            update_row(db, snapshot, online=online, offline_reason="")

    def set_snapshot_read_only(self, volume: str, name: str, read_only: bool) -> None:
        snapshot = self.snapshot(volume, name)
        with self.catalog.transaction() as db:
            update_row(db, snapshot, read_only=read_only)

    def set_snapshot_description(self, volume: str, name: str, description: str) -> None:
        snapshot = self.snapshot(volume, name)
        check_text("description", description)
        with self.catalog.transaction() as db:
            update_row(db, snapshot, description=description)

    def delete_snapshot(self, volume: str, name: str) -> None:
        self._delete_snapshot(self.snapshot(volume, name))

    def _delete_snapshot(self, snapshot: Snapshot) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot.id,))
            self.tables.drop_map(snapshot.map_id)
        del self.snapshots[snapshot.id]
        self.space.forget(self.volumes[snapshot.volume_id])

    def check_restore_volume(self, volume: str, name: str) -> tuple[Volume, Snapshot]:
        """The volume and snapshot, if ``restore_volume`` would accept them."""
        vol = self.volume(volume)
        snapshot = self._find_snapshot(vol, name)
        if vol.online or snapshot.online:
            raise InvalidRequest("Volume and snapshot must be offline to restore the volume.")
        if self.held_offline(vol.map_id) or self.held_offline(snapshot.map_id):
            raise InvalidRequest(f"Volume {volume} cannot be restored: its data is on a member that is offline.")
        return vol, snapshot

    def restore_volume(self, volume: str, name: str) -> Snapshot:
        """Roll the volume back to a snapshot; returns the snapshot taken of the data it replaced."""
        vol, snapshot = self.check_restore_volume(volume, name)
        if snapshot.pages > vol.pages and not vol.thin:
            # Back to a larger size: the thick reserve (and its snapshot reserve) grows.
            old = vol.pages
            vol.pages = snapshot.pages
            short = self.pool_free(vol.pool_id) < 0
            vol.pages = old
            if short:
                raise NoSpace(f"Not enough free space in the pool to restore {volume} to its earlier size.")
        with self.catalog.transaction() as db:
            saved = self.create_snapshot(volume)
            update_row(db, vol, size_bytes=snapshot.size_bytes, pages=snapshot.pages)
            self.tables.truncate(vol.map_id, 0)
            self.tables.copy_map(snapshot.map_id, vol.map_id)
            in_use = len(self.tables.table(vol.map_id))
            reserve = min(vol.pages, max(self.space.thin_min_reserve(vol), vol.reserve_pages, in_use))
            update_row(db, vol, reserve_pages=reserve if vol.thin else vol.pages)
        self.space.forget(vol)
        return saved
