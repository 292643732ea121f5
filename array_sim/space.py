"""Space accounting with the PS Series rules: volume reserve, snapshot reserve, pool free space.

What the array documents (research/ps-cli.md 2.4), and what this module does:

* Volume reserve: a thick volume reserves all its pages at creation. A thin
  volume reserves ``thin-min-reserve`` (default 10%) and grows its reserve as
  pages are written: when free reserve falls below 6% of the volume, another
  10% is reserved. Writing past ``thin-max-grow`` (default 100%, "maximum
  in-use space") fails; if that limit is below 100% the volume is also set
  offline.
* Snapshot reserve: a percentage (default 100%) of the volume reserve, set
  aside in the pool when the volume is created. Pages that snapshots hold and
  the volume no longer does count against it. When it would be exceeded, the
  volume's ``snap-depletion`` policy applies: delete the oldest snapshot
  (default), set the volume and its snapshots offline, or borrow free pool space.
* Pool free space = pool capacity - every volume's reserve, snapshot reserve
  and borrowed pages. Whole pages are counted, as the array counts them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .pages import PageTables
from .records import Snapshot, Volume

__all__ = ["SpaceAccounting", "percent_of"]


def percent_of(percent: int, pages: int) -> int:
    """``percent`` % of ``pages``, rounded up to whole pages."""
    return -(-percent * pages // 100)


class SpaceAccounting:
    """Reserve and usage figures computed from the page tables."""

    def __init__(self, tables: PageTables) -> None:
        self.tables = tables
        self._snapshot_pages: dict[int, int] = {}

    def forget(self, volume: Volume | None = None) -> None:
        """Drop cached snapshot usage after page tables changed outside a write."""
        if volume is None:
            self._snapshot_pages.clear()
        else:
            self._snapshot_pages.pop(volume.id, None)

    @staticmethod
    def volume_reserve(volume: Volume) -> int:
        return volume.reserve_pages if volume.thin else volume.pages

    @staticmethod
    def thin_min_reserve(volume: Volume) -> int:
        return max(1, percent_of(volume.thin_min_reserve, volume.pages))

    def snapshot_reserve(self, volume: Volume) -> int:
        return percent_of(volume.snap_reserve, self.volume_reserve(volume))

    def in_use(self, volume: Volume) -> int:
        """Pages written to the volume."""
        return len(self.tables.table(volume.map_id))

    def snapshot_in_use(self, volume: Volume, snapshots: Iterable[Snapshot]) -> int:
        """Pages the volume's snapshots hold that the volume itself no longer does."""
        cached = self._snapshot_pages.get(volume.id)
        if cached is None:
            held: set[int] = set()
            for snapshot in snapshots:
                held.update(self.tables.table(snapshot.map_id).values())
            held.difference_update(self.tables.table(volume.map_id).values())
            cached = self._snapshot_pages[volume.id] = len(held)
        return cached

    def charge_snapshot_page(self, volume: Volume) -> None:
        """Count one more snapshot-held page (after a copy-on-write charged to snapshots)."""
        if volume.id in self._snapshot_pages:
            self._snapshot_pages[volume.id] += 1

    def borrowed(self, volume: Volume, snapshots: Iterable[Snapshot]) -> int:
        return max(0, self.snapshot_in_use(volume, snapshots) - self.snapshot_reserve(volume))

    def reserved(self, volume: Volume, snapshots: Iterable[Snapshot]) -> int:
        """Pages the volume takes out of its pool: reserve, snapshot reserve, borrowed."""
        return self.volume_reserve(volume) + self.snapshot_reserve(volume) + self.borrowed(volume, snapshots)
