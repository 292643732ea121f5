"""SPC-2 RESERVE/RELEASE and persistent reservations, with two I_T nexuses (hosts A and B)."""

from __future__ import annotations

import struct

import pytest

from targets.scsi import Status

UNIT_ATTENTION, ILLEGAL = 0x6, 0x5
REGISTER, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT_ABORT, REGISTER_IGNORE = 0, 1, 2, 3, 4, 5, 6
READ_KEYS, READ_RESERVATION, REPORT_CAPABILITIES, READ_FULL_STATUS = 0, 1, 2, 3
WE, EA, WE_RO, EA_RO, WE_AR, EA_AR = 1, 3, 5, 6, 7, 8
K1, K2 = 0x1111_0000_0000_0001, 0x2222_0000_0000_0002

READ1 = struct.pack(">BBIBHB", 0x28, 0, 0, 0, 1, 0)
WRITE1 = struct.pack(">BBIBHB", 0x2A, 0, 0, 0, 1, 0)
TUR = bytes(6)


def keys(host) -> tuple[int, list[int]]:
    data = host.ok(struct.pack(">BB5xHB", 0x5E, READ_KEYS, 1024, 0))
    length = int.from_bytes(data[4:8], "big")
    return int.from_bytes(data[:4], "big"), [int.from_bytes(data[8 + i : 16 + i], "big") for i in range(0, length, 8)]


def reservation(host) -> tuple[int, int] | None:
    data = host.ok(struct.pack(">BB5xHB", 0x5E, READ_RESERVATION, 1024, 0))
    if int.from_bytes(data[4:8], "big") == 0:
        return None
    return int.from_bytes(data[8:16], "big"), data[21] & 0x0F


def status(result) -> Status:
    return result.status


# ------------------------------------------------------------------- SPC-2


def test_reserve6_shuts_out_the_other_nexus(a, b):
    a.ok([0x16, 0, 0, 0, 0, 0])
    a.ok([0x16, 0, 0, 0, 0, 0])  # again from the holder: fine
    assert status(b.send([0x16, 0, 0, 0, 0, 0])) == Status.RESERVATION_CONFLICT
    b.ok([0x17, 0, 0, 0, 0, 0])  # release from a non-holder: GOOD, no effect
    for cdb in (TUR, READ1, [0x1A, 0, 0x3F, 0, 255, 0], [0x25] + [0] * 9):
        assert status(b.send(cdb)) == Status.RESERVATION_CONFLICT
    for cdb in ([0x12, 0, 0, 0, 36, 0], [0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], [0x03, 0, 0, 0, 18, 0]):
        b.ok(cdb)
    a.ok(READ1)
    a.ok([0x17, 0, 0, 0, 0, 0])
    b.ok([0x16, 0, 0, 0, 0, 0])
    b.ok([0x17, 0, 0, 0, 0, 0])


def test_reserve6_obsolete_fields_are_refused(a):
    assert a.check([0x16, 0x10, 0, 0, 0, 0]).field == (1, 4, True)


def test_nexus_loss_releases_the_spc2_reservation(a, b, thick, hosts):
    a.ok([0x16, 0, 0, 0, 0, 0])
    thick.nexus_gone(hosts[0])
    b.ok([0x16, 0, 0, 0, 0, 0])
    assert status(a.send(TUR)) == Status.RESERVATION_CONFLICT


@pytest.mark.parametrize(("kind", "ascq"), [("lun", 0x03), ("warm", 0x00), ("cold", 0x01)])
def test_resets_release_the_spc2_reservation(a, b, thick, kind, ascq):
    a.ok([0x16, 0, 0, 0, 0, 0])
    thick.reset(kind)
    for host in (a, b):
        sense = host.check(TUR)
        assert (sense.key, sense.asc, sense.ascq) == (UNIT_ATTENTION, 0x29, ascq)
    b.ok([0x16, 0, 0, 0, 0, 0])


# ------------------------------------------------------ registration basics


