"""One disk of a member: a sparse file, with latent sector errors injected on demand.

Rules of this module:

1. A disk is a file of a fixed size made sparse with ``ftruncate``; reads are one ``pread``,
   writes one ``pwrite`` (returned once the OS has them, as ``member_store`` rule 2).
2. **Latent sector errors** are byte ranges of the disk that fail to read, as a real disk's
   unreadable sectors do (``LatentError``). Writing over a range clears it, as a real disk remaps a
   sector on write. The ranges are kept by the store in its superblock; this class only applies them.
3. A disk never raises for its own state (failed, spare): the store decides whether to touch it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["Disk", "DiskIO", "FAILED", "LatentError", "ONLINE", "SPARE", "runs"]

#: A disk's status, in EQLMEMBER-MIB eqlDiskStatus names.
ONLINE, SPARE, FAILED = "on-line", "spare", "failed"

#: A planned disk transfer: (physical disk, disk offset, the bytes to write or the buffer to fill).
DiskIO = tuple[int, int, memoryview | np.ndarray]


def runs(transfers: list[DiskIO]) -> Iterator[tuple[int, int, list[memoryview | np.ndarray]]]:
    """``transfers`` as runs (disk, offset, buffers): each buffer lies right after the one before it
    on that disk, so a run is one ``preadv`` or ``pwritev``. Sorts ``transfers`` in place."""
    transfers.sort(key=lambda t: (t[0], t[1]))
    i = 0
    while i < len(transfers):
        disk, offset, first = transfers[i]
        buffers = [first]
        end = offset + len(first)
        i += 1
        while i < len(transfers) and transfers[i][0] == disk and transfers[i][1] == end:
            buffers.append(transfers[i][2])
            end += len(transfers[i][2])
            i += 1
        yield disk, offset, buffers


class LatentError(OSError):
    """A read hit a latent sector error."""


class Disk:
    """A disk file, open for reading and writing."""

    def __init__(self, path: Path, size: int, bad: list[list[int]] | None = None) -> None:
        self.path = path
        self.size = size
        #: Sorted, disjoint ``[start, end)`` byte ranges that fail to read.
        self.bad: list[list[int]] = [list(r) for r in (bad or [])]
        self._fd = os.open(path, os.O_RDWR)

    @classmethod
    def create(cls, path: Path, size: int) -> Disk:
        """A new empty disk (an existing file is replaced, as a new drive replaces a pulled one)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return cls(path, size)

    def read(self, offset: int, length: int) -> bytes:
        for start, end in self.bad:
            if start < offset + length and offset < end:
                raise LatentError(f"{self.path.name}: unreadable sectors at [{start}, {end})")
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise OSError(f"short read from {self.path}")
        return data

    def holds_data(self, offset: int, length: int) -> bool:
        """False when ``[offset, +length)`` is a hole of the sparse file (reads zeros, was never written)."""
        try:
            return os.lseek(self._fd, offset, os.SEEK_DATA) < offset + length
        except OSError:  # ENXIO: no data at or after offset
            return False

    def read_into(self, offset: int, buffer: memoryview) -> None:
        """Fill ``buffer`` from ``offset`` (one ``preadv``, no allocation); LatentError as ``read``."""
        if self.bad_in(offset, len(buffer)):
            raise LatentError(f"{self.path.name}: unreadable sectors in [{offset}, +{len(buffer)})")
        if os.preadv(self._fd, [buffer], offset) != len(buffer):
            raise OSError(f"short read from {self.path}")

    def read_many(self, offset: int, buffers: list[memoryview | np.ndarray]) -> None:
        """Fill ``buffers`` one after another from ``offset`` (one ``preadv``); LatentError as ``read``."""
        total = sum(len(b) for b in buffers)
        if self.bad_in(offset, total):
            raise LatentError(f"{self.path.name}: unreadable sectors in [{offset}, +{total})")
        if os.preadv(self._fd, buffers, offset) != total:
            raise OSError(f"short read from {self.path}")

    def will_write(self, offset: int, length: int) -> int:
        """The file descriptor to write ``[offset, +length)`` with, its bad ranges cleared first (rule 2):
        for a caller that issues the write itself (``aio``)."""
        if self.bad:
            self.bad = self._cleared(offset, offset + length)
        return self._fd

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.will_write(offset, len(view))
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def write_many(self, offset: int, buffers: list[memoryview | np.ndarray]) -> None:
        """Write ``buffers`` one after another from ``offset``: one ``pwritev`` (Linux caps a call at
        IOV_MAX = 1024 buffers; callers pass at most a transfer's strips)."""
        total = sum(len(b) if isinstance(b, memoryview) else b.nbytes for b in buffers)
        self.will_write(offset, total)
        written = os.pwritev(self._fd, buffers, offset)
        if written != total:  # a short write: finish the rest buffer by buffer
            self.write(offset + written, b"".join(bytes(b) for b in buffers)[written:])

    def _cleared(self, start: int, end: int) -> list[list[int]]:
        out: list[list[int]] = []
        for a, b in self.bad:
            if a < start:
                out.append([a, min(b, start)])
            if b > end:
                out.append([max(a, end), b])
        return out

    def add_bad(self, offset: int, length: int) -> None:
        ranges = sorted([*self.bad, [offset, offset + length]])
        merged: list[list[int]] = []
        for a, b in ranges:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.bad = merged

    def bad_in(self, offset: int, length: int) -> bool:
        return any(a < offset + length and offset < b for a, b in self.bad)

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
