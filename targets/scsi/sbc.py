"""SBC-4 block commands: capacity, read, write, verify, compare and write, cache.

Every handler that changes data first checks its CDB, then the whole LBA
range, then write protection, and only then calls the device, so a command
that is refused has changed nothing. (The device checks range and protection
again; that is the engine's own guard.)

No protection information is supported (PROTECT=0 in INQUIRY, PROT_EN=0 in
READ CAPACITY(16)), so a non-zero RDPROTECT / WRPROTECT / VRPROTECT field is
an INVALID FIELD IN CDB (SBC-4 4.21.2).
"""

from __future__ import annotations

from .cdb import be, lba_and_length
from .sense import CheckCondition, SenseReason, invalid_cdb
from .spec import Request
from .vpd import MAX_COMPARE_AND_WRITE_LENGTH, MAX_TRANSFER_LENGTH

__all__ = [
    "check_range",
    "check_no_protection",
    "length_field",
    "read_capacity_10",
    "read_capacity_16",
    "read",
    "write",
    "write_and_verify",
    "verify",
    "compare_and_write",
    "synchronize_cache",
    "pre_fetch",
]

#: Byte offset of the TRANSFER LENGTH (or equivalent) field, by CDB length.
_LENGTH_AT = {6: 4, 10: 7, 12: 6, 16: 10}


def length_field(cdb: bytes) -> int:
    return _LENGTH_AT[len(cdb)]


def check_range(req: Request, lba: int, count: int) -> None:
    """SBC-4 4.5: the LBA must name a block and the range must end by the capacity."""
    capacity = req.unit.device.num_blocks
    if lba >= capacity or lba + count > capacity:
        raise CheckCondition(SenseReason.LBA_OUT_OF_RANGE)


def check_no_protection(cdb: bytes) -> None:
    if len(cdb) > 6 and cdb[1] >> 5:
        raise invalid_cdb(1, 7)


def _check_transfer(cdb: bytes, count: int) -> None:
    """SBC-4 6.6.4: a TRANSFER LENGTH over MAXIMUM TRANSFER LENGTH is refused."""
    if count > MAX_TRANSFER_LENGTH:
        raise invalid_cdb(length_field(cdb))


def _fua(req: Request) -> bool:
    """FUA from the CDB; with the write cache disabled (WCE=0) every write is FUA."""
    return (len(req.cdb) > 6 and bool(req.cdb[1] & 0x08)) or not req.unit.mode.write_cache


def _first_difference(expected: bytes | memoryview, actual: bytes) -> int | None:
    if expected == actual:
        return None
    return next(i for i, (a, b) in enumerate(zip(bytes(expected), actual, strict=True)) if a != b)


# ------------------------------------------------------------------ capacity


def read_capacity_10(req: Request) -> bytes:
    """SBC-4 5.20: last LBA (FFFFFFFFh when READ CAPACITY(16) is needed) and block length."""
    cdb = req.cdb
    if not cdb[8] & 0x01 and be(cdb, 2, 4):
        raise invalid_cdb(2)  # SBC-3: an LBA without PMI (both obsolete now)
    device = req.unit.device
    return min(device.num_blocks - 1, 0xFFFFFFFF).to_bytes(4, "big") + device.block_size.to_bytes(4, "big")


def read_capacity_16(req: Request) -> bytes:
    """SBC-4 5.21: LBPME and LBPRZ for thin volumes; one logical block per physical block."""
    cdb = req.cdb
    if not cdb[14] & 0x01 and be(cdb, 2, 8):
        raise invalid_cdb(2)
    lu = req.unit
    provisioning = 0xC000 if lu.thin else 0  # LBPME, LBPRZ; LOWEST ALIGNED LBA 0
    return (
        (lu.device.num_blocks - 1).to_bytes(8, "big")
        + lu.device.block_size.to_bytes(4, "big")
        + bytes(2)  # no protection; LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT 0
        + provisioning.to_bytes(2, "big")
        + bytes(16)
    )


# -------------------------------------------------------------- read / write


def read(req: Request) -> bytes:
    """READ(6/10/12/16). DPO and FUA are accepted: reads come from the volume itself."""
    check_no_protection(req.cdb)
    lba, count = lba_and_length(req.cdb)
    _check_transfer(req.cdb, count)
    check_range(req, lba, count)
    return req.unit.device.read(lba, count) if count else b""