def test_register_read_keys_and_generation(a, b):
    assert keys(a) == (0, [])
    a.pr_out(REGISTER, 0, K1)
    assert keys(a) == (1, [K1])
    a.pr_out(REGISTER, 0, K1 + 1, expect=Status.RESERVATION_CONFLICT)  # already registered
    b.pr_out(REGISTER, K1, K2, expect=Status.RESERVATION_CONFLICT)  # not registered, key given
    b.pr_out(REGISTER_IGNORE, 12345, K2)
    a.pr_out(REGISTER, K1, K1 + 5)  # change the key
    generation, registered = keys(b)
    assert generation == 3 and registered == [K1 + 5, K2]
    a.pr_out(REGISTER, K1 + 5, 0)  # unregister
    b.pr_out(REGISTER_IGNORE, 0, 0)
    assert keys(a) == (5, [])
    b.pr_out(REGISTER, 0, 0)  # unregistered and key zero: nothing to do, generation unchanged
    assert keys(a)[0] == 5


def test_read_keys_truncated_keeps_the_additional_length(a):
    a.pr_out(REGISTER, 0, K1)
    data = a.ok(struct.pack(">BB5xHB", 0x5E, READ_KEYS, 8, 0))
    assert len(data) == 8 and int.from_bytes(data[4:8], "big") == 8


def test_report_capabilities(a):
    data = a.ok(struct.pack(">BB5xHB", 0x5E, REPORT_CAPABILITIES, 8, 0))
    assert data[:2] == b"\x00\x08"
    assert data[2] & 0x10 and data[2] & 0x04 and not data[2] & 0x09  # CRH, ATP_C; no SIP_C, PTPL_C
    assert data[3] & 0x80 and data[3] >> 4 & 0x07 <= 5  # TMV, ALLOW COMMANDS
    assert int.from_bytes(data[4:6], "big") == 0xEA01


def test_pr_in_service_action_range(a):
    for action in range(4):
        a.ok(struct.pack(">BB5xHB", 0x5E, action, 1024, 0))
    for action in range(4, 0x20):
        assert a.check(struct.pack(">BB5xHB", 0x5E, action, 1024, 0)).field == (1, 4, True)


def test_pr_out_parameter_checks(a):
    assert a.check(struct.pack(">BBB2xIB", 0x5F, REGISTER, 0, 23, 0), bytes(23)).asc == 0x1A
    a.pr_out(REGISTER, 0, K1, flags=0x01, expect=Status.CHECK_CONDITION)  # APTPL: PTPL_C=0
    a.pr_out(REGISTER, 0, K1, flags=0x08, expect=Status.CHECK_CONDITION)  # SPEC_I_PT: SIP_C=0
    a.pr_out(REGISTER, 0, K1)
    assert a.check(struct.pack(">BBB2xIB", 0x5F, RESERVE, 0x13, 24, 0), struct.pack(">Q16x", K1)).field == (
        2,
        7,
        True,
    )
    assert a.check(struct.pack(">BBB2xIB", 0x5F, RESERVE, 0x02, 24, 0), struct.pack(">Q16x", K1)).field == (
        2,
        3,
        True,
    )
    assert a.check(struct.pack(">BBB2xIB", 0x5F, 0x07, 0, 24, 0), bytes(24)).field == (1, 4, True)


# --------------------------------------------------------- access by type


