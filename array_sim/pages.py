"""Page tables and physical pages: the copy-on-write core under volumes and snapshots.

Every volume and every snapshot owns a page table (a *map*): page index ->
physical page. A snapshot or clone copies the table, so both share the same
physical pages; creation costs one row per allocated page and nothing per
unallocated one, whatever the volume's size.

Rules of this module:

1. A physical page is written in place only while exactly one reference holds
   it (one map entry, or nothing else). A write to a shared page first makes a
   new page whose *backing* is the shared one: the new page starts with no
   chunks of its own and reads through to its backing, so a 4 KiB write costs a
   4 KiB write, not a 15 MiB copy (as qcow2 subclusters do). When every chunk
   of a page is its own, the backing reference is dropped.
2. Catalog first, data second, presence last: a new page is in the catalog
   (committed) before data is written into it, and a chunk is marked present
   only after its data is written. A crash at any point leaves every page
   reading what it read before the unacknowledged write.
3. Reference counts live only in memory, derived from the catalog at load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .catalog import Catalog
from .chunk_map import ChunkMap
from .pool import PageAddress, Placement
from .units import CHUNK_SIZE

__all__ = ["PhysPage", "PageTables", "AllocationHook"]

#: Called before a page is allocated for ``(map_id, page_index)``; the third
#: argument is the shared physical page being copied, or None for a fresh page.
#: It may free space (delete snapshots) or raise a BlockError to refuse.
AllocationHook = Callable[[int, int, "int | None"], None]


@dataclass
class PhysPage:
    id: int
    address: PageAddress
    backing: int | None
    refs: int = 0


class PageTables:
    """All page tables of the group and the physical pages they reference."""

    def __init__(self, catalog: Catalog, placement: Placement, chunk_maps: dict[int, ChunkMap]) -> None:
        self.catalog = catalog
        self.placement = placement
        self.chunk_maps = chunk_maps
        self.maps: dict[int, dict[int, int]] = {}
        self.phys: dict[int, PhysPage] = {}

    @staticmethod
    def chunk_map_path(store: Path) -> Path:
        return store.with_suffix(".chunks")

    # ----------------------------------------------------------------- loading

    def load(self) -> None:
        """Rebuild the in-memory tables and reference counts from the catalog."""
        db = self.catalog.db
        self.maps = {}
        self.phys = {
            pid: PhysPage(pid, (member, slot), backing)
            for pid, member, slot, backing in db.execute("SELECT id, member_id, slot, backing_id FROM phys_pages")
        }
        for map_id, index, pid in db.execute("SELECT map_id, page_index, phys_id FROM page_map"):
            self.maps.setdefault(map_id, {})[index] = pid
            self.phys[pid].refs += 1
        for page in self.phys.values():
            if page.backing is not None:
                self.phys[page.backing].refs += 1
        orphans = [pid for pid, page in self.phys.items() if page.refs == 0]
        if orphans:
            with self.catalog.transaction():
                for pid in orphans:
                    self.phys[pid].refs = 1
                    self._deref(pid)
        used: dict[int, set[int]] = {}
        for page in self.phys.values():
            used.setdefault(page.address[0], set()).add(page.address[1])
        self.placement.mark_used(used)

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
                self.phys[pid].refs += 1
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
                self._deref(table.pop(index))

    def unmap_page(self, map_id: int, page_index: int) -> None:
        table = self.table(map_id)
        if page_index not in table:
            return
        with self.catalog.transaction():
            self.catalog.db.execute("DELETE FROM page_map WHERE map_id = ? AND page_index = ?", (map_id, page_index))
            self._deref(table.pop(page_index))

    def _deref(self, pid: int | None) -> None:
        while pid is not None:
            page = self.phys[pid]
            page.refs -= 1
            if page.refs:
                return
            del self.phys[pid]
            self.catalog.db.execute("DELETE FROM phys_pages WHERE id = ?", (pid,))
            self.catalog.after_commit(lambda address=page.address: self._release(address))
            pid = page.backing

    # ---------------------------------------------------------------- data path

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

    def write(
        self,
        map_id: int,
        page_index: int,
        offset: int,
        data: bytes | bytearray | memoryview,
        pool_id: int,
        hook: AllocationHook,
    ) -> None:
        """Write ``data`` at ``offset`` inside one page, copying on write if it is shared."""
        page = self.phys[self._private_page(map_id, page_index, pool_id, hook)]
        chunks, slot = self._chunks(page), page.address[1]
        end = offset + len(data)
        c0, c1 = offset // CHUNK_SIZE, -(-end // CHUNK_SIZE)
        merge_head = offset % CHUNK_SIZE != 0 and not chunks.present(slot, c0)
        merge_tail = end % CHUNK_SIZE != 0 and not chunks.present(slot, c1 - 1)
        if merge_head or merge_tail:
            start = c0 * CHUNK_SIZE if merge_head else offset
            stop = c1 * CHUNK_SIZE if merge_tail else end
            buffer = bytearray(stop - start)
            if merge_head:
                buffer[:CHUNK_SIZE] = self._read_layers(page, start, CHUNK_SIZE)
            if merge_tail and not (merge_head and c1 - 1 == c0):
                buffer[-CHUNK_SIZE:] = self._read_layers(page, stop - CHUNK_SIZE, CHUNK_SIZE)
            buffer[offset - start : offset - start + len(data)] = data
            data, offset = buffer, start
        self.placement.store(page.address[0]).write(slot, offset, data)
        chunks.mark(slot, c0, c1)
        if page.backing is not None and chunks.all_present(slot):
            with self.catalog.transaction():
                self.catalog.db.execute("UPDATE phys_pages SET backing_id = NULL WHERE id = ?", (page.id,))
                backing, page.backing = page.backing, None
                self._deref(backing)

    def clear_chunks(self, map_id: int, page_index: int, first: int, last: int) -> bool:
        """Forget chunks ``first..last-1`` of a private page that has no backing (they read zeros).

        Returns False, changing nothing, when the page is shared or reads
        through to a backing page: then the caller must write zeros instead.
        """
        pid = self.table(map_id).get(page_index)
        if pid is None:
            return True
        page = self.phys[pid]
        if page.refs != 1 or page.backing is not None:
            return False
        self._chunks(page).forget(page.address[1], first, last)
        return True

    def page_has_data(self, map_id: int, page_index: int) -> bool:
        """True if a mapped page holds any chunk (its own or through its backing)."""
        pid = self.table(map_id).get(page_index)
        if pid is None:
            return False
        page = self.phys[pid]
        return page.backing is not None or self._chunks(page).any_present(page.address[1])

    def _private_page(self, map_id: int, page_index: int, pool_id: int, hook: AllocationHook) -> int:
        table = self.maps.setdefault(map_id, {})
        pid = table.get(page_index)
        if pid is not None and self.phys[pid].refs == 1:
            return pid
        hook(map_id, page_index, pid)
        pid = table.get(page_index)
        if pid is not None and self.phys[pid].refs == 1:
            return pid
        with self.catalog.transaction():
            address = self.placement.allocate(pool_id)
            self.chunk_maps[address[0]].forget(address[1])
            cursor = self.catalog.db.execute(
                "INSERT INTO phys_pages (member_id, slot, backing_id) VALUES (?, ?, ?)", (*address, pid)
            )
            new = PhysPage(int(cursor.lastrowid or 0), address, pid, refs=1)
            self.catalog.db.execute("INSERT OR REPLACE INTO page_map VALUES (?, ?, ?)", (map_id, page_index, new.id))
            self.phys[new.id] = new
            table[page_index] = new.id
        return new.id

    def flush(self) -> None:
        for chunk_map in self.chunk_maps.values():
            chunk_map.flush()

    @staticmethod
    def chunk_range(offset: int, length: int) -> tuple[int, int]:
        """Chunks wholly inside ``[offset, offset+length)`` of a page."""
        return -(-offset // CHUNK_SIZE), (offset + length) // CHUNK_SIZE

