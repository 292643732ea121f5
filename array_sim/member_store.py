"""A member's storage seen from the page layer: numbered 15 MiB page slots.

Rules of this module:

1. ``SlotStore`` is the whole contract between the page layer and a member's
   storage (RAID, disk files). A store allocates nothing and knows nothing of
   volumes: it reads and writes bytes inside a numbered slot. Every store
   (``FileStore``, ``MemoryStore``, the RAID stores of ``array_sim.raid``)
   runs the same shared test suite (``tests/engine/store_contract.py``).
2. A write returns once the data is in the OS page cache (``pwrite``), so an
   acknowledged write survives ``kill -9``; ``flush`` adds ``fsync`` for power
   loss.
3. A store that can no longer return correct data raises ``MemberOffline``
   (a ``DeviceOffline``: SPC-5 LOGICAL UNIT NOT READY) and never returns
   wrong bytes.
4. Long work (RAID reconstruction, verification) runs in small slices through
   ``background_step``, so the engine's owner can interleave it with I/O.
5. A freed slot keeps its disk blocks until it is reused (punching a hole
   costs up to 0.7 s per page on a file system mounted with ``discard``), so a
   store's files never shrink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .block import DeviceOffline
from .raid.disks import Disk
from .units import PAGE_SIZE

__all__ = ["MemberOffline", "StoreHealth", "SlotStore", "FileStore", "MemoryStore", "EventSink", "check_range"]

#: ``(level, message)`` of an event a store reports (disk failed, spare in use, ...).
EventSink = Callable[[str, str], None]


class MemberOffline(DeviceOffline):
    """The member lost more disks than its RAID policy tolerates; its data cannot be read."""


@dataclass(frozen=True)
class StoreHealth:
    """What ``member select M show`` reports of a store (names from EQLMEMBER-MIB)."""

    #: ok, degraded, reconstructing, verifying or failed (eqlMemberRaidStatus).
    raid_status: str = "ok"
    #: Progress of reconstruction or verification, 0-100 (eqlMemberRaidPercentage).
    percentage: int = 0
    #: Hot spares ready to take a failed disk's place.
    spares: int = 0
    #: False once the member is beyond its tolerance (eqlMemberState off-line).
    online: bool = True
    #: Some data could not be kept (eqlMemberLostRaidBlocks).
    lost_blocks: bool = False


class SlotStore(Protocol):
    """Page slots ``0 .. capacity_pages-1`` of one member."""

    capacity_pages: int

    def read(self, slot: int, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` inside ``slot`` (raises MemberOffline if they are lost)."""
        ...

    def write(self, slot: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset`` inside ``slot``; returns once the OS has it."""
        ...

    def flush(self) -> None:
        """Make every write so far durable against power loss."""
        ...

    def settle(self) -> None:
        """Write out what the store keeps in memory between writes (a RAID store's held stripes'
        parity, ``raid.held``); the engine owner calls it once writes stop coming."""
        ...

    def close(self) -> None: ...

    def health(self) -> StoreHealth: ...

    def background_step(self, budget: int) -> bool:
        """Do up to about ``budget`` bytes of long work; True while more remains."""
        ...


def check_range(capacity_pages: int, slot: int, offset: int, length: int) -> int:
    """The member-wide byte position of ``(slot, offset)``, after a bounds check."""
    if not (0 <= slot < capacity_pages and offset >= 0 and length >= 0 and offset + length <= PAGE_SIZE):
        raise ValueError(f"slot {slot} [{offset}, +{length}) is outside the member")
    return slot * PAGE_SIZE + offset


class FileStore:
    """A member without RAID: every slot in one sparse disk file (groups made before RAID)."""

    def __init__(self, path: Path, capacity_pages: int) -> None:
        self.path = path
        self.capacity_pages = capacity_pages
        if path.stat().st_size != capacity_pages * PAGE_SIZE:
            raise ValueError(f"member store {path} does not have {capacity_pages} pages")
        self._disk = Disk(path, capacity_pages * PAGE_SIZE)

    @classmethod
    def create(cls, path: Path, capacity_pages: int) -> FileStore:
        if path.exists():
            raise FileExistsError(f"{path} exists")
        Disk.create(path, capacity_pages * PAGE_SIZE).close()
        return cls(path, capacity_pages)

    def read(self, slot: int, offset: int, length: int) -> bytes:
        return self._disk.read(check_range(self.capacity_pages, slot, offset, length), length)

    def write(self, slot: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._disk.write(check_range(self.capacity_pages, slot, offset, len(data)), data)

    def flush(self) -> None:
        self._disk.flush()

    def settle(self) -> None:
        """Nothing is kept between writes."""

    def close(self) -> None:
        """Close the file; closing again does nothing."""
        self._disk.close()

    def health(self) -> StoreHealth:
        return StoreHealth()

    def background_step(self, budget: int) -> bool:
        return False


class MemoryStore:
    """Slots in memory, for fast tests of the layers above (allocated lazily per slot)."""

    def __init__(self, capacity_pages: int) -> None:
        self.capacity_pages = capacity_pages
        self._slots: dict[int, bytearray] = {}

    def read(self, slot: int, offset: int, length: int) -> bytes:
        check_range(self.capacity_pages, slot, offset, length)
        page = self._slots.get(slot)
        return bytes(page[offset : offset + length]) if page is not None else bytes(length)

    def write(self, slot: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        check_range(self.capacity_pages, slot, offset, len(data))
        page = self._slots.get(slot)
        if page is None:
            page = self._slots[slot] = bytearray(PAGE_SIZE)
        page[offset : offset + len(data)] = data

    def flush(self) -> None:
        pass

    def settle(self) -> None:
        """Nothing is kept between writes."""

    def close(self) -> None:
        self._slots.clear()

    def health(self) -> StoreHealth:
        return StoreHealth()

    def background_step(self, budget: int) -> bool:
        return False