@pytest.mark.parametrize(
    ("kind", "registered_read", "registered_write", "unregistered_read", "unregistered_write"),
    [
        (EA, False, False, False, False),
        (WE, True, False, True, False),
        (EA_RO, True, True, False, False),
        (WE_RO, True, True, True, False),
        (EA_AR, True, True, False, False),
        (WE_AR, True, True, True, False),
    ],
)
def test_access_under_each_reservation_type(
    a, b, kind, registered_read, registered_write, unregistered_read, unregistered_write
):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    a.pr_out(RESERVE, K1, kind=kind)
    assert reservation(b) == (0 if kind in (WE_AR, EA_AR) else K1, kind)
    a.ok(READ1)
    a.ok(WRITE1, bytes(512))

    def allowed(cdb, data=b""):
        result = b.send(cdb, data)
        assert result.status in (Status.GOOD, Status.RESERVATION_CONFLICT)
        return result.status == Status.GOOD

    assert allowed(READ1) == registered_read
    assert allowed(WRITE1, bytes(512)) == registered_write
    b.pr_out(REGISTER, K2, 0)
    assert allowed(READ1) == unregistered_read
    assert allowed(WRITE1, bytes(512)) == unregistered_write
    assert allowed(TUR) and allowed([0x12, 0, 0, 0, 36, 0]) and allowed([0x25] + [0] * 9)
    assert allowed(struct.pack(">BB5xHB", 0x5E, READ_KEYS, 1024, 0))
    assert allowed([0x1A, 0, 0x3F, 0, 255, 0]) == (kind in (WE, WE_RO, WE_AR))
    a.pr_out(RELEASE, K1, kind=kind)
    assert reservation(a) is None
    assert allowed(WRITE1, bytes(512))


@pytest.mark.parametrize("kind", [WE, EA, WE_RO, EA_RO, WE_AR, EA_AR])
def test_reservation_ownership_when_the_holder_unregisters(a, b, kind):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    a.pr_out(RESERVE, K1, kind=kind)
    a.pr_out(REGISTER, K1, 0)
    if kind in (WE_AR, EA_AR):
        assert reservation(b) == (0, kind)  # every registrant holds it; B still does
        b.pr_out(RELEASE, K2, kind=kind)
    elif kind in (WE_RO, EA_RO):
        assert b.check(TUR).ascq == 0x04  # RESERVATIONS RELEASED
    assert reservation(b) is None


def test_reserve_conflicts_and_release_rules(a, b):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    a.pr_out(RESERVE, K2, kind=WE, expect=Status.RESERVATION_CONFLICT)  # wrong key
    a.pr_out(RESERVE, K1, kind=WE)
    a.pr_out(RESERVE, K1, kind=WE)  # same type again: GOOD
    a.pr_out(RESERVE, K1, kind=EA, expect=Status.RESERVATION_CONFLICT)
    b.pr_out(RESERVE, K2, kind=WE, expect=Status.RESERVATION_CONFLICT)
    b.pr_out(RELEASE, K2, kind=WE)  # a registrant that does not hold it: GOOD, nothing released
    assert reservation(a) == (K1, WE)
    sense = a.check(struct.pack(">BBB2xIB", 0x5F, RELEASE, EA, 24, 0), struct.pack(">Q16x", K1))
    assert (sense.key, sense.asc, sense.ascq) == (ILLEGAL, 0x26, 0x04)
    b.pr_out(REGISTER, K2, 0)
    b.pr_out(RELEASE, 0, kind=WE, expect=Status.RESERVATION_CONFLICT)  # not registered
    a.pr_out(RELEASE, K1, kind=WE)
    assert reservation(a) is None


def test_release_of_a_registrants_only_reservation_tells_the_others(a, b):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    a.pr_out(RESERVE, K1, kind=WE_RO)
    a.pr_out(RELEASE, K1, kind=WE_RO)
    sense = b.check(TUR)
    assert (sense.key, sense.asc, sense.ascq) == (UNIT_ATTENTION, 0x2A, 0x04)
    a.ok(TUR)


def test_clear(a, b):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    a.pr_out(RESERVE, K1, kind=EA)
    generation = keys(a)[0]
    b.pr_out(CLEAR, K1, expect=Status.RESERVATION_CONFLICT)
    a.pr_out(CLEAR, K1)
    assert keys(a) == (generation + 1, []) and reservation(a) is None
    sense = b.check(TUR)
    assert (sense.key, sense.asc, sense.ascq) == (UNIT_ATTENTION, 0x2A, 0x03)
    b.ok(READ1)