def write(req: Request) -> None:
    """WRITE(6/10/12/16); FUA makes the write durable before GOOD."""
    check_no_protection(req.cdb)
    lba, count = lba_and_length(req.cdb)
    _check_transfer(req.cdb, count)
    check_range(req, lba, count)
    req.unit.check_writable()
    if count and req.data_out:
        req.unit.device.write(lba, req.data_out, fua=_fua(req))


def write_and_verify(req: Request) -> None:
    """SBC-4 5.45: write durably, then (BYTCHK=01b) compare what was written."""
    cdb = req.cdb
    check_no_protection(cdb)
    bytchk = cdb[1] >> 1 & 0x03
    if bytchk > 1:
        raise invalid_cdb(1, 2)
    lba, count = lba_and_length(cdb)
    _check_transfer(cdb, count)
    check_range(req, lba, count)
    req.unit.check_writable()
    if not count:
        return
    device = req.unit.device
    written = len(req.data_out) // device.block_size
    if not written:
        return
    device.write(lba, req.data_out, fua=True)
    if bytchk:
        offset = _first_difference(req.data_out, device.read(lba, written))
        if offset is not None:
            raise CheckCondition(SenseReason.MISCOMPARE, information=offset)


def verify(req: Request) -> None:
    """SBC-4 5.36: BYTCHK 00b checks the range only; 01b compares the Data-Out with
    the blocks; 11b compares one Data-Out block with each block. A miscompare
    reports the byte offset into the compared data in INFORMATION."""
    cdb = req.cdb
    check_no_protection(cdb)
    bytchk = cdb[1] >> 1 & 0x03
    if bytchk == 2:
        raise invalid_cdb(1, 2)
    lba, count = lba_and_length(cdb)
    if bytchk:
        _check_transfer(cdb, count)
    check_range(req, lba, count)
    if not bytchk or not count:
        return
    expected = bytes(req.data_out) if bytchk == 1 else bytes(req.data_out) * count
    compared = len(expected) // req.unit.device.block_size
    offset = _first_difference(expected, req.unit.device.read(lba, compared)) if compared else None
    if offset is not None:
        raise CheckCondition(SenseReason.MISCOMPARE, information=offset)


def compare_and_write(req: Request) -> None:
    """SBC-4 5.3: compare the first half of the Data-Out with the blocks and, only if
    equal, write the second half. Commands run one at a time, so the pair is
    atomic with respect to every other command."""
    cdb = req.cdb
    check_no_protection(cdb)
    lba, count = be(cdb, 2, 8), cdb[13]
    if count > MAX_COMPARE_AND_WRITE_LENGTH:
        raise invalid_cdb(13)
    check_range(req, lba, count)
    lu = req.unit
    size = count * lu.device.block_size
    if not count and req.data_out:
        # A count that wrapped (256 blocks in a one-byte field) with data behind it.
        raise invalid_cdb(13)
    if len(req.data_out) != 2 * size:
        raise CheckCondition(SenseReason.INVALID_FIELD_IN_INFORMATION_UNIT)
    if not count:
        return
    lu.check_writable()
    offset = _first_difference(req.data_out[:size], lu.device.read(lba, count))
    if offset is not None:
        raise CheckCondition(SenseReason.MISCOMPARE, information=offset)
    lu.device.write(lba, req.data_out[size:], fua=_fua(req))


# --------------------------------------------------------------------- cache


def _cache_range(req: Request) -> None:
    """NUMBER OF LOGICAL BLOCKS zero means 'to the end of the medium'."""
    lba, count = lba_and_length(req.cdb)
    check_range(req, lba, count)


def synchronize_cache(req: Request) -> None:
    """SBC-4 5.27: make every acknowledged write durable (the whole volume; IMMED accepted)."""
    _cache_range(req)
    req.unit.device.flush()


def pre_fetch(req: Request) -> None:
    """SBC-4 5.11: GOOD, not CONDITION MET: this logical unit has no cache to fill
    ("the cache does not have sufficient capacity"), so nothing is prefetched."""
    _cache_range(req)
