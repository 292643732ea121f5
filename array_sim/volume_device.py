"""A volume or a snapshot as a block device (the ``BlockDevice`` interface).

Splits each request into per-page pieces for the page tables and checks what
SBC-4 makes the device server check: the range (LBA OUT OF RANGE), write
protection, and whether the logical unit is online.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from .block import DeviceOffline, Extent, OutOfRange, WriteProtected
from .pages import AllocationHook, PageTables
from .pool import Spread
from .records import Snapshot, Volume
from .units import CHUNK_SIZE, PAGE_SIZE, SECTOR_SIZE

if TYPE_CHECKING:
    from .space import SpaceAccounting

__all__ = ["VolumeDevice"]

SECTORS_PER_PAGE = PAGE_SIZE // SECTOR_SIZE


class VolumeDevice:
    """Block access to one volume, or to one snapshot of it."""

    block_size = SECTOR_SIZE

    def __init__(
        self,
        tables: PageTables,
        space: SpaceAccounting,
        hook: AllocationHook,
        restore_reserve: Callable[[Volume, int], None],
        flush: Callable[[], None],
        volume: Volume,
        spread: Spread,
        snapshot: Snapshot | None = None,
    ) -> None:
        self._tables = tables
        self._space = space
        self._hook = hook
        self._restore_reserve = restore_reserve
        self._flush = flush
        self.volume = volume
        #: Where the volume's new pages go (its snapshots' too).
        self._spread = spread
        self.snapshot = snapshot

    @property
    def _object(self) -> Volume | Snapshot:
        return self.snapshot or self.volume

    @property
    def name(self) -> str:
        return self._object.name

    @property
    def iqn(self) -> str:
        return self._object.iqn

    @property
    def num_blocks(self) -> int:
        return self._object.pages * SECTORS_PER_PAGE

    @property
    def read_only(self) -> bool:
        return self._object.read_only

    @property
    def thin(self) -> bool:
        return self.volume.thin

    @property
    def online(self) -> bool:
        return self._object.online

    @property
    def _map_id(self) -> int:
        return self._object.map_id

    def _check(self, lba: int, count: int, writing: bool = False) -> None:
        if not self.online:
            raise DeviceOffline(f"{self.name} is offline")
        if lba < 0 or count < 0 or lba + count > self.num_blocks:
            raise OutOfRange(f"blocks {lba}+{count} are outside {self.name} ({self.num_blocks} blocks)")
        if writing and self.read_only:
            raise WriteProtected(f"{self.name} is read-only")

    @staticmethod
    def _pieces(offset: int, length: int) -> Iterator[tuple[int, int, int, int]]:
        """(page index, offset in page, length, offset in request) for a byte range."""
        done = 0
        while done < length:
            index, in_page = divmod(offset + done, PAGE_SIZE)
            size = min(PAGE_SIZE - in_page, length - done)
            yield index, in_page, size, done
            done += size

    def read(self, lba: int, count: int) -> bytes:
        self._check(lba, count)
        offset, length = lba * SECTOR_SIZE, count * SECTOR_SIZE
        index, in_page = divmod(offset, PAGE_SIZE)
        if in_page + length <= PAGE_SIZE:  # the common case: inside one page
            return self._tables.read(self._map_id, index, in_page, length)
        return b"".join(self._tables.read(self._map_id, i, o, s) for i, o, s, _ in self._pieces(offset, length))

    def write(self, lba: int, data: bytes | bytearray | memoryview, fua: bool = False) -> None:
        if len(data) % SECTOR_SIZE:
            raise ValueError("write length is not a whole number of blocks")
        self._check(lba, len(data) // SECTOR_SIZE, writing=True)
        view = memoryview(data)
        pieces = list(self._pieces(lba * SECTOR_SIZE, len(data)))
        self._prepare(pieces)
        for index, in_page, size, at in pieces:
            self._tables.write(self._map_id, index, in_page, view[at : at + size], self._spread, self._hook)
        if fua:
            self.flush()

    def _prepare(self, pieces: list[tuple[int, int, int, int]]) -> None:
        """Give every page of a request its writable page before writing any data.

        If one cannot be had (no space, the thin maximum), the pages taken for
        the others are given back, so a refused write changes nothing.
        """
        tables, map_id, volume = self._tables, self._map_id, self.volume
        if len(pieces) == 1 and tables.is_mapped(map_id, pieces[0][0]):
            pid = tables.table(map_id)[pieces[0][0]]
            if tables.phys[pid].maps == 1:
                return  # the common case: an overwrite in place
        taken: list[tuple[int, int | None]] = []
        reserve = volume.reserve_pages
        try:
            for index, _, _, _ in pieces:
                before = tables.table(map_id).get(index)
                if tables.writable_page(map_id, index, self._spread, self._hook) != before:
                    taken.append((index, before))
        except BaseException:
            for index, before in reversed(taken):
                tables.revert(map_id, index, before)
            if volume.reserve_pages != reserve:
                self._restore_reserve(volume, reserve)
            raise
        finally:
            self._space.forget(volume)

    def flush(self) -> None:
        self._flush()

    def unmap(self, lba: int, count: int) -> None:
        """Deallocate blocks: whole pages leave the page table; parts of pages read zeros."""
        self._check(lba, count, writing=True)
        self._zero(lba * SECTOR_SIZE, count * SECTOR_SIZE, deallocate=True)

    def write_same(self, lba: int, count: int, block: bytes, unmap: bool = False) -> None:
        """SBC-4 WRITE SAME: one block written to every block of the range."""
        if len(block) != SECTOR_SIZE:
            raise ValueError("WRITE SAME takes exactly one block")
        self._check(lba, count, writing=True)
        if not any(block):
            self._zero(lba * SECTOR_SIZE, count * SECTOR_SIZE, deallocate=unmap)
            return
        pattern = block * SECTORS_PER_PAGE
        pieces = list(self._pieces(lba * SECTOR_SIZE, count * SECTOR_SIZE))
        self._prepare(pieces)
        for index, in_page, size, _ in pieces:
            self._tables.write(self._map_id, index, in_page, pattern[:size], self._spread, self._hook)

    def _zero(self, offset: int, length: int, deallocate: bool) -> None:
        tables, map_id = self._tables, self._map_id
        for index, in_page, size, _ in self._pieces(offset, length):
            if not tables.is_mapped(map_id, index):
                continue
            if size == PAGE_SIZE and deallocate:
                if self.snapshot is None:
                    # A page a snapshot shares stays, now the snapshot's alone: charge its reserve.
                    self._hook(map_id, index, tables.table(map_id)[index])
                tables.unmap_page(map_id, index)
                continue
            first, last = -(-in_page // CHUNK_SIZE), (in_page + size) // CHUNK_SIZE
            if first < last and tables.clear_chunks(map_id, index, first, last):
                head = (in_page, first * CHUNK_SIZE - in_page)
                edges = [head, (last * CHUNK_SIZE, in_page + size - last * CHUNK_SIZE)]
            else:
                edges = [(in_page, size)]
            for start, span in edges:
                if span > 0:
                    tables.write(map_id, index, start, bytes(span), self._spread, self._hook)
            if deallocate and not tables.page_has_data(map_id, index):
                tables.unmap_page(map_id, index)
        self._space.forget(self.volume)

    def extents(self, lba: int, count: int) -> list[Extent]:
        """Runs of mapped and unmapped blocks, at page granularity (as the array allocates)."""
        self._check(lba, count)
        result: list[Extent] = []
        end = lba + count
        while lba < end:
            index = lba // SECTORS_PER_PAGE
            stop = min(end, (index + 1) * SECTORS_PER_PAGE)
            mapped = self._tables.is_mapped(self._map_id, index)
            if result and result[-1].mapped == mapped:
                last = result.pop()
                result.append(Extent(last.lba, last.count + stop - lba, mapped))
            else:
                result.append(Extent(lba, stop - lba, mapped))
            lba = stop
        return result
