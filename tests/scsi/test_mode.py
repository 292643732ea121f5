"""MODE SENSE and MODE SELECT: pages, block descriptors, changeable fields and their effects."""

from __future__ import annotations

import struct

BLOCKS = 61440
ILLEGAL, UNIT_ATTENTION, DATA_PROTECT = 0x5, 0x6, 0x7


def pages_of(data: bytes, header: int) -> dict[int, bytes]:
    """Pages after the header and block descriptors of MODE SENSE data."""
    bd_length = data[3] if header == 4 else int.from_bytes(data[6:8], "big")
    at, pages = header + bd_length, {}
    while at < len(data):
        pages[data[at] & 0x3F] = data[at : at + 2 + data[at + 1]]
        at += 2 + data[at + 1]
    return pages


def sense10(host, page: int = 0x3F, pc: int = 0, llbaa: bool = False, dbd: bool = False) -> bytes:
    flags = (0x10 if llbaa else 0) | (0x08 if dbd else 0)
    return host.ok(struct.pack(">BBBB3xHB", 0x5A, flags, pc << 6 | page, 0, 1024, 0))


def test_mode_sense_6_all_pages(a):
    data = a.mode_sense6()
    assert data[0] == len(data) - 1 and data[1] == 0
    assert data[2] == 0x10  # DPOFUA, not write protected
    assert data[3] == 8
    blocks, length = struct.unpack(">I", data[4:8])[0], int.from_bytes(data[9:12], "big")
    assert (blocks, length) == (BLOCKS, 512)
    pages = pages_of(data, 4)
    assert sorted(pages) == [0x08, 0x0A, 0x1C]
    assert pages[0x08][1] == 0x12 and pages[0x08][2] & 0x04  # WCE
    assert pages[0x0A][1] == 0x0A and pages[0x0A][2] & 0x04 == 0  # fixed-format sense
    assert pages[0x1C][1] == 0x0A


def test_mode_sense_single_page_matches_all_pages(a):
    everything = pages_of(a.mode_sense6(), 4)
    for code in (0x08, 0x0A, 0x1C):
        assert pages_of(a.mode_sense6(page=code), 4) == {code: everything[code]}


def test_mode_sense_10_with_long_lba_descriptor(a):
    data = sense10(a, llbaa=True)
    assert int.from_bytes(data[:2], "big") == len(data) - 2
    assert data[4] & 0x01 and int.from_bytes(data[6:8], "big") == 16
    assert struct.unpack(">Q4xI", data[8:24]) == (BLOCKS, 512)
    assert pages_of(data, 8) == pages_of(a.mode_sense6(), 4)
    short = sense10(a)
    assert int.from_bytes(short[6:8], "big") == 8 and short[4] == 0


def test_dbd_drops_the_block_descriptor(a):
    assert a.mode_sense6(dbd=True)[3] == 0
    assert sense10(a, dbd=True)[6:8] == b"\x00\x00"


def test_page_controls(a):
    changeable = pages_of(a.mode_sense6(pc=1), 4)
    assert changeable[0x08][2] == 0x04 and changeable[0x0A][2] == 0x04 and changeable[0x0A][4] == 0x08
    assert not any(changeable[0x1C][2:])
    default = pages_of(a.mode_sense6(pc=2), 4)
    assert default == pages_of(a.mode_sense6(pc=0), 4)
    sense = a.check([0x1A, 0, 0xFF, 0, 255, 0])
    assert (sense.key, sense.asc, sense.ascq) == (ILLEGAL, 0x39, 0x00)


def test_unknown_page_and_subpage(a):
    assert a.check([0x1A, 0, 0x19, 0, 255, 0]).field == (2, 5, True)
    assert a.check([0x1A, 0, 0x0A, 0x01, 255, 0]).field == (3, 7, True)
    assert pages_of(a.ok([0x1A, 0, 0x3F, 0xFF, 255, 0]), 4).keys() == {0x08, 0x0A, 0x1C}


def test_allocation_length_cuts_mode_data(a):
    assert len(a.mode_sense6(alloc=4)) == 4


def _select_control(host, byte2: int, byte4: int = 0) -> None:
    page = bytearray(pages_of(host.mode_sense6(page=0x0A), 4)[0x0A])
    page[2], page[4] = byte2, byte4
    host.ok(bytes([0x15, 0x10, 0, 0, 4 + len(page), 0]), bytes(4) + bytes(page))


def test_d_sense_switches_to_descriptor_format_and_tells_other_nexuses(a, b):
    _select_control(a, 0x04)
    sense = b.check([0, 0, 0, 0, 0, 0])
    assert (sense.key, sense.asc, sense.ascq, sense.descriptor) == (UNIT_ATTENTION, 0x2A, 0x01, True)
    sense = a.check(struct.pack(">BBQIBB", 0x88, 0, 2**64 - 1, 1, 0, 0))
    assert sense.descriptor and (sense.key, sense.asc) == (ILLEGAL, 0x21)
    sense = a.check([0x00, 0x80, 0, 0, 0, 0])
    assert sense.descriptor and sense.field == (1, 7, True)
    _select_control(a, 0x00)
    assert not a.check([0x00, 0x80, 0, 0, 0, 0]).descriptor


