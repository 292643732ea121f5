"""A member's storage: fixed 15 MiB page slots in one sparse disk file.

This is the narrow interface that RAID over several disk files replaces in a
later issue: allocate nothing, know nothing of volumes, just read and write
bytes inside a numbered slot. Writes go straight to the file with
``pwrite``, so an acknowledged write is in the OS page cache and survives
``kill -9``; ``flush`` adds ``fsync`` for power loss. A freed slot keeps its
disk blocks until it is reused (punching a hole costs up to 0.7 s per page
on a file system mounted with ``discard``), so the file never shrinks.
"""

from __future__ import annotations

import os
from pathlib import Path

from .units import PAGE_SIZE

__all__ = ["MemberStore"]


class MemberStore:
    """Page slots ``0 .. capacity_pages-1`` of one member, backed by a sparse file."""

    def __init__(self, path: Path, capacity_pages: int) -> None:
        self.path = path
        self.capacity_pages = capacity_pages
        self._fd = os.open(path, os.O_RDWR)
        if os.fstat(self._fd).st_size != capacity_pages * PAGE_SIZE:
            os.close(self._fd)
            raise ValueError(f"member store {path} does not have {capacity_pages} pages")

    @classmethod
    def create(cls, path: Path, capacity_pages: int) -> MemberStore:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, capacity_pages * PAGE_SIZE)
        finally:
            os.close(fd)
        return cls(path, capacity_pages)

    def _check(self, slot: int, offset: int, length: int) -> int:
        if not (0 <= slot < self.capacity_pages and offset >= 0 and offset + length <= PAGE_SIZE):
            raise ValueError(f"slot {slot} [{offset}, +{length}) is outside the member")
        return slot * PAGE_SIZE + offset

    def read(self, slot: int, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` inside ``slot``."""
        position = self._check(slot, offset, length)
        data = os.pread(self._fd, length, position)
        if len(data) != length:
            raise OSError(f"short read from {self.path}")
        return data

    def write(self, slot: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset`` inside ``slot``; returns once the OS has it."""
        position = self._check(slot, offset, len(data))
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, position)
            view = view[written:]
            position += written

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

