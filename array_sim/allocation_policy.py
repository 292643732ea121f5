"""The allocation policy: what a write that needs a new page costs, and when it is refused.

Rules of this module (the PS Series space rules are ``space``'s header; this applies them to writes):

1. ``_before_allocate`` is the ``pages.AllocationHook`` that ``Group.device`` gives every
   ``VolumeDevice``: it runs before a write takes a new page (a fresh one, or a copy of a shared
   one), never for a write in place. It may free space (delete snapshots) or refuse by raising a
   ``BlockError`` (``SpaceExhausted``, ``DeviceOffline``); the device then gives back what the
   request took (``volume_device`` ``_prepare``, the thin reserve through ``_restore_reserve``), so a
   refused write changes no page.
2. What the new page is charged to: a volume's fresh page to the volume (thin growth, rule 3); a
   volume's copy of a page one of its snapshots still holds to the snapshot reserve (rule 4); a copy
   of a page no snapshot of the volume holds, to nothing here. A snapshot's write always charges the
   snapshot reserve.
3. Thin volumes: past ``thin-max-grow`` (when below 100%) the volume is set offline
   (``THIN_MAXIMUM``) and the write refused; reaching ``thin-warn-threshold`` is one WARNING event.
   Once its free reserve falls below 6% of the volume, the reserve grows by 10% of the volume, or
   only as far as the write needs if the pool cannot give that; if it cannot give even that, an
   ERROR event and the write is refused.
4. Snapshot reserve (``snap-depletion``): a page that would pass it is taken from the pool's free
   space under ``borrow`` while there is any; under ``volume-offline`` the volume and its snapshots
   are set offline (``DeviceOffline``); under ``delete-oldest`` the oldest snapshot (never the one
   written) is deleted, and again, while the page is still needed. A snapshot's write that would not
   fit even with every other snapshot deleted is refused at once, deleting none. Free snapshot
   reserve falling below ``snap-warn`` is one WARNING event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .block import DeviceOffline, SpaceExhausted
from .errors import NotFound
from .records import Snapshot, Volume, update_row
from .space import percent_of
from .volume_admin import THIN_MAXIMUM

if TYPE_CHECKING:
    from .catalog import Catalog
    from .pages import PageTables
    from .space import SpaceAccounting

__all__ = ["AllocationPolicy"]


class AllocationPolicy:
    """The allocation policy of ``Group`` (a mixin on the group's state)."""

    if TYPE_CHECKING:
        catalog: Catalog
        tables: PageTables
        space: SpaceAccounting
        pools: dict[int, str]
        volumes: dict[int, Volume]
        snapshots: dict[int, Snapshot]

        def snapshots_of(self, volume: Volume) -> list[Snapshot]: ...
        def pool_free(self, pool_id: int) -> int: ...
        def _delete_snapshot(self, snapshot: Snapshot) -> None: ...
        def log_event(self, level: str, message: str, member: str = "") -> None: ...

    def _owner(self, map_id: int) -> tuple[Volume, Snapshot | None]:
        for volume in self.volumes.values():
            if volume.map_id == map_id:
                return volume, None
        for snapshot in self.snapshots.values():
            if snapshot.map_id == map_id:
                return self.volumes[snapshot.volume_id], snapshot
        raise NotFound(f"page table {map_id} belongs to nothing")

    def _before_allocate(self, map_id: int, page_index: int, shared: int | None) -> None:
        """The ``AllocationHook`` of every device (rules 1 and 2)."""
        volume, snapshot = self._owner(map_id)

        def held_by_snapshot() -> bool:
            return any(self.tables.table(s.map_id).get(page_index) == shared for s in self.snapshots_of(volume))

        if snapshot is not None:
            table = self.tables.table(map_id)

            def still_new_page() -> bool:
                current = table.get(page_index)
                return current is None or self.tables.phys[current].maps > 1

            current = table.get(page_index)
            if current is not None and current not in self.tables.table(volume.map_id).values():
                # Shared only with other snapshots: deleting them would let this write go in place.
                self._charge_snapshot_reserve(volume, snapshot, still_new_page)
            else:
                self._charge_snapshot_reserve(volume, snapshot, still_new_page, needs_page_anyway=True)
        elif shared is None:
            self._grow_thin(volume)
        elif held_by_snapshot():
            self._charge_snapshot_reserve(volume, None, held_by_snapshot)

    def _grow_thin(self, volume: Volume) -> None:
        """Thin provisioning: enforce the maximum in-use space and grow the volume reserve (rule 3)."""
        if not volume.thin:
            return
        in_use = self.space.in_use(volume) + 1
        if volume.thin_max < 100 and in_use > percent_of(volume.thin_max, volume.pages):
            self.log_event("ERROR", f"Volume {volume.name} reached its maximum in-use space; set offline.")
            with self.catalog.transaction() as db:
                update_row(db, volume, online=False, offline_reason=THIN_MAXIMUM)
            raise SpaceExhausted(f"{volume.name} reached its maximum in-use space")
        if in_use == percent_of(volume.thin_warn, volume.pages):
            self.log_event("WARNING", f"Volume {volume.name} in-use space reached {volume.thin_warn}% of its size.")
        reserve = volume.reserve_pages
        if reserve >= volume.pages or reserve - in_use >= percent_of(6, volume.pages):
            return
        wanted = min(volume.pages, max(in_use, reserve + percent_of(10, volume.pages)))
        if self._try_reserve(volume, wanted) or in_use <= reserve or self._try_reserve(volume, in_use):
            return
        self.log_event("ERROR", f"Pool {self.pools[volume.pool_id]} has no free space for volume {volume.name}.")
        raise SpaceExhausted(f"pool {self.pools[volume.pool_id]} has no free space for {volume.name}")

    def _restore_reserve(self, volume: Volume, pages: int) -> None:
        """Put a thin volume's reserve back after a refused write grew it."""
        with self.catalog.transaction() as db:
            update_row(db, volume, reserve_pages=pages)

    def _try_reserve(self, volume: Volume, pages: int) -> bool:
        """Set a thin volume's reserve to ``pages`` if the pool has the space for it."""
        old = volume.reserve_pages
        volume.reserve_pages = pages
        if self.pool_free(volume.pool_id) < 0:
            volume.reserve_pages = old
            return False
        with self.catalog.transaction() as db:
            update_row(db, volume, reserve_pages=pages)
        return True

    def _charge_snapshot_reserve(
        self,
        volume: Volume,
        keep: Snapshot | None,
        still_needed: Callable[[], bool],
        needs_page_anyway: bool = False,
    ) -> None:
        """One more page held by snapshots: apply the snap-depletion policy if it does not fit (rule 4)."""
        space = self.space
        used = space.snapshot_in_use(volume, self.snapshots_of(volume))
        if keep is not None and used + 1 > space.snapshot_reserve(volume):
            self._check_snapshot_write_can_fit(volume, keep, needs_page_anyway)
        while used + 1 > space.snapshot_reserve(volume):
            policy = volume.snap_depletion
            if policy == "borrow" and self.pool_free(volume.pool_id) >= 1:
                break
            if policy == "volume-offline":
                self.log_event("ERROR", f"Snapshot reserve of volume {volume.name} is exhausted; set offline.")
                self._set_offline_with_snapshots(volume)
                raise DeviceOffline(f"snapshot reserve of {volume.name} is exhausted")
            victims = [s for s in self.snapshots_of(volume) if s is not keep]
            if not victims:
                raise SpaceExhausted(f"snapshot reserve of {volume.name} is exhausted")
            self.log_event("WARNING", f"Snapshot {victims[0].name} deleted to free snapshot reserve.")
            self._delete_snapshot(victims[0])
            if not still_needed():
                return
            used = space.snapshot_in_use(volume, self.snapshots_of(volume))
        space.charge_snapshot_page(volume)
        reserve = space.snapshot_reserve(volume)
        if used + 1 == reserve - percent_of(volume.snap_warn, reserve) + 1:
            self.log_event("WARNING", f"Free snapshot reserve of volume {volume.name} is below {volume.snap_warn}%.")

    def _check_snapshot_write_can_fit(self, volume: Volume, keep: Snapshot, needs_page: bool) -> None:
        """Refuse a snapshot write at once if deleting every other snapshot would not make it fit.

        Otherwise delete-oldest would delete snapshots and then refuse anyway.
        """
        if volume.snap_depletion == "borrow" and self.pool_free(volume.pool_id) >= 1:
            return
        own = set(self.tables.table(keep.map_id).values()) - set(self.tables.table(volume.map_id).values())
        if len(own) + needs_page > self.space.snapshot_reserve(volume):
            raise SpaceExhausted(f"snapshot reserve of {volume.name} is exhausted")

    def _set_offline_with_snapshots(self, volume: Volume) -> None:
        with self.catalog.transaction() as db:
            update_row(db, volume, online=False)
            for snapshot in self.snapshots_of(volume):
                update_row(db, snapshot, online=False)