def test_software_write_protect(a):
    _select_control(a, 0x00, 0x08)
    assert a.mode_sense6()[2] & 0x80
    sense = a.check(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0), b"\x01" * 512)
    assert (sense.key, sense.asc) == (DATA_PROTECT, 0x27)
    assert a.ok(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0)) == bytes(512)
    _select_control(a, 0x00, 0x00)
    a.ok(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0), b"\x01" * 512)


class _Spy:
    def __init__(self, device) -> None:
        self._device = device
        self.fua: list[bool] = []

    def __getattr__(self, name):
        return getattr(self._device, name)

    def write(self, lba, data, fua=False):
        self.fua.append(fua)
        return self._device.write(lba, data, fua)


def test_write_cache_disabled_makes_every_write_fua(a, thick):
    spy = _Spy(thick.device)
    thick.device = spy
    caching = bytearray(pages_of(a.mode_sense6(page=0x08), 4)[0x08])
    caching[2] &= ~0x04
    a.ok(bytes([0x15, 0x10, 0, 0, 4 + len(caching), 0]), bytes(4) + bytes(caching))
    a.ok(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0), b"\x01" * 512)
    assert spy.fua == [True]
    assert pages_of(a.mode_sense6(page=0x08), 4)[0x08][2] & 0x04 == 0


def test_mode_select_refuses_changes_to_unchangeable_fields(a, b):
    page = bytearray(pages_of(a.mode_sense6(page=0x0A), 4)[0x0A])
    page[3] = 0x10  # QUEUE ALGORITHM MODIFIER
    sense = a.check(bytes([0x15, 0x10, 0, 0, 4 + len(page), 0]), bytes(4) + bytes(page))
    assert (sense.key, sense.asc, sense.field) == (ILLEGAL, 0x26, (7, 4, False))
    b.ok([0, 0, 0, 0, 0, 0])  # nothing changed, so no unit attention


def test_mode_select_parameter_list_checks(a):
    page = pages_of(a.mode_sense6(page=0x0A), 4)[0x0A]
    assert a.check(bytes([0x15, 0x11, 0, 0, 4 + len(page), 0]), bytes(4) + page).field == (1, 0, True)  # SP
    assert a.check(bytes([0x15, 0x10, 0, 0, 3, 0]), bytes(3)).asc == 0x1A
    truncated = bytes(4) + page[:6]
    assert a.check(bytes([0x15, 0x10, 0, 0, len(truncated), 0]), truncated).asc == 0x1A
    unknown = bytes(4) + bytes([0x19, 0x02, 0, 0])
    assert a.check(bytes([0x15, 0x10, 0, 0, len(unknown), 0]), unknown).field == (4, 5, False)
    wrong_length = bytes(4) + bytes([0x0A, 0x08]) + bytes(8)
    assert a.check(bytes([0x15, 0x10, 0, 0, len(wrong_length), 0]), wrong_length).field == (5, 7, False)
    a.ok(bytes([0x15, 0x10, 0, 0, 0, 0]))


def test_mode_select_block_descriptor(a):
    page = pages_of(a.mode_sense6(page=0x0A), 4)[0x0A]
    for blocks in (0, BLOCKS):
        params = bytes([0, 0, 0, 8]) + struct.pack(">IxBH", blocks, 0, 512) + page
        a.ok(bytes([0x15, 0x10, 0, 0, len(params), 0]), params)
    params = bytes([0, 0, 0, 8]) + struct.pack(">IxBH", 0, 0, 4096) + page
    assert a.check(bytes([0x15, 0x10, 0, 0, len(params), 0]), params).asc == 0x26
    params = bytes([0, 0, 0, 8]) + struct.pack(">IxBH", 5, 0, 512) + page
    assert a.check(bytes([0x15, 0x10, 0, 0, len(params), 0]), params).field == (4, None, False)


def test_mode_select_10_and_revert_to_defaults(a, b):
    page = bytearray(pages_of(a.mode_sense6(page=0x0A), 4)[0x0A])
    page[2] = 0x04
    params = bytes(8) + bytes(page)
    a.ok(struct.pack(">BB5xHB", 0x55, 0x10, len(params), 0), params)
    assert pages_of(sense10(a, page=0x0A), 8)[0x0A][2] == 0x04
    b.clear_ua()
    assert a.check(struct.pack(">BB5xHB", 0x55, 0x12, 8, 0), bytes(8)).field == (1, 1, True)
    a.ok(struct.pack(">BB5xHB", 0x55, 0x02, 0, 0))  # RTD
    assert pages_of(sense10(a, page=0x0A), 8)[0x0A][2] == 0x00
    assert b.check([0, 0, 0, 0, 0, 0]).asc == 0x2A