@pytest.mark.parametrize("action", [PREEMPT, PREEMPT_ABORT])
def test_preempt_takes_the_reservation_and_the_registration(a, b, action):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    a.pr_out(RESERVE, K1, kind=WE)
    generation = keys(a)[0]
    b.pr_out(action, K2, K1, kind=EA)
    assert reservation(b) == (K2, EA)
    assert keys(b) == (generation + 1, [K2])
    sense = a.check(TUR)
    assert (sense.key, sense.asc, sense.ascq) == (UNIT_ATTENTION, 0x2A, 0x05)
    assert status(a.send(READ1)) == Status.RESERVATION_CONFLICT
    b.ok(TUR)


def test_preempt_registrations_without_a_reservation(a, b):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    assert b.check(struct.pack(">BBB2xIB", 0x5F, PREEMPT, WE, 24, 0), struct.pack(">QQ8x", K2, 0)).asc == 0x26
    b.pr_out(PREEMPT, K2, 0x999, kind=WE, expect=Status.RESERVATION_CONFLICT)  # no such key
    b.pr_out(PREEMPT, K2, K1, kind=WE)
    assert keys(b)[1] == [K2] and reservation(b) is None
    assert a.check(TUR).ascq == 0x05


def test_preempt_an_all_registrants_reservation_with_key_zero(a, b):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2)
    a.pr_out(RESERVE, K1, kind=WE_AR)
    b.pr_out(PREEMPT, K2, 0, kind=EA)
    assert keys(b)[1] == [K2] and reservation(b) == (K2, EA)


def test_crh_reserve6_and_release6_with_registrations(a, b):
    a.pr_out(REGISTER, 0, K1)
    assert status(b.send([0x16, 0, 0, 0, 0, 0])) == Status.RESERVATION_CONFLICT
    assert status(b.send([0x17, 0, 0, 0, 0, 0])) == Status.RESERVATION_CONFLICT
    a.pr_out(RESERVE, K1, kind=EA)
    a.ok([0x16, 0, 0, 0, 0, 0])  # from the holder: GOOD, no SPC-2 reservation made
    assert status(b.send(TUR)) == Status.GOOD


def test_persistent_reservations_survive_nexus_loss_and_reset(a, b, thick, hosts):
    a.pr_out(REGISTER, 0, K1)
    a.pr_out(RESERVE, K1, kind=WE)
    thick.nexus_gone(hosts[0])
    thick.reset("lun")
    a.clear_ua()
    b.clear_ua()
    assert reservation(b) == (K1, WE)
    assert status(b.send(WRITE1, bytes(512))) == Status.RESERVATION_CONFLICT


def test_all_target_ports_registration_covers_another_port(a, thick, connect, hosts):
    a.pr_out(REGISTER, 0, K1, flags=0x04)
    other_port = type(hosts[0])(hosts[0].initiator_port, "iqn.2001-05.com.equallogic:test,t,0x0002")
    other = connect(thick, other_port).clear_ua()
    other.pr_out(RESERVE, K1, kind=EA)
    a.ok(READ1)  # the same registration: a holder through either port
    assert status(connect(thick, hosts[1]).clear_ua().send(READ1)) == Status.RESERVATION_CONFLICT


def test_read_full_status(a, b, hosts):
    a.pr_out(REGISTER, 0, K1)
    b.pr_out(REGISTER, 0, K2, flags=0x04)
    a.pr_out(RESERVE, K1, kind=WE_RO)
    data = a.ok(struct.pack(">BB5xHB", 0x5E, READ_FULL_STATUS, 4096, 0))
    assert int.from_bytes(data[4:8], "big") == len(data) - 8
    at, entries = 8, []
    while at < len(data):
        key, flags, scope_type, port = struct.unpack(">Q4xBB4xH", data[at : at + 20])
        tid_length = int.from_bytes(data[at + 20 : at + 24], "big")
        tid = data[at + 24 : at + 24 + tid_length]
        assert tid[0] == 0x45 and int.from_bytes(tid[2:4], "big") == len(tid) - 4 and len(tid) % 4 == 0
        entries.append((key, flags, scope_type, port, tid[4:].rstrip(b"\x00").decode()))
        at += 24 + tid_length
    assert entries == [
        (K1, 0x01, WE_RO, 1, hosts[0].initiator_port),
        (K2, 0x02, 0, 1, hosts[1].initiator_port),
    ]
