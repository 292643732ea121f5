"""SBC-4 block commands against real engine volumes."""

from __future__ import annotations

import struct

import pytest

from targets.scsi import Status

BLOCKS = 61440  # a 30 MiB volume
ILLEGAL, DATA_PROTECT, MISCOMPARE = 0x5, 0x7, 0xE


def rw10(opcode: int, lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBIBHB", opcode, flags, lba & 0xFFFFFFFF, 0, blocks, 0)


def rw12(opcode: int, lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBIIBB", opcode, flags, lba, blocks, 0, 0)


def rw16(opcode: int, lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBQIBB", opcode, flags, lba & (2**64 - 1), blocks, 0, 0)


def pattern(blocks: int, seed: int = 1) -> bytes:
    return bytes((seed + i) & 0xFF for i in range(blocks * 512))


# ------------------------------------------------------------------ capacity


def test_read_capacity_10(a):
    data = a.ok([0x25] + [0] * 9)
    assert struct.unpack(">II", data) == (BLOCKS - 1, 512)


def test_read_capacity_10_lba_without_pmi_is_invalid(a):
    assert a.check([0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]).field == (2, None, True)
    a.ok([0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0])


def test_read_capacity_16_reports_provisioning_for_thin_only(a, t):
    cdb = [0x9E, 0x10] + [0] * 8 + [0, 0, 0, 32, 0, 0]
    thick = a.ok(cdb)
    thin = t.ok(cdb)
    assert len(thick) == 32
    assert struct.unpack(">QI", thick[:12]) == (BLOCKS - 1, 512)
    assert thick[12] == 0 and thick[13] == 0  # no protection, LBPPBE 0
    assert thick[14] & 0xC0 == 0
    assert thin[14] & 0xC0 == 0xC0  # LBPME, LBPRZ
    assert len(a.ok(cdb[:10] + [0, 0, 0, 8, 0, 0])) == 8


# ----------------------------------------------------------- read and write


@pytest.mark.parametrize(("build", "read_op", "write_op"), [(rw10, 0x28, 0x2A), (rw12, 0xA8, 0xAA), (rw16, 0x88, 0x8A)])
def test_write_then_read_back(a, build, read_op, write_op):
    data = pattern(8)
    a.ok(build(write_op, 100, 8), data)
    assert a.ok(build(read_op, 100, 8)) == data
    assert a.ok(build(read_op, BLOCKS - 1, 1)) == bytes(512)


def test_read6_and_write6(a):
    a.ok([0x0A, 0, 0, 5, 2, 0], pattern(2))
    assert a.ok([0x08, 0, 0, 5, 2, 0]) == pattern(2)
    assert len(a.ok([0x08, 0, 0, 0, 0, 0])) == 256 * 512  # 0 means 256 blocks


def test_zero_blocks_is_not_an_error_but_the_lba_is_checked(a):
    assert a.ok(rw10(0x28, 0, 0)) == b""
    a.ok(rw10(0x2A, 0, 0))
    for lba in (BLOCKS, BLOCKS + 1, 0x80000000, 0xFFFFFFFF):
        assert a.check(rw10(0x28, lba, 0)).asc == 0x21
        assert a.check(rw10(0x2A, lba, 0)).asc == 0x21


@pytest.mark.parametrize("blocks", [1, 2, 255])
def test_beyond_end_of_medium(a, blocks):
    for lba in (BLOCKS + 1 - blocks, BLOCKS - 1 if blocks > 1 else BLOCKS, 0x80000000):
        sense = a.check(rw10(0x28, lba, blocks))
        assert (sense.key, sense.asc, sense.ascq) == (ILLEGAL, 0x21, 0x00)
    sense = a.check(rw16(0x8A, 2**64 - 1, blocks), pattern(blocks))
    assert sense.asc == 0x21
    sense = a.check(rw10(0x2A, BLOCKS - 1, blocks + 1), pattern(blocks + 1))
    assert sense.asc == 0x21
    assert a.ok(rw10(0x28, BLOCKS - 1, 1)) == bytes(512)  # nothing was written


def test_read6_beyond_end(a):
    assert a.check([0x08, 0x1F, 0xFF, 0xFF, 1, 0]).asc == 0x21


@pytest.mark.parametrize("protect", range(1, 8))
def test_protection_fields_are_refused(a, protect):
    flags = protect << 5
    assert a.check(rw10(0x28, 0, 1, flags)).field == (1, 7, True)
    assert a.check(rw16(0x8A, 0, 1, flags), pattern(1)).field == (1, 7, True)
    assert a.check(rw10(0x2F, 0, 1, flags | 0x02), pattern(1)).asc == 0x24
    assert a.ok(rw10(0x28, 0, 1)) == bytes(512)


@pytest.mark.parametrize("flags", [0x10, 0x08, 0x18, 0x02, 0x1A])
def test_dpo_fua_and_obsolete_fua_nv_are_accepted(a, flags):
    a.ok(rw10(0x2A, 3, 1, flags), pattern(1))
    assert a.ok(rw10(0x28, 3, 1, flags)) == pattern(1)


class _Spy:
    """Records the fua flag of each write the logical unit makes."""

    def __init__(self, device) -> None:
        self._device = device
        self.fua: list[bool] = []

    def __getattr__(self, name):
        return getattr(self._device, name)

    def write(self, lba, data, fua=False):
        self.fua.append(fua)
        return self._device.write(lba, data, fua)


def test_fua_reaches_the_device(a, thick):
    spy = _Spy(thick.device)
    thick.device = spy
    a.ok(rw10(0x2A, 0, 1), pattern(1))
    a.ok(rw10(0x2A, 0, 1, 0x08), pattern(1))
    assert spy.fua == [False, True]


def test_maximum_transfer_length(a):
    sense = a.check(rw16(0x88, 0, 65537))
    assert (sense.asc, sense.field) == (0x24, (10, None, True))  # refused before the range check
    assert a.check(rw16(0x88, 0, 65536)).asc == 0x21
    assert len(a.ok(rw16(0x88, 0, BLOCKS))) == BLOCKS * 512


def test_read_only_volume_refuses_every_write(volumes, connect, hosts):
    ro = connect(volumes.lu("ro"), hosts[0]).clear_ua()
    before = ro.ok(rw10(0x28, 0, 4))
    for cdb, data in (
        (rw10(0x2A, 0, 1), pattern(1)),
        (rw12(0xAA, 0, 1), pattern(1)),
        (rw16(0x8A, 0, 1), pattern(1)),
        ([0x0A, 0, 0, 0, 1, 0], pattern(1)),
        (rw10(0x2E, 0, 1, 0x02), pattern(1)),
        (rw16(0x8E, 0, 1), pattern(1)),
        (rw10(0x41, 0, 1), pattern(1)),
        (rw16(0x93, 0, 1), pattern(1)),
        (struct.pack(">BBQ3xBBB", 0x89, 0, 0, 1, 0, 0), before[:512] + pattern(1)),
    ):
        sense = ro.check(cdb, data)
        assert (sense.key, sense.asc) == (DATA_PROTECT, 0x27), cdb
    assert ro.ok(rw10(0x28, 0, 4)) == before
    assert ro.ok([0x1A, 0, 0x3F, 0, 255, 0])[2] & 0x80  # WP in MODE SENSE


def test_snapshot_reads_the_point_in_time_data(volumes, connect, hosts):
    base = connect(volumes.lu("thick"), hosts[0]).clear_ua()
    base.ok(rw10(0x2A, 10, 2), pattern(2, 7))
    snap = connect(volumes.lu("snap"), hosts[0]).clear_ua()
    base.ok(rw10(0x2A, 10, 2), pattern(2, 9))
    assert snap.ok(rw10(0x28, 10, 2)) == pattern(2, 7)
    assert base.ok(rw10(0x28, 10, 2)) == pattern(2, 9)
    assert struct.unpack(">I", snap.ok([0x25] + [0] * 9)[:4])[0] == BLOCKS - 1


# ------------------------------------------------------------------- verify


def test_verify_bytchk_0_only_checks_the_range(a):
    a.ok(rw10(0x2F, 0, 8))
    assert a.check(rw10(0x2F, BLOCKS, 1)).asc == 0x21
    assert a.check(rw16(0x8F, BLOCKS + 1, 0)).asc == 0x21


def test_verify_bytchk_1_compares_and_reports_the_offset(a):
    a.ok(rw10(0x2A, 20, 4), pattern(4))
    a.ok(rw10(0x2F, 20, 4, 0x02), pattern(4))
    a.ok(rw12(0xAF, 20, 4, 0x02), pattern(4))
    bad = bytearray(pattern(4))
    bad[1500] ^= 0x58
    sense = a.check(rw16(0x8F, 20, 4, 0x02), bytes(bad))
    assert (sense.key, sense.asc, sense.ascq, sense.information) == (MISCOMPARE, 0x1D, 0x00, 1500)


def test_verify_bytchk_3_compares_one_block_with_each(a):
    a.ok(rw10(0x2A, 0, 3), b"\x5a" * 1536)
    a.ok(rw10(0x2F, 0, 3, 0x06), b"\x5a" * 512)
    sense = a.check(rw10(0x2F, 0, 4, 0x06), b"\x5a" * 512)
    assert sense.key == MISCOMPARE and sense.information == 1536


def test_verify_bytchk_2_is_reserved(a):
    assert a.check(rw10(0x2F, 0, 1, 0x04)).field == (1, 2, True)


def test_write_and_verify(a):
    a.ok(rw10(0x2E, 40, 2, 0x02), pattern(2, 3))
    a.ok(rw16(0x8E, 42, 1), pattern(1, 4))
    assert a.ok(rw10(0x28, 40, 3)) == pattern(2, 3) + pattern(1, 4)
    assert a.check(rw12(0xAE, 0, 1, 0x04), pattern(1)).asc == 0x24


# --------------------------------------------------------- compare and write


def caw(lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBQ3xBBB", 0x89, flags, lba, blocks, 0, 0)


def test_compare_and_write_writes_when_equal(a):
    a.ok(rw10(0x2A, 7, 1), pattern(1, 1))
    a.ok(caw(7, 1), pattern(1, 1) + pattern(1, 2))
    assert a.ok(rw10(0x28, 7, 1)) == pattern(1, 2)
    a.ok(caw(7, 1, 0x18), pattern(1, 2) + pattern(1, 3))  # DPO and FUA are accepted


def test_compare_and_write_miscompare_leaves_the_block_and_reports_the_offset(a):
    a.ok(rw10(0x2A, 7, 1), b"A" * 512)
    for offset in (0, 27, 511):
        verify = bytearray(b"A" * 512)
        verify[offset] = ord("Z")
        sense = a.check(caw(7, 1), bytes(verify) + b"B" * 512)
        assert (sense.key, sense.asc, sense.information) == (MISCOMPARE, 0x1D, offset)
    assert a.ok(rw10(0x28, 7, 1)) == b"A" * 512


def test_compare_and_write_limits(a):
    assert a.check(caw(0, 2), bytes(2048)).field == (13, None, True)
    a.ok(caw(0, 0))
    assert a.check(caw(BLOCKS, 1), bytes(1024)).asc == 0x21
    for wrong in (bytes(512), bytes(2048)):  # Data-Out must be exactly 2 x NUMBER OF LOGICAL BLOCKS
        sense = a.check(caw(0, 1), wrong)
        assert (sense.key, sense.asc, sense.ascq) == (ILLEGAL, 0x0E, 0x03)


# -------------------------------------------------------------------- cache


@pytest.mark.parametrize("opcode", [0x35, 0x34])
def test_synchronize_cache_and_prefetch_10(a, opcode):
    a.ok(rw10(opcode, 0, 0))
    a.ok(rw10(opcode, BLOCKS - 1, 1))
    a.ok(rw10(opcode, 0, 1, 0x02))  # IMMED
    assert a.check(rw10(opcode, BLOCKS, 0)).asc == 0x21
    assert a.check(rw10(opcode, BLOCKS - 1, 2)).asc == 0x21


@pytest.mark.parametrize("opcode", [0x91, 0x90])
def test_synchronize_cache_and_prefetch_16(a, opcode):
    result = a.send(rw16(opcode, 0, 16))
    assert result.status == Status.GOOD
    assert a.check(rw16(opcode, 2**63, 1)).asc == 0x21


def test_start_stop_unit(a):
    a.ok([0x1B, 0, 0, 0, 0x01, 0])
    a.ok([0x1B, 1, 0, 0, 0x00, 0])
    a.ok([0x1B, 0, 0, 0, 0x04, 0])
    a.ok([0, 0, 0, 0, 0, 0])  # still ready
    assert a.check([0x1B, 0, 0, 0, 0x02, 0]).field == (4, 1, True)  # LOEJ: not removable
    assert a.check([0x1B, 0, 0, 0, 0x11, 0]).field == (4, 7, True)  # power conditions


def test_prevent_allow_medium_removal(a):
    a.ok([0x1E, 0, 0, 0, 1, 0])
    a.ok([0x1E, 0, 0, 0, 0, 0])
    assert a.check([0x1E, 0, 0, 0, 2, 0]).asc == 0x24
