"""The block interface: what the SCSI layer sees of a volume or a snapshot.

This is the engine's whole contract with the targets (our iSCSI target and the
LIO/TCMU handler). It knows nothing of SCSI; each error class names the SBC-4
condition it stands for so the SCSI layer can map it to sense data in one table.
Addresses and lengths are in logical blocks of ``block_size`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "BlockError",
    "OutOfRange",
    "WriteProtected",
    "SpaceExhausted",
    "DeviceOffline",
    "UnrecoveredRead",
    "Extent",
    "BlockDevice",
]


class BlockError(Exception):
    """A block request that cannot be carried out; stored data is unchanged."""


class OutOfRange(BlockError):
    """The range passes the end of the device (SBC-4: LOGICAL BLOCK ADDRESS OUT OF RANGE)."""


class WriteProtected(BlockError):
    """A write to a read-only volume or snapshot (SBC-4: DATA PROTECT / WRITE PROTECTED)."""


class SpaceExhausted(BlockError):
    """No space to allocate a page (SBC-4: SPACE ALLOCATION FAILED WRITE PROTECT)."""


class DeviceOffline(BlockError):
    """The volume or snapshot is offline (SPC-5: LOGICAL UNIT NOT READY)."""


class UnrecoveredRead(BlockError):
    """Stored data that can be neither read nor rebuilt (SBC-4: MEDIUM ERROR / UNRECOVERED READ ERROR)."""


@dataclass(frozen=True)
class Extent:
    """A run of blocks that are all mapped (allocated) or all unmapped."""

    lba: int
    count: int
    mapped: bool


class BlockDevice(Protocol):
    """A volume or snapshot as a device of fixed-size logical blocks."""

    @property
    def name(self) -> str: ...

    @property
    def block_size(self) -> int: ...

    @property
    def num_blocks(self) -> int: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def thin(self) -> bool: ...

    @property
    def online(self) -> bool: ...

    def read(self, lba: int, count: int) -> bytes: ...

    def write(self, lba: int, data: bytes | bytearray | memoryview, fua: bool = False) -> None: ...

    def flush(self) -> None: ...

    def unmap(self, lba: int, count: int) -> None: ...

    def write_same(self, lba: int, count: int, block: bytes, unmap: bool = False) -> None: ...

    def extents(self, lba: int, count: int) -> list[Extent]: ...
