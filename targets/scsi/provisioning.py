"""Logical block provisioning commands: WRITE SAME, UNMAP, GET LBA STATUS (SBC-4 4.7, 5.6, 5.32, 5.48-5.50).

A thin volume offers provisioning management (LBPME=1): UNMAP, WRITE SAME
with UNMAP, and unmapped blocks that read zeros (LBPRZ=1). A thick volume is
fully provisioned: UNMAP is not offered, WRITE SAME with UNMAP=1 is refused,
and GET LBA STATUS reports every block mapped.
"""

from __future__ import annotations

from array_sim.block import Extent

from .cdb import be, lba_and_length
from .sbc import check_no_protection, check_range, length_field
from .sense import CheckCondition, SenseReason, invalid_cdb, invalid_param
from .spec import Request
from .vpd import MAX_UNMAP_DESCRIPTORS, MAX_UNMAP_LBA_COUNT, MAX_WRITE_SAME_LENGTH

__all__ = ["write_same", "unmap", "get_lba_status"]

#: GET LBA STATUS provisioning status (SBC-4 table 44).
MAPPED, DEALLOCATED = 0x0, 0x1
#: Blocks asked of the device per extents() call while building GET LBA STATUS data.
_EXTENT_WINDOW = 1 << 21


def write_same(req: Request) -> None:
    """WRITE SAME(10/16): one block (zeros with NDOB) to every block of the range.

    ANCHOR is refused (ANC_SUP=0); NUMBER OF LOGICAL BLOCKS 0 is refused (WSNZ=1);
    UNMAP=1 deallocates when the block is all zeros, on thin volumes only (LBPWS).
    """
    cdb, lu = req.cdb, req.unit
    check_no_protection(cdb)
    lba, count = lba_and_length(cdb)
    if cdb[1] & 0x10:
        raise invalid_cdb(1, 4)
    if count == 0 or count > MAX_WRITE_SAME_LENGTH:
        raise invalid_cdb(length_field(cdb))
    check_range(req, lba, count)
    lu.check_writable()
    # UNMAP=1 without LBPWS is refused (as LIO does), after write protection:
    # a read-only volume reports DATA PROTECT for every write, unmapping or not.
    unmap_bit = bool(cdb[1] & 0x08)
    if unmap_bit and not lu.thin:
        raise invalid_cdb(1, 3)
    no_data_out = len(cdb) == 16 and bool(cdb[1] & 0x01)
    if len(req.data_out) != (0 if no_data_out else lu.device.block_size):
        raise CheckCondition(SenseReason.INVALID_FIELD_IN_INFORMATION_UNIT)
    block = bytes(lu.device.block_size) if no_data_out else bytes(req.data_out)
    lu.device.write_same(lba, count, block, unmap=unmap_bit)
    if not lu.mode.write_cache:
        lu.device.flush()


def unmap(req: Request) -> None:
    """UNMAP (SBC-4 5.32): every descriptor is checked before any block is unmapped.

    Descriptors with no blocks are ignored; the BLOCK DESCRIPTOR DATA LENGTH is
    cut to the parameter list received (LIO does the same).
    """
    cdb, lu = req.cdb, req.unit
    if cdb[1] & 0x01:
        raise invalid_cdb(1, 0)  # ANCHOR: ANC_SUP=0
    length = be(cdb, 7, 2)
    if length == 0:
        return
    if length < 8:
        raise CheckCondition(SenseReason.PARAMETER_LIST_LENGTH_ERROR)
    data = req.data_out
    count = min(be(data, 2, 2), length - 8) // 16
    if count > MAX_UNMAP_DESCRIPTORS:
        raise invalid_param(2)
    ranges: list[tuple[int, int]] = []
    total = 0
    for index in range(count):
        at = 8 + 16 * index
        lba, blocks = be(data, at, 8), be(data, at + 8, 4)
        if not blocks:
            continue
        check_range(req, lba, blocks)
        total += blocks
        if total > MAX_UNMAP_LBA_COUNT:
            raise invalid_param(at + 8)
        ranges.append((lba, blocks))
    lu.check_writable()
    for lba, blocks in ranges:
        lu.device.unmap(lba, blocks)


def get_lba_status(req: Request) -> bytes:
    """GET LBA STATUS (SBC-4 5.6): runs of mapped and deallocated blocks from the LBA on.

    As many descriptors as the ALLOCATION LENGTH holds (at least one); the
    first always starts at the STARTING LOGICAL BLOCK ADDRESS.
    """
    cdb, lu = req.cdb, req.unit
    start, allocation = be(cdb, 2, 8), be(cdb, 10, 4)
    check_range(req, start, 0)
    wanted = max(1, (allocation - 8) // 16)
    end = lu.device.num_blocks
    runs: list[Extent] = []
    if not lu.thin:
        runs.append(Extent(start, end - start, True))
    position = start
    while lu.thin and position < end and len(runs) <= wanted:
        window = min(end - position, _EXTENT_WINDOW)
        for extent in lu.device.extents(position, window):
            last = runs[-1] if runs else None
            if last is not None and last.mapped == extent.mapped:
                runs[-1] = Extent(last.lba, last.count + extent.count, last.mapped)
            else:
                runs.append(extent)
        position += window
    body = b"".join(_descriptors(runs))[: wanted * 16]
    return (len(body) + 4).to_bytes(4, "big") + bytes(4) + body


def _descriptors(runs: list[Extent]) -> list[bytes]:
    out = []
    for run in runs:
        lba, left = run.lba, run.count
        while left:
            count = min(left, 0xFFFFFFFF)
            status = MAPPED if run.mapped else DEALLOCATED
            out.append(lba.to_bytes(8, "big") + count.to_bytes(4, "big") + bytes([status]) + bytes(3))
            lba, left = lba + count, left - count
    return out
