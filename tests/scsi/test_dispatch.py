"""The fixed check sequence: CONTROL byte, LUN, unit attention, opcode, reserved bits, Data-Out."""

from __future__ import annotations

import struct

import pytest

from array_sim.block import DeviceOffline, SpaceExhausted
from targets.scsi import (
    COMMANDS,
    REPORT_LUNS_WLUN,
    Command,
    LogicalUnit,
    Nexus,
    ScsiTarget,
    Status,
    decode_lun,
    encode_lun,
    expected_data_out,
)

ILLEGAL, UNIT_ATTENTION, NOT_READY, DATA_PROTECT = 0x5, 0x6, 0x2, 0x7


def test_a_new_nexus_finds_the_logical_unit_ready(thick, connect, hosts):
    host = connect(thick, hosts[0])
    assert host.send([0, 0, 0, 0, 0, 0]).status == Status.GOOD


def test_inquiry_report_luns_and_request_sense_do_not_report_the_unit_attention(thick, connect, hosts):
    host = connect(thick, hosts[0])
    host.ok([0, 0, 0, 0, 0, 0])
    thick.reset("warm")
    host.ok([0x12, 0, 0, 0, 36, 0])
    host.ok([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    sense = host.request_sense()
    assert (sense.key, sense.asc, sense.ascq) == (UNIT_ATTENTION, 0x29, 0x00)
    assert host.request_sense().key == 0  # reported once, then cleared: NO SENSE
    host.ok([0, 0, 0, 0, 0, 0])


def test_request_sense_in_descriptor_format(a):
    raw = a.ok([0x03, 0x01, 0, 0, 252, 0])
    assert raw[0] == 0x72 and raw[1:4] == b"\x00\x00\x00"


@pytest.mark.parametrize(("control", "bit"), [(0x04, 2), (0x01, 0)])
def test_naca_and_link_are_refused_before_the_unit_attention(thick, connect, hosts, control, bit):
    host = connect(thick, hosts[0])
    host.ok([0, 0, 0, 0, 0, 0])
    thick.reset("warm")
    sense = host.check([0, 0, 0, 0, 0, control])
    assert (sense.key, sense.asc, sense.field) == (ILLEGAL, 0x24, (5, bit, True))
    assert host.check([0, 0, 0, 0, 0, 0]).key == UNIT_ATTENTION


def test_unknown_opcode_is_invalid_command_operation_code(a):
    for opcode in (0x04, 0x3B, 0x7F, 0xC0, 0xFF):
        sense = a.check(bytes([opcode]) + bytes(15))
        assert (sense.key, sense.asc, sense.ascq) == (ILLEGAL, 0x20, 0x00)
    assert all(code in COMMANDS for code in (0x00, 0x28, 0x2A, 0x9E, 0xA3))


def test_unknown_service_action_is_invalid_field(a):
    sense = a.check([0x9E, 0x11] + [0] * 14)
    assert (sense.key, sense.asc, sense.field) == (ILLEGAL, 0x24, (1, 4, True))


def test_reserved_bits_are_refused_with_a_field_pointer(a):
    sense = a.check([0x00, 0x80, 0, 0, 0, 0])  # TEST UNIT READY byte 1 is reserved
    assert (sense.asc, sense.field) == (0x24, (1, 7, True))
    sense = a.check([0x12, 0x02, 0, 0, 36, 0])  # INQUIRY CMDDT (obsolete)
    assert (sense.asc, sense.field) == (0x24, (1, 1, True))
    sense = a.check(struct.pack(">BBIBHB", 0x28, 0x01, 0, 0, 1, 0))  # READ(10) obsolete bit 0
    assert sense.field == (1, 0, True)


def test_missing_lun_through_the_target(thick, hosts):
    target = ScsiTarget({0: thick, 3: thick})

    def send(cdb: list[int], lun: int = 5):
        return target.execute(Command(bytes(cdb), nexus=hosts[0], lun=lun))

    inquiry = send([0x12, 0, 0, 0, 96, 0])
    assert inquiry.status == Status.GOOD and inquiry.data_in[0] == 0x7F
    luns = send([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    assert luns.status == Status.GOOD
    assert luns.data_in[:4] == (16).to_bytes(4, "big") and luns.data_in[9] == 0 and luns.data_in[17] == 3
    sense = send([0x03, 0, 0, 0, 18, 0])
    assert sense.status == Status.GOOD and sense.data_in[2] == ILLEGAL and sense.data_in[12] == 0x25
    tur = send([0, 0, 0, 0, 0, 0])
    assert tur.status == Status.CHECK_CONDITION and tur.sense[12] == 0x25
    assert send([0x99] + [0] * 15).sense[12] == 0x25  # LUN before opcode
    assert send([0, 0, 0, 0, 0, 0], lun=3).status == Status.GOOD  # an existing LUN answers itself


def test_allocation_length_cuts_data_in(a):
    assert len(a.ok([0x12, 0, 0, 0, 5, 0])) == 5
    assert len(a.ok([0x12, 0, 0, 0, 0, 0])) == 0
    assert len(a.ok([0x12, 0, 0, 2, 0, 0])) == 96


def test_expected_data_out():
    assert expected_data_out(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 8, 0)) == 8 * 512
    assert expected_data_out(bytes([0x0A, 0, 0, 0, 0, 0])) == 256 * 512  # WRITE(6) 0 = 256
    assert expected_data_out(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 8, 0)) == 0
    assert expected_data_out(struct.pack(">BBIBHB", 0x41, 0, 0, 0, 8, 0)) == 512
    assert expected_data_out(struct.pack(">BBQIBB", 0x93, 0x01, 0, 8, 0, 0)) == 0  # NDOB
    assert expected_data_out(struct.pack(">BBQ3xBBB", 0x89, 0, 0, 1, 0, 0)) == 1024
    assert expected_data_out(struct.pack(">BBIBHB", 0x2F, 0x02, 0, 0, 4, 0)) == 4 * 512
    assert expected_data_out(struct.pack(">BBIBHB", 0x2F, 0x06, 0, 0, 4, 0)) == 512
    assert expected_data_out(struct.pack(">BBIBHB", 0x2F, 0x00, 0, 0, 4, 0)) == 0
    assert expected_data_out(struct.pack(">BB5xHB", 0x42, 0, 24, 0)) == 24
    assert expected_data_out(struct.pack(">BBB2xIB", 0x5F, 0, 0, 24, 0)) == 24
    assert expected_data_out(bytes([0x15, 0x10, 0, 0, 28, 0])) == 28
    assert expected_data_out(b"") == 0 and expected_data_out(b"\x2a") == 0 and expected_data_out(b"\xff") == 0
    assert ScsiTarget.expected_data_out(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0)) == 512


def test_short_data_out_writes_only_the_whole_blocks_that_arrived(a):
    # SAM-5 leaves the choice; like tgt and LIO, the blocks that arrived are written
    # (the transport reports the overflow residual) and a part-block writes nothing.
    a.ok(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 2, 0), b"\xaa" * 512)
    assert a.ok(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 2, 0)) == b"\xaa" * 512 + bytes(512)
    a.ok(struct.pack(">BBIBHB", 0x2A, 0, 1, 0, 1, 0), b"\xcc" * 200)
    assert a.ok(struct.pack(">BBIBHB", 0x28, 0, 1, 0, 1, 0)) == bytes(512)
    # More Data-Out than asked for is tolerated for WRITE (only the transfer length is written).
    a.ok(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0), b"\xbb" * 1024)
    assert a.ok(struct.pack(">BBIBHB", 0x28, 0, 0, 0, 2, 0)) == b"\xbb" * 512 + bytes(512)


