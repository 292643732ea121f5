"""WRITE SAME, UNMAP and GET LBA STATUS on thin and thick volumes."""

from __future__ import annotations

import struct

import pytest

BLOCKS = 61440
PAGE = 30720
ILLEGAL, DATA_PROTECT = 0x5, 0x7


def ws10(lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBIBHB", 0x41, flags, lba & 0xFFFFFFFF, 0, blocks, 0)


def ws16(lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBQIBB", 0x93, flags, lba & (2**64 - 1), blocks, 0, 0)


def read(host, lba: int, blocks: int) -> bytes:
    return host.ok(struct.pack(">BBQIBB", 0x88, 0, lba, blocks, 0, 0))


def write(host, lba: int, data: bytes) -> None:
    host.ok(struct.pack(">BBQIBB", 0x8A, 0, lba, len(data) // 512, 0, 0), data)


def unmap_cdb(descriptors: list[tuple[int, int]], length: int | None = None) -> tuple[bytes, bytes]:
    body = b"".join(struct.pack(">QI4x", lba, count) for lba, count in descriptors)
    params = struct.pack(">HH4x", len(body) + 6, len(body)) + body
    size = len(params) if length is None else length
    return struct.pack(">BB5xHB", 0x42, 0, size, 0), params[:size]


def lba_status(host, lba: int, alloc: int = 1024) -> list[tuple[int, int, int]]:
    data = host.ok(struct.pack(">BBQIBB", 0x9E, 0x12, lba & (2**64 - 1), alloc, 0, 0))
    length = int.from_bytes(data[:4], "big")
    assert length == len(data) - 4 or len(data) == alloc
    return [struct.unpack(">QIB", data[at : at + 13]) for at in range(8, len(data) - 15, 16)]


# --------------------------------------------------------------- WRITE SAME


@pytest.mark.parametrize("build", [ws10, ws16])
def test_write_same_repeats_one_block(t, build):
    block = bytes(range(256)) * 2
    t.ok(build(5, 300), block)
    assert read(t, 5, 300) == block * 300
    assert read(t, 305, 1) == bytes(512)


@pytest.mark.parametrize("build", [ws10, ws16])
def test_write_same_unmap_deallocates_whole_pages_on_thin(t, build):
    write(t, PAGE - 4, b"\xff" * 2048)
    write(t, PAGE, b"\xee" * 512)
    assert lba_status(t, 0) == [(0, BLOCKS, 0)]
    t.ok(build(0, PAGE, 0x08), bytes(512))
    assert read(t, PAGE - 4, 4) == bytes(2048)
    assert lba_status(t, 0) == [(0, PAGE, 1), (PAGE, PAGE, 0)]
    t.ok(build(PAGE, PAGE, 0x08), bytes(512))
    assert lba_status(t, 0) == [(0, BLOCKS, 1)]


@pytest.mark.parametrize("build", [ws10, ws16])
def test_write_same_unmap_with_a_non_zero_block_writes_it(t, build):
    t.ok(build(0, 4, 0x08), b"\x09" * 512)
    assert read(t, 0, 4) == b"\x09" * 2048


def test_write_same_16_ndob_writes_zeros_without_data_out(t):
    write(t, 0, b"\x11" * 1024)
    t.ok(ws16(0, 2, 0x01))
    assert read(t, 0, 2) == bytes(1024)


def test_write_same_refusals(t, a):
    block = b"\x01" * 512
    assert t.check(ws10(0, 0), block).field == (7, None, True)  # WSNZ
    assert t.check(ws16(0, 32 * PAGE + 1), block).field == (10, None, True)
    assert t.check(ws16(0, 1, 0x10), block).field == (1, 4, True)  # ANCHOR
    assert t.check(ws16(0, 1, 0x18), bytes(512)).field == (1, 4, True)
    assert t.check(ws10(0, 1, 0x04), block).field == (1, 2, True)  # obsolete PBDATA/LBDATA
    assert a.check(ws16(0, 1, 0x08), bytes(512)).field == (1, 3, True)  # UNMAP on a thick volume
    for wrong in (b"\x01" * 256, b"\x01" * 1024):
        assert t.check(ws10(0, 1), wrong).asc == 0x0E
    for lba, count in ((BLOCKS, 1), (BLOCKS - 1, 2), (2**63, 1), (2**64 - 1, 1)):
        assert t.check(ws16(lba, count), block).asc == 0x21
    assert read(t, 0, 2) == bytes(1024)


def test_write_same_maximum_length_is_accepted(t):
    t.ok(ws16(0, BLOCKS), b"\x07" * 512)
    assert read(t, BLOCKS - 1, 1) == b"\x07" * 512


# -------------------------------------------------------------------- UNMAP


def test_unmap_reads_zeros_and_deallocates(t):
    write(t, 0, b"a" * 512 * 256)
    cdb, params = unmap_cdb([(0, 1), (10, 5)])
    t.ok(cdb, params)
    data = read(t, 0, 16)
    assert data[:512] == bytes(512) and data[512:1024] == b"a" * 512
    assert data[5120:7680] == bytes(2560) and data[7680:] == b"a" * 512 * 1
    write(t, PAGE, b"b" * 512)
    cdb, params = unmap_cdb([(0, PAGE), (PAGE, PAGE)])
    t.ok(cdb, params)
    assert lba_status(t, 0) == [(0, BLOCKS, 1)]


def test_unmap_zero_blocks_and_empty_lists_are_fine(t):
    for descriptors in ([(0, 0)], [(BLOCKS, 0)], [], [(i, 0) for i in range(256)]):
        cdb, params = unmap_cdb(descriptors)
        t.ok(cdb, params)
    t.ok(struct.pack(">BB5xHB", 0x42, 0, 0, 0))


def test_unmap_checks_every_descriptor_before_unmapping_anything(t):
    write(t, 0, b"c" * 1024)
    cdb, params = unmap_cdb([(0, 2), (BLOCKS - 1, 2)])
    sense = t.check(cdb, params)
    assert (sense.key, sense.asc) == (ILLEGAL, 0x21)
    assert read(t, 0, 2) == b"c" * 1024


def test_unmap_limits(t):
    cdb, params = unmap_cdb([(i, 1) for i in range(257)])
    sense = t.check(cdb, params)
    assert (sense.asc, sense.field) == (0x26, (2, None, False))
    cdb, params = unmap_cdb([(0, PAGE), (PAGE, PAGE)] * 16 + [(0, 1)])
    assert t.check(cdb, params).asc == 0x26
    cdb, params = unmap_cdb([(0, 1)], length=7)
    assert t.check(cdb, params).asc == 0x1A
    assert t.check(struct.pack(">BB5xHB", 0x42, 0x01, 24, 0), bytes(24)).field == (1, 0, True)  # ANCHOR


def test_unmap_is_not_offered_by_thick_volumes(a):
    cdb, params = unmap_cdb([(0, 1)])
    sense = a.check(cdb, params)
    assert (sense.key, sense.asc, sense.ascq) == (ILLEGAL, 0x20, 0x00)


def test_unmap_on_a_read_only_thin_volume(volumes, connect, hosts):
    host = connect(volumes.lu("thin"), hosts[0]).clear_ua()
    write(host, 0, b"d" * 512)
    volumes.group.set_volume_read_only(volumes.name("thin"), True)
    cdb, params = unmap_cdb([(0, 1)])
    assert host.check(cdb, params).key == DATA_PROTECT
    assert host.check(ws16(0, 1, 0x08), bytes(512)).key == DATA_PROTECT
    assert read(host, 0, 1) == b"d" * 512


# ----------------------------------------------------------- GET LBA STATUS


def test_get_lba_status_on_thin(t):
    assert lba_status(t, 0) == [(0, BLOCKS, 1)]
    write(t, PAGE + 3, b"x" * 512)
    assert lba_status(t, 0) == [(0, PAGE, 1), (PAGE, PAGE, 0)]
    assert lba_status(t, 7) == [(7, PAGE - 7, 1), (PAGE, PAGE, 0)]
    assert lba_status(t, 0, alloc=24) == [(0, PAGE, 1)]
    assert lba_status(t, BLOCKS - 1) == [(BLOCKS - 1, 1, 0)]


def test_get_lba_status_on_thick_is_all_mapped(a):
    assert lba_status(a, 100) == [(100, BLOCKS - 100, 0)]


def test_get_lba_status_beyond_end(t):
    for lba in (BLOCKS, BLOCKS + 1, 2**63, 2**64 - 1):
        assert t.check(struct.pack(">BBQIBB", 0x9E, 0x12, lba, 24, 0, 0)).asc == 0x21


def test_write_same_unmap_on_a_read_only_thick_volume_is_data_protect(volumes, connect, hosts):
    """libiscsi's test_readonly_sbc expects DATA PROTECT whatever the provisioning."""
    host = connect(volumes.lu("ro"), hosts[0]).clear_ua()
    sense = host.check(ws10(0, 1, 0x08), bytes(512))
    assert (sense.key, sense.asc) == (DATA_PROTECT, 0x27)
