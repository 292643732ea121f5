"""Reading fields out of CDBs and parameter lists.

Every function here is pure: bytes in, integers out, or ``CheckCondition``
for a field this device server does not accept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .sense import invalid_cdb

__all__ = ["be", "Field", "check_reserved", "lba_and_length", "transfer_length", "cdb_bit"]


def be(buf: bytes | memoryview, start: int, size: int) -> int:
    """Big-endian unsigned integer of ``size`` bytes at ``start``."""
    return int.from_bytes(buf[start : start + size], "big")


@dataclass(frozen=True)
class Field:
    """A whole-byte big-endian field of a CDB (ALLOCATION LENGTH, PARAMETER LIST LENGTH)."""

    offset: int
    size: int

    def get(self, cdb: bytes) -> int:
        return be(cdb, self.offset, self.size)


def cdb_bit(cdb: bytes, byte: int, bit: int) -> bool:
    return bool(cdb[byte] >> bit & 1)


def check_reserved(cdb: bytes, usage: bytes) -> None:
    """Refuse any bit this device server does not evaluate (SPC-5 4.2.1: reserved fields).

    ``usage`` is the CDB USAGE DATA that REPORT SUPPORTED OPERATION CODES
    reports; a one bit there is a bit we look at, a zero bit must be zero.
    """
    size = min(len(cdb), len(usage))
    if not int.from_bytes(cdb[:size], "big") & ~int.from_bytes(usage[:size], "big"):
        return  # the common case, checked at once
    for index, (value, used) in enumerate(zip(cdb, usage, strict=False)):
        stray = value & ~used & 0xFF
        if stray:
            raise invalid_cdb(index, stray.bit_length() - 1)


#: LOGICAL BLOCK ADDRESS and TRANSFER LENGTH of 10, 12 and 16-byte block commands (SBC-4 5.x):
#: one precompiled unpack each, since every read and write goes through here.
_LAYOUT = {10: struct.Struct(">2xIxH").unpack_from, 12: struct.Struct(">2xII").unpack_from,
           16: struct.Struct(">2xQI").unpack_from}  # fmt: skip


def lba_and_length(cdb: bytes) -> tuple[int, int]:
    """LOGICAL BLOCK ADDRESS and the length field of a 6/10/12/16-byte block command.

    For the 6-byte READ and WRITE a TRANSFER LENGTH of zero means 256 blocks
    (SBC-4 4.2.2 note on READ(6)/WRITE(6)); every other form returns the raw field.
    """
    if len(cdb) == 6:
        lba = (cdb[1] & 0x1F) << 16 | cdb[2] << 8 | cdb[3]
        return lba, cdb[4] or 256
    return _LAYOUT[len(cdb)](cdb)  # type: ignore[return-value]


def transfer_length(cdb: bytes) -> int:
    return lba_and_length(cdb)[1]