def test_offline_volume_is_not_ready_manual_intervention(group, volumes, a):
    group.set_volume_online(volumes.name("thick"), False)
    for cdb in ([0, 0, 0, 0, 0, 0], struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0), [0x25] + [0] * 9):
        sense = a.check(cdb)
        assert (sense.key, sense.asc, sense.ascq) == (NOT_READY, 0x04, 0x03)
    assert a.ok([0x12, 0, 0, 0, 36, 0])[0] == 0  # INQUIRY still answers
    assert a.request_sense().asc == 0x04
    group.set_volume_online(volumes.name("thick"), True)
    a.ok([0, 0, 0, 0, 0, 0])


class _Failing:
    """A device whose writes fail the way the engine can fail them."""

    def __init__(self, device, error: Exception) -> None:
        self._device, self._error = device, error

    def __getattr__(self, name: str):
        return getattr(self._device, name)

    def write(self, *args, **kwargs):
        raise self._error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (SpaceExhausted("pool full"), (DATA_PROTECT, 0x27, 0x07)),
        (DeviceOffline("snapshot reserve exhausted"), (NOT_READY, 0x04, 0x03)),
        (RuntimeError("bug"), (0x4, 0x44, 0x00)),
    ],
)
def test_engine_errors_map_through_the_sense_table(thick, connect, hosts, error, expected, caplog):
    lu = LogicalUnit(
        _Failing(thick.device, error), serial="X", naa=bytes.fromhex("60" + "00" * 15), target_name="iqn.x"
    )
    host = connect(lu, hosts[0]).clear_ua()
    sense = host.check(struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0), b"\x01" * 512)
    assert (sense.key, sense.asc, sense.ascq) == expected


def test_cdb_shorter_than_the_command_is_invalid_field(a):
    sense = a.check(bytes([0x28, 0, 0]))
    assert (sense.key, sense.asc) == (ILLEGAL, 0x24)
    sense = a.check(b"")
    assert sense.asc == 0x20


def test_logical_unit_rejects_bad_identity(thick):
    with pytest.raises(ValueError):
        LogicalUnit(thick.device, serial="X", naa=b"\x50" + bytes(15), target_name="iqn.x")
    with pytest.raises(ValueError):
        LogicalUnit(thick.device, serial="X", naa=b"\x60" + bytes(15), target_name="iqn.x", vendor="TOO LONG VENDOR")


def test_nexus_is_a_value(hosts):
    assert Nexus(hosts[0].initiator_port, hosts[0].target_port) == hosts[0]
    assert len({hosts[0], hosts[1]}) == 2


def test_lun_field_encoding():
    for lun in (0, 1, 255, 256, 16383, REPORT_LUNS_WLUN):
        assert decode_lun(encode_lun(lun)) == lun
    assert encode_lun(5) == bytes([0, 5, 0, 0, 0, 0, 0, 0])
    assert encode_lun(300) == bytes([0x41, 0x2C, 0, 0, 0, 0, 0, 0])
    for bad in (bytes([0x80, 1, 0, 0, 0, 0, 0, 0]), bytes([0, 1, 0, 2, 0, 0, 0, 0]), b"\x00"):
        with pytest.raises(ValueError):
            decode_lun(bad)
    with pytest.raises(ValueError):
        encode_lun(0x4000)


def test_report_luns_to_the_well_known_lun(thick, hosts):
    target = ScsiTarget({0: thick, 7: thick})
    result = target.execute(
        Command(bytes([0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), nexus=hosts[0], lun=REPORT_LUNS_WLUN)
    )
    assert result.status == Status.GOOD and result.data_in[8:] == encode_lun(0) + encode_lun(7)
    assert (
        target.execute(Command(bytes([0xA0, 0, 0x10] + [0] * 9), nexus=hosts[0], lun=REPORT_LUNS_WLUN)).sense[12]
        == 0x24
    )
