"""Page tables and physical pages: the copy-on-write core under volumes and snapshots.

Every volume and every snapshot owns a page table (a *map*): page index ->
physical page. A snapshot or clone copies the table, so both share the same
physical pages; creation costs one row per allocated page and nothing per
unallocated one, whatever the volume's size.

Rules of this module:

1. A physical page is written in place while exactly one page table maps it.
   A write to a page that several tables map first makes a new page whose
   *backing* is the shared one: the new page (an *overlay*) starts with no
   chunks of its own and reads through to its backing, so a 4 KiB write costs
   a 4 KiB write, not a 15 MiB copy (as qcow2 subclusters do). When every
   chunk of a page is its own, the backing link is dropped.
2. A page that overlays read through is not frozen: before its one mapper
   writes chunks in place, what each overlay sees of those chunks is copied
   into the overlay first. So space never exceeds what the page tables count:
   a thick volume with its snapshot reserve always has room for its writes.
   A page no table maps any more is folded into its overlays and freed.
3. Catalog first, data second, presence last: a new page is in the catalog
   (committed) before data is written into it, and a chunk is marked present
   only after its data is written. A crash at any point leaves every page
   reading what it read before the unacknowledged write.
4. Reference counts live only in memory, derived from the catalog at load.
5. A page being moved to another member (``page_mover``) has a watcher: every
   change of its data or chunk presence is reported to it, and so is its end
   (freed), so the copy can follow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .catalog import Catalog
from .chunk_map import ChunkMap
from .member_store import MemberOffline
from .pool import PageAddress, Placement, Spread
from .units import CHUNK_SIZE, CHUNKS_PER_PAGE

__all__ = ["PhysPage", "PageTables", "AllocationHook", "PageWatcher"]

#: Called before a page is allocated for ``(map_id, page_index)``; the third
#: argument is the shared physical page being copied, or None for a fresh page.
#: It may free space (delete snapshots) or raise a BlockError to refuse.
AllocationHook = Callable[[int, int, "int | None"], None]


class PageWatcher(Protocol):
    """Told of every change to one physical page (rule 5)."""

    def changed(self, first: int, last: int) -> None:
        """Chunks ``first..last-1`` of the page changed (data or presence)."""

    def gone(self) -> None:
        """The page was freed."""


@dataclass
class PhysPage:
    id: int
    address: PageAddress
    backing: int | None
    #: Page-table entries that map this page.
    maps: int = 0
    #: Pages whose backing this page is.
    overlays: set[int] = field(default_factory=set)

    @property
    def refs(self) -> int:
        """Everything that holds the page: page-table entries and overlays."""
        return self.maps + len(self.overlays)


class PageTables:
    """All page tables of the group and the physical pages they reference."""

    def __init__(self, catalog: Catalog, placement: Placement, chunk_maps: dict[int, ChunkMap]) -> None:
        self.catalog = catalog
        self.placement = placement
        self.chunk_maps = chunk_maps
        self.maps: dict[int, dict[int, int]] = {}
        self.phys: dict[int, PhysPage] = {}
        #: Pages being moved, by id (rule 5).
        self.watchers: dict[int, PageWatcher] = {}
        #: Told of every page freed (the data mover forgets it: its id may be given to a new page).
        self.on_freed: Callable[[int], None] = lambda pid: None

    @staticmethod
    def chunk_map_path(store: Path) -> Path:
        return store.with_suffix(".chunks")

    # ----------------------------------------------------------------- loading

    def load(self) -> None:
        """Rebuild the in-memory tables and reference counts from the catalog.

        Moves under way end first (their destination slots go back before the allocators are rebuilt).
        """
        stale, self.watchers = self.watchers, {}
        for watcher in stale.values():
            watcher.gone()
        db = self.catalog.db
        self.maps = {}
        self.phys = {
            pid: PhysPage(pid, (member, slot), backing)
            for pid, member, slot, backing in db.execute("SELECT id, member_id, slot, backing_id FROM phys_pages")
        }
        for map_id, index, pid in db.execute("SELECT map_id, page_index, phys_id FROM page_map"):
            self.maps.setdefault(map_id, {})[index] = pid
            self.phys[pid].maps += 1
        for page in self.phys.values():
            if page.backing is not None:
                self.phys[page.backing].overlays.add(page.id)
        used: dict[int, set[int]] = {}
        for page in self.phys.values():
            used.setdefault(page.address[0], set()).add(page.address[1])
        self.placement.mark_used(used)
        # Pages left unmapped by a crash between a commit and its clean-up.
        with self.catalog.transaction():
            for pid in [pid for pid, page in self.phys.items() if page.maps == 0]:
                if pid in self.phys:
                    self._settle(pid)

    def _release(self, address: PageAddress) -> None:
        self.placement.release(address)

    # ------------------------------------------------------------------ queries

    def table(self, map_id: int) -> dict[int, int]:
        return self.maps.get(map_id, {})

    def is_mapped(self, map_id: int, page_index: int) -> bool:
        return page_index in self.maps.get(map_id, {})

    # -------------------------------------------------------------- map changes

    def new_map(self) -> int:
        map_id = self.catalog.next_id("next_map_id")
        self.maps[map_id] = {}
        return map_id

    def copy_map(self, source: int, target: int, pages: int | None = None) -> None:
        """Make ``target`` share every page of ``source`` (below ``pages`` if given)."""
        limit = pages if pages is not None else 1 << 62
        with self.catalog.transaction():
            self.catalog.db.execute(
                "INSERT INTO page_map SELECT ?, page_index, phys_id FROM page_map WHERE map_id = ? AND page_index < ?",
                (target, source, limit),
            )
            table = {i: p for i, p in self.table(source).items() if i < limit}
            for pid in table.values():
                self.phys[pid].maps += 1
            self.maps[target] = table

    def drop_map(self, map_id: int) -> None:
        self.truncate(map_id, 0)
        self.maps.pop(map_id, None)

    def truncate(self, map_id: int, pages: int) -> None:
        """Release every page at index ``pages`` or above."""
        table = self.table(map_id)
        doomed = [i for i in table if i >= pages]
        with self.catalog.transaction():
            self.catalog.db.execute("DELETE FROM page_map WHERE map_id = ? AND page_index >= ?", (map_id, pages))
            for index in doomed:
                self._unmap_ref(table.pop(index))

    def unmap_page(self, map_id: int, page_index: int) -> None:
        table = self.table(map_id)
        if page_index not in table:
            return
        with self.catalog.transaction():
            self.catalog.db.execute("DELETE FROM page_map WHERE map_id = ? AND page_index = ?", (map_id, page_index))
            self._unmap_ref(table.pop(page_index))

    def _unmap_ref(self, pid: int) -> None:
        """One page-table entry less for ``pid`` (inside a transaction)."""
        self.phys[pid].maps -= 1
        self._settle(pid)

    def _settle(self, pid: int) -> None:
        """Free a page nothing maps or reads through; fold an unmapped one into its overlays."""
        while pid is not None:
            page = self.phys[pid]
            if page.maps:
                return
            if page.overlays:
                self.catalog.after_commit(lambda pid=pid: self._fold(pid))
                return
            del self.phys[pid]
            watcher = self.watchers.pop(pid, None)
            if watcher is not None:
                watcher.gone()
            self.on_freed(pid)
            self.catalog.db.execute("DELETE FROM phys_pages WHERE id = ?", (pid,))
            self.catalog.after_commit(lambda address=page.address: self._release(address))
            if page.backing is None:
                return
            self.phys[page.backing].overlays.discard(pid)
            pid = page.backing

    def _fold(self, pid: int) -> None:
        """Copy an unmapped page's view into each overlay, unlink them, and free it.

        Data first (each overlay's missing chunks, then marked present), links
        last: a crash in between leaves overlays reading exactly what they read.
        """
        page = self.phys.get(pid)
        if page is None or page.maps:
            return
        try:
            for overlay_id in sorted(page.overlays):
                self._absorb(self.phys[overlay_id], 0, CHUNKS_PER_PAGE)
        except MemberOffline:
            return  # a member it needs is off-line: the page stays (unmapped) and is folded at a later open
        with self.catalog.transaction():
            for overlay_id in list(page.overlays):
                self._unlink(self.phys[overlay_id])

    def _absorb(self, overlay: PhysPage, first: int, last: int) -> None:
        """Give ``overlay`` its own copy of the chunks in ``first..last-1`` it reads through for."""
        assert overlay.backing is not None
        backing = self.phys[overlay.backing]
        chunks, slot = self._chunks(overlay), overlay.address[1]
        store = self.placement.store(overlay.address[0])
        for start, stop, here in chunks.runs(slot, first, last):
            if not here:
                offset, length = start * CHUNK_SIZE, (stop - start) * CHUNK_SIZE
                store.write(slot, offset, self._read_layers(backing, offset, length))
                chunks.mark(slot, start, stop)
                self._changed(overlay, start, stop)

    def _unlink(self, overlay: PhysPage) -> None:
        """Drop an overlay's backing link once it has every chunk (inside a transaction)."""
        backing, overlay.backing = overlay.backing, None
        self.catalog.db.execute("UPDATE phys_pages SET backing_id = NULL WHERE id = ?", (overlay.id,))
        if backing is not None:
            self.phys[backing].overlays.discard(overlay.id)
            self._settle(backing)

    # ---------------------------------------------------------------- data path

    def _changed(self, page: PhysPage, first: int, last: int) -> None:
        watcher = self.watchers.get(page.id)
        if watcher is not None:
            watcher.changed(first, last)

    def _chunks(self, page: PhysPage) -> ChunkMap:
        return self.chunk_maps[page.address[0]]

    def read(self, map_id: int, page_index: int, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` inside one page of a map."""
        pid = self.table(map_id).get(page_index)
        if pid is None:
            return bytes(length)
        page = self.phys[pid]
        chunks, slot = self._chunks(page), page.address[1]
        first, last = offset // CHUNK_SIZE, -(-(offset + length) // CHUNK_SIZE)
        if chunks.all_present(slot, first, last):
            return self.placement.store(page.address[0]).read(slot, offset, length)
        if page.backing is None and not chunks.any_present(slot, first, last):
            return bytes(length)
        return bytes(self._read_layers(page, offset, length))

    def _read_chunk(self, page: PhysPage, offset: int, length: int) -> bytes:
        """A range inside one chunk: from the first layer down that has that chunk, else zeros."""
        chunk = offset // CHUNK_SIZE
        layer: PhysPage | None = page
        while layer is not None:
            if self._chunks(layer).present(layer.address[1], chunk):
                return self.placement.store(layer.address[0]).read(layer.address[1], offset, length)
            layer = self.phys[layer.backing] if layer.backing is not None else None
        return bytes(length)

    def _read_layers(self, page: PhysPage, offset: int, length: int) -> bytearray | bytes:
        """Fill a range from the page, then its backing pages for chunks it lacks; zeros below."""
        if offset // CHUNK_SIZE == (offset + length - 1) // CHUNK_SIZE:
            return self._read_chunk(page, offset, length)
        out = bytearray(length)
        end = offset + length
        pending = [(offset // CHUNK_SIZE, -(-end // CHUNK_SIZE))]
        layer: PhysPage | None = page
        while pending and layer is not None:
            chunks, slot = self._chunks(layer), layer.address[1]
            store = self.placement.store(layer.address[0])
            missing = []
            for first, last in pending:
                for start, stop, here in chunks.runs(slot, first, last):
                    lo = max(start * CHUNK_SIZE, offset)
                    hi = min(stop * CHUNK_SIZE, end)
                    if here:
                        out[lo - offset : hi - offset] = store.read(slot, lo, hi - lo)
                    else:
                        missing.append((start, stop))
            pending = missing
            layer = self.phys[layer.backing] if layer.backing is not None else None
        return out

    def view_runs(self, pid: int, first: int, last: int) -> list[tuple[int, int, bool]]:
        """Runs of chunks ``first..last-1`` of what page ``pid`` reads: present where the page or a page
        below it has the chunk (``page_mover.PageSplit`` copies this view)."""
        runs: list[tuple[int, int, bool]] = []
        pending = [(first, last)]
        layer: PhysPage | None = self.phys[pid]
        while pending and layer is not None:
            chunks, missing = self._chunks(layer), []
            for lo, hi in pending:
                for start, stop, here in chunks.runs(layer.address[1], lo, hi):
                    if here:
                        runs.append((start, stop, True))
                    else:
                        missing.append((start, stop))
            pending = missing
            layer = self.phys[layer.backing] if layer.backing is not None else None
        runs.extend((lo, hi, False) for lo, hi in pending)
        return sorted(runs)

    def read_view(self, pid: int, offset: int, length: int) -> bytearray | bytes:
        """``length`` bytes at ``offset`` of what page ``pid`` reads (its chunks, then its backing's)."""
        return self._read_layers(self.phys[pid], offset, length)

    def split(self, pid: int, address: PageAddress, map_ids: set[int]) -> int | None:
        """Give the entries of ``map_ids`` that map ``pid`` the page at ``address``, a complete private copy
        of what ``pid`` reads, already written and flushed; the others keep ``pid``. Returns the new page's
        id, or None (changing nothing) when none of those entries maps ``pid`` any more."""
        entries = [(m, i) for m in map_ids for i, p in self.table(m).items() if p == pid]
        if not entries:
            return None
        with self.catalog.transaction() as db:
            cursor = db.execute("INSERT INTO phys_pages (member_id, slot, backing_id) VALUES (?, ?, NULL)", address)
            new = PhysPage(int(cursor.lastrowid or 0), address, None, maps=len(entries))
            self.phys[new.id] = new
            for map_id, index in entries:
                db.execute("UPDATE page_map SET phys_id = ? WHERE map_id = ? AND page_index = ?", (new.id, map_id, index))
                self.maps[map_id][index] = new.id
            self.phys[pid].maps -= len(entries)
            self._settle(pid)
        return new.id

    def write(
        self,
        map_id: int,
        page_index: int,
        offset: int,
        data: bytes | bytearray | memoryview,
        spread: Spread,
        hook: AllocationHook,
    ) -> None:
        """Write ``data`` at ``offset`` inside one page, copying on write if it is shared."""
        page = self.phys[self.writable_page(map_id, page_index, spread, hook)]
        chunks, slot = self._chunks(page), page.address[1]
        end = offset + len(data)
        c0, c1 = offset // CHUNK_SIZE, -(-end // CHUNK_SIZE)
        for overlay_id in page.overlays:
            # Rule 2: overlays keep seeing the old contents of the chunks about to change.
            self._absorb(self.phys[overlay_id], c0, c1)
        store = self.placement.store(page.address[0])
        store.write(slot, offset, data)
        # A partial edge chunk the page lacks gets the rest of its bytes from the layers below before it is
        # marked. Only those bytes are written: the data goes where it lies, never merged into a copy (a copy
        # of a 15 MiB page piece held the GIL for milliseconds).
        if offset % CHUNK_SIZE and not chunks.present(slot, c0):
            start = c0 * CHUNK_SIZE
            store.write(slot, start, self._read_layers(page, start, offset - start))
        if end % CHUNK_SIZE and not chunks.present(slot, c1 - 1):
            store.write(slot, end, self._read_layers(page, end, c1 * CHUNK_SIZE - end))
        chunks.mark(slot, c0, c1)
        self._changed(page, c0, c1)
        if page.backing is not None and chunks.all_present(slot):
            with self.catalog.transaction():
                self._unlink(page)

    def clear_chunks(self, map_id: int, page_index: int, first: int, last: int) -> bool:
        """Forget chunks ``first..last-1`` of a private page that has no backing (they read zeros).

        Returns False, changing nothing, when the page is shared or reads
        through to a backing page: then the caller must write zeros instead.
        """
        pid = self.table(map_id).get(page_index)
        if pid is None:
            return True
        page = self.phys[pid]
        if page.maps != 1 or page.backing is not None or page.overlays:
            return False
        self._chunks(page).forget(page.address[1], first, last)
        self._changed(page, first, last)
        return True

    def page_has_data(self, map_id: int, page_index: int) -> bool:
        """True if a mapped page holds any chunk (its own or through its backing)."""
        pid = self.table(map_id).get(page_index)
        if pid is None:
            return False
        page = self.phys[pid]
        return page.backing is not None or self._chunks(page).any_present(page.address[1])

    def writable_page(self, map_id: int, page_index: int, spread: Spread, hook: AllocationHook) -> int:
        """The page to write ``(map_id, page_index)`` into: its own, or a new one (allocation or copy-on-write)."""
        table = self.maps.setdefault(map_id, {})
        pid = table.get(page_index)
        if pid is not None and self.phys[pid].maps == 1:
            return pid
        hook(map_id, page_index, pid)
        pid = table.get(page_index)
        if pid is not None and self.phys[pid].maps == 1:
            return pid
        with self.catalog.transaction():
            address = self.placement.allocate(spread)
            self.chunk_maps[address[0]].forget(address[1])
            cursor = self.catalog.db.execute(
                "INSERT INTO phys_pages (member_id, slot, backing_id) VALUES (?, ?, ?)", (*address, pid)
            )
            new = PhysPage(int(cursor.lastrowid or 0), address, pid, maps=1)
            self.catalog.db.execute("INSERT OR REPLACE INTO page_map VALUES (?, ?, ?)", (map_id, page_index, new.id))
            self.phys[new.id] = new
            table[page_index] = new.id
            if pid is not None:
                shared = self.phys[pid]
                shared.maps -= 1
                shared.overlays.add(new.id)
        return new.id

    def revert(self, map_id: int, page_index: int, before: int | None) -> None:
        """Undo a ``writable_page`` that allocated, before anything was written to the new page."""
        table = self.maps[map_id]
        current = table[page_index]
        with self.catalog.transaction() as db:
            if before is None:
                db.execute("DELETE FROM page_map WHERE map_id = ? AND page_index = ?", (map_id, page_index))
                del table[page_index]
            else:
                db.execute(
                    "UPDATE page_map SET phys_id = ? WHERE map_id = ? AND page_index = ?", (before, map_id, page_index)
                )
                table[page_index] = before
                self.phys[before].maps += 1
            self._unmap_ref(current)

    def flush(self) -> None:
        for chunk_map in self.chunk_maps.values():
            chunk_map.flush()

