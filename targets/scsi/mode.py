"""Mode pages and MODE SENSE / MODE SELECT (SPC-5 6.11-6.14, 7.5; SBC-4 6.5).

Pages: Caching (08h), Control (0Ah), Informational Exceptions Control (1Ch).
The current values are shared by every I_T nexus (SPC-5 7.5.2 allows either);
a change through one nexus gives the others MODE PARAMETERS CHANGED. Saved
values are not implemented: PC=11b answers SAVING PARAMETERS NOT SUPPORTED,
SP=1 is refused, and a reset returns the current values to the defaults.

Changeable fields, and what they do here:

* WCE (Caching): 1 by default. The volume has a write-back cache in the
  sense SBC-4 means: a write is acknowledged before it is durable, and
  SYNCHRONIZE CACHE (or FUA) makes it durable. With WCE=0 every write is
  done as if FUA were set.
* D_SENSE (Control): sense data in descriptor format.
* SWP (Control): software write protect; writes get DATA PROTECT.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cdb import be
from .sense import CheckCondition, FieldPointer, SenseReason, invalid_cdb, invalid_param
from .spec import Request

__all__ = ["ModePage", "PAGES", "ModeParameters", "mode_sense", "mode_select"]


@dataclass(frozen=True)
class ModePage:
    """A page as ``default`` values (with its 2-byte header) and a ``changeable`` mask."""

    code: int
    default: bytes
    changeable: bytes

    def __post_init__(self) -> None:
        assert len(self.default) == len(self.changeable) == self.default[1] + 2


def _page(code: int, body: bytes, changeable: dict[int, int]) -> ModePage:
    header = bytes([code, len(body)])
    mask = bytearray(len(body) + 2)
    mask[:2] = header
    for offset, bits in changeable.items():
        mask[offset] = bits
    return ModePage(code, header + body, bytes(mask))


CACHING = _page(0x08, bytes([0x04]) + bytes(17), {2: 0x04})  # WCE=1; WCE changeable
CONTROL = _page(0x0A, bytes(10), {2: 0x04, 4: 0x08})  # TST=0, QAM=0, QERR=0, TAS=0; D_SENSE, SWP changeable
INFORMATIONAL_EXCEPTIONS = _page(0x1C, bytes([0x08]) + bytes(9), {})  # DEXCPT=1, MRIE=0: nothing reported

PAGES: dict[int, ModePage] = {page.code: page for page in (CACHING, CONTROL, INFORMATIONAL_EXCEPTIONS)}


class ModeParameters:
    """The current mode page values of one logical unit."""

    def __init__(self) -> None:
        self.current: dict[int, bytearray] = {}
        self.restore_defaults()

    def restore_defaults(self) -> bool:
        """Back to the defaults; True if that changed anything."""
        before = {code: bytes(value) for code, value in self.current.items()}
        self.current = {code: bytearray(page.default) for code, page in PAGES.items()}
        return bool(before) and before != {code: bytes(value) for code, value in self.current.items()}

    @property
    def write_cache(self) -> bool:
        return bool(self.current[0x08][2] & 0x04)

    @property
    def d_sense(self) -> bool:
        return bool(self.current[0x0A][2] & 0x04)

    @property
    def software_write_protect(self) -> bool:
        return bool(self.current[0x0A][4] & 0x08)


# ------------------------------------------------------------------- MODE SENSE


def _values(lu_mode: ModeParameters, page: ModePage, pc: int) -> bytes:
    if pc == 0:
        return bytes(lu_mode.current[page.code])
    if pc == 1:
        return page.changeable
    return page.default


def _selected_pages(cdb: bytes) -> list[ModePage]:
    code, subpage = cdb[2] & 0x3F, cdb[3]
    if subpage not in (0x00, 0xFF):
        raise invalid_cdb(3, 7)
    if code == 0x3F:
        return [PAGES[c] for c in sorted(PAGES)]
    if code in PAGES:
        return [PAGES[code]]
    raise invalid_cdb(2, 5)


def mode_sense(req: Request) -> bytes:
    """MODE SENSE(6) and (10): header, block descriptor unless DBD, pages in code order."""
    lu, cdb = req.unit, req.cdb
    ten = len(cdb) == 10
    pc = cdb[2] >> 6
    if pc == 3:
        raise CheckCondition(SenseReason.SAVING_PARAMETERS_NOT_SUPPORTED, field=FieldPointer(2, 7))
    pages = b"".join(_values(lu.mode, page, pc) for page in _selected_pages(cdb))
    long_lba = ten and bool(cdb[1] & 0x10)
    descriptor = b"" if cdb[1] & 0x08 else _block_descriptor(req, long_lba, changeable=pc == 1)
    # Device-specific parameter (SBC-4 6.5.1): WP, and DPOFUA (DPO and FUA are honoured).
    specific = (0x80 if lu.write_protected else 0) | 0x10
    if ten:
        body = bytes([0, specific, 0x01 if long_lba and descriptor else 0, 0])
        body += len(descriptor).to_bytes(2, "big") + descriptor + pages
        return (len(body)).to_bytes(2, "big") + body
    body = bytes([0, specific, len(descriptor)]) + descriptor + pages
    return bytes([len(body)]) + body


def _block_descriptor(req: Request, long_lba: bool, changeable: bool) -> bytes:
    """SBC-4 6.4.2: NUMBER OF LOGICAL BLOCKS (FFFFFFFFh when it does not fit) and the block length."""
    if changeable:
        return bytes(16 if long_lba else 8)
    device = req.unit.device
    if long_lba:
        return device.num_blocks.to_bytes(8, "big") + bytes(4) + device.block_size.to_bytes(4, "big")
    blocks = min(device.num_blocks, 0xFFFFFFFF)
    return blocks.to_bytes(4, "big") + b"\x00" + device.block_size.to_bytes(3, "big")


# ------------------------------------------------------------------ MODE SELECT


def mode_select(req: Request) -> None:
    """MODE SELECT(6) and (10): validate the whole parameter list, then apply it at once.

    A field that is not changeable may only be sent back with its current
    value; the PS bit and the MODE DATA LENGTH and device-specific parameter
    of the header are ignored (they are reserved for MODE SELECT).
    """
    lu, cdb = req.unit, req.cdb
    ten = len(cdb) == 10
    if cdb[1] & 0x01:
        raise invalid_cdb(1, 0)  # SP: no saved pages
    length = be(cdb, 7, 2) if ten else cdb[4]
    if cdb[1] & 0x02:  # RTD (SPC-5): revert to defaults, with no parameter list
        if length:
            raise invalid_cdb(1, 1)
        if lu.mode.restore_defaults():
            lu.unit_attention.establish(SenseReason.UA_MODE_PARAMETERS_CHANGED, exclude=req.nexus)
        return
    if length == 0:
        return
    data = bytes(req.data_out[:length])
    updates = _parse(req, data, ten)
    changed = False
    for code, page in updates.items():
        current = lu.mode.current[code]
        if current[2:] != page[2:]:
            changed = True
            current[2:] = page[2:]
    if changed:
        # SWP=1 writes out cached data first; WCE=0 stops caching. Both: flush now.
        lu.device.flush()
        lu.unit_attention.establish(SenseReason.UA_MODE_PARAMETERS_CHANGED, exclude=req.nexus)


def _parse(req: Request, data: bytes, ten: bool) -> dict[int, bytes]:
    header = 8 if ten else 4
    if len(data) < header:
        raise CheckCondition(SenseReason.PARAMETER_LIST_LENGTH_ERROR)
    medium_at = 2 if ten else 1
    if data[medium_at]:
        raise invalid_param(medium_at, 7)
    bd_at = 6 if ten else 3
    bd_length = be(data, 6, 2) if ten else data[3]
    long_lba = ten and bool(data[4] & 0x01)
    if bd_length not in (0, 16 if long_lba else 8):
        raise invalid_param(bd_at)
    if header + bd_length > len(data):
        raise CheckCondition(SenseReason.PARAMETER_LIST_LENGTH_ERROR)
    if bd_length:
        _check_block_descriptor(req, data, header, long_lba)
    updates: dict[int, bytes] = {}
    at = header + bd_length
    while at < len(data):
        if len(data) - at < 2:
            raise CheckCondition(SenseReason.PARAMETER_LIST_LENGTH_ERROR)
        if data[at] & 0x40:
            raise invalid_param(at, 6)  # SPF: we have no subpages
        page = PAGES.get(data[at] & 0x3F)
        if page is None:
            raise invalid_param(at, 5)
        if data[at + 1] != len(page.default) - 2:
            raise invalid_param(at + 1, 7)
        end = at + len(page.default)
        if end > len(data):
            raise CheckCondition(SenseReason.PARAMETER_LIST_LENGTH_ERROR)
        current = req.unit.mode.current[page.code]
        for offset in range(2, len(page.default)):
            stray = (data[at + offset] ^ current[offset]) & ~page.changeable[offset] & 0xFF
            if stray:
                raise invalid_param(at + offset, stray.bit_length() - 1)
        updates[page.code] = data[at:end]
        at = end
    return updates


def _check_block_descriptor(req: Request, data: bytes, at: int, long_lba: bool) -> None:
    """The block length must stay 512; the block count must be 0 or the capacity (SBC-4 6.4.2)."""
    device = req.unit.device
    if long_lba:
        blocks, length, length_at = be(data, at, 8), be(data, at + 12, 4), at + 12
        capacity = device.num_blocks
    else:
        blocks, length, length_at = be(data, at, 4), be(data, at + 5, 3), at + 5
        capacity = min(device.num_blocks, 0xFFFFFFFF)
    if length != device.block_size:
        raise invalid_param(length_at)
    if blocks not in (0, capacity):
        raise invalid_param(at)
