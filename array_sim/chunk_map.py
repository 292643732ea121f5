"""Which 4 KiB chunks of each physical page hold data of their own.

A page created by copy-on-write starts empty and reads through to the page it
was copied from (its backing page) for every chunk it has not written; a page
created for a thin allocation reads zeros there. One byte per chunk, kept in a
shared memory map of a file beside the member store: setting a byte is a store
into the OS page cache, so it survives ``kill -9`` as soon as it is made, and
``flush`` msyncs it for power loss. Data is always written before its chunk is
marked present, so a crash in between leaves the old contents visible.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

from .units import CHUNKS_PER_PAGE

__all__ = ["ChunkMap", "runs"]


class ChunkMap:
    """Per-slot chunk presence for one member."""

    def __init__(self, path: Path, capacity_pages: int) -> None:
        self.path = path
        with open(path, "r+b") as file:
            self._mmap = mmap.mmap(file.fileno(), capacity_pages * CHUNKS_PER_PAGE)
        # A plain ndarray over the shared mapping: numpy's memmap subclass costs
        # several microseconds per slice, which the 4 KiB I/O path cannot afford.
        self._map = np.frombuffer(self._mmap, dtype=np.uint8).reshape(capacity_pages, CHUNKS_PER_PAGE)

    @classmethod
    def create(cls, path: Path, capacity_pages: int) -> ChunkMap:
        with open(path, "xb") as file:
            file.truncate(capacity_pages * CHUNKS_PER_PAGE)
        return cls(path, capacity_pages)

    def slot(self, slot: int) -> np.ndarray:
        """The live presence row of one slot (writes to it persist)."""
        return self._map[slot]

    def clear(self, slot: int) -> None:
        self._map[slot] = 0

    def flush(self) -> None:
        self._mmap.flush()

    def close(self) -> None:
        self._mmap.flush()
        del self._map
        self._mmap.close()


def runs(flags: np.ndarray) -> list[tuple[int, int, bool]]:
    """Split a presence row into ``(start, end, present)`` runs."""
    if len(flags) == 0:
        return []
    change = np.flatnonzero(flags[1:] != flags[:-1]) + 1
    bounds = [0, *change.tolist(), len(flags)]
    return [(bounds[i], bounds[i + 1], bool(flags[bounds[i]])) for i in range(len(bounds) - 1)]
