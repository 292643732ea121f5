"""Which 4 KiB chunks of each physical page hold data of their own.

A page created by copy-on-write starts empty and reads through to the page it
was copied from (its backing page) for every chunk it has not written; a page
created for a thin allocation reads zeros there. One byte per chunk (1 =
present), kept in a shared memory map of a file beside the member store:
setting a byte is a store into the OS page cache, so it survives ``kill -9``
as soon as it is made, and ``flush`` fdatasyncs its file for power loss. Data is always
written before its chunk is marked present, so a crash in between leaves the
old contents visible.

Every question is answered by ``mmap.find`` over the slot's bytes, in C: this
sits on the path of every 4 KiB I/O.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from .units import CHUNKS_PER_PAGE

__all__ = ["ChunkMap"]

_PRESENT, _ABSENT = b"\x01", b"\x00"


class ChunkMap:
    """Per-slot chunk presence for one member."""

    def __init__(self, path: Path, capacity_pages: int) -> None:
        self.path = path
        with open(path, "r+b") as file:
            self._map = mmap.mmap(file.fileno(), capacity_pages * CHUNKS_PER_PAGE)

    @classmethod
    def create(cls, path: Path, capacity_pages: int) -> ChunkMap:
        with open(path, "xb") as file:
            file.truncate(capacity_pages * CHUNKS_PER_PAGE)
        return cls(path, capacity_pages)

    @staticmethod
    def _span(slot: int, first: int, last: int) -> tuple[int, int]:
        base = slot * CHUNKS_PER_PAGE
        return base + first, base + last

    def all_present(self, slot: int, first: int = 0, last: int = CHUNKS_PER_PAGE) -> bool:
        return self._map.find(_ABSENT, *self._span(slot, first, last)) < 0

    def any_present(self, slot: int, first: int = 0, last: int = CHUNKS_PER_PAGE) -> bool:
        return self._map.find(_PRESENT, *self._span(slot, first, last)) >= 0

    def present(self, slot: int, chunk: int) -> bool:
        return self._map[slot * CHUNKS_PER_PAGE + chunk] == 1

    def mark(self, slot: int, first: int, last: int) -> None:
        """Chunks ``first..last-1`` now hold data of their own."""
        start, end = self._span(slot, first, last)
        self._map[start:end] = _PRESENT * (end - start)

    def forget(self, slot: int, first: int = 0, last: int = CHUNKS_PER_PAGE) -> None:
        """Chunks ``first..last-1`` no longer hold data (the whole slot by default)."""
        start, end = self._span(slot, first, last)
        self._map[start:end] = bytes(end - start)

    def runs(self, slot: int, first: int, last: int) -> list[tuple[int, int, bool]]:
        """``(start, stop, present)`` runs of chunks in ``first..last-1``, in order."""
        start, end = self._span(slot, first, last)
        base = start - first
        result = []
        position = start
        while position < end:
            here = self._map[position] == 1
            following = self._map.find(_ABSENT if here else _PRESENT, position, end)
            stop = end if following < 0 else following
            result.append((position - base, stop - base, here))
            position = stop
        return result

    def flush(self) -> None:
        """Make the map durable with ``fdatasync`` of its file, not ``mmap.flush``.

        On Linux the two write back the same pages (msync with MS_SYNC is an
        fsync of the mapped range there), but CPython's ``mmap.flush`` holds
        the GIL through the whole write-back (43 ms seen under load), which
        stops every other thread; ``os.fdatasync`` releases it.
        """
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.flush()
        self._map.close()
