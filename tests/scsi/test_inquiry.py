"""Standard INQUIRY data and the VPD pages."""

from __future__ import annotations

import pytest

ILLEGAL = 0x5


def _designators(page: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """(code set, PIV, association, type, value) of each designation descriptor."""
    out, at = [], 4
    while at < len(page):
        length = page[at + 3]
        out.append(
            (
                page[at] & 0x0F,
                page[at + 1] >> 7,
                page[at + 1] >> 4 & 0x3,
                page[at + 1] & 0x0F,
                page[at + 4 : at + 4 + length],
            )
        )
        at += 4 + length
    return out


def test_standard_inquiry(a):
    data = a.ok([0x12, 0, 0, 1, 4, 0])  # allocation length 260
    assert len(data) == 96 and data[4] == len(data) - 5
    assert data[0] == 0x00  # connected direct-access block device
    assert data[1] == 0x00  # not removable
    assert data[2] == 0x06  # SPC-4: what initiators accept (SPC-5 in the version descriptors)
    assert data[3] == 0x12  # HISUP, response data format 2
    assert data[5] & 0x30 == 0 and data[5] & 0x01 == 0  # TPGS 0, PROTECT 0
    assert data[7] & 0x02  # CMDQUE
    assert data[8:16] == b"EQLOGIC " and data[16:32] == b"100E-00".ljust(16) and data[32:36] == b"8.1 "
    descriptors = {int.from_bytes(data[i : i + 2], "big") for i in range(58, 74, 2)}
    assert {0x00A0, 0x05C0, 0x0600, 0x04C0} <= descriptors


def test_allocation_lengths_are_honoured_byte_by_byte(a):
    full = a.ok([0x12, 0, 0, 0, 255, 0])
    for length in range(0, 100, 7):
        assert a.ok([0x12, 0, 0, 0, length, 0]) == full[:length]


def test_page_code_without_evpd_is_invalid(a):
    sense = a.check([0x12, 0, 0x80, 0, 255, 0])
    assert (sense.key, sense.asc, sense.field) == (ILLEGAL, 0x24, (2, 7, True))


def test_unknown_vpd_page_is_invalid(a):
    assert a.check([0x12, 1, 0xC0, 0, 255, 0]).field == (2, 7, True)


def test_supported_pages_are_sorted_and_all_readable(a):
    page = a.ok([0x12, 1, 0, 0, 255, 0])
    codes = list(page[4 : 4 + page[3]])
    assert codes == sorted(codes) == [0x00, 0x80, 0x83, 0x86, 0xB0, 0xB1, 0xB2]
    for code in codes:
        data = a.ok([0x12, 1, code, 0, 255, 0])
        assert data[1] == code and int.from_bytes(data[2:4], "big") == len(data) - 4


def test_unit_serial_number(a, thick):
    page = a.ok([0x12, 1, 0x80, 0, 255, 0])
    assert page[4:].decode() == thick.serial


def test_device_identification(a, thick, hosts):
    designators = _designators(a.ok([0x12, 1, 0x83, 0, 255, 0]))
    naa = [d for d in designators if d[3] == 3]
    assert naa == [(1, 0, 0, 3, thick.naa)]
    names = {d[2]: d[4].rstrip(b"\x00").decode() for d in designators if d[3] == 8}
    assert names == {2: thick.target_name, 1: hosts[0].target_port}
    assert all(len(d[4]) % 4 == 0 for d in designators if d[3] == 8)
    port = [d for d in designators if d[3] == 4]
    assert port and int.from_bytes(port[0][4], "big") == 1 and port[0][2] == 1
    group = [d for d in designators if d[3] == 5]
    assert group and group[0][2] == 1


def test_extended_inquiry(a):
    page = a.ok([0x12, 1, 0x86, 0, 255, 0])
    assert len(page) == 64 and page[4] == 0 and page[5] & 0x07 == 0x07


@pytest.mark.parametrize("volume", ["thin", "thick"])
def test_block_limits(volumes, connect, hosts, volume):
    page = connect(volumes.lu(volume), hosts[0]).clear_ua().ok([0x12, 1, 0xB0, 0, 255, 0])
    assert page[3] == 0x3C
    field = lambda at, size: int.from_bytes(page[at : at + size], "big")  # noqa: E731
    assert page[4] & 0x01  # WSNZ
    assert page[5] == 1  # MAXIMUM COMPARE AND WRITE LENGTH
    assert field(8, 4) == 65536
    assert field(36, 8) == 32 * 30720
    if volume == "thin":
        assert field(20, 4) == 32 * 30720 and field(24, 4) == 256
        assert field(28, 4) == 30720 and field(32, 4) == 0x80000000
    else:
        assert field(20, 4) == field(24, 4) == field(28, 4) == 0


def test_block_device_characteristics_say_non_rotating(a):
    page = a.ok([0x12, 1, 0xB1, 0, 255, 0])
    assert page[3] == 0x3C and page[4:6] == b"\x00\x01"


def test_logical_block_provisioning(a, t):
    thin = t.ok([0x12, 1, 0xB2, 0, 255, 0])
    assert thin[5] & 0xE0 == 0xE0  # LBPU, LBPWS, LBPWS10
    assert thin[5] >> 2 & 0x07 == 1  # LBPRZ 001b
    assert thin[5] & 0x02 == 0  # ANC_SUP
    assert thin[6] & 0x07 == 2  # thin provisioned
    thick = a.ok([0x12, 1, 0xB2, 0, 255, 0])
    assert thick[5] == 0 and thick[6] & 0x07 == 0


def test_vpd_page_allocation_length(a):
    full = a.ok([0x12, 1, 0x83, 0, 255, 0])
    assert a.ok([0x12, 1, 0x83, 0, 10, 0]) == full[:10]
