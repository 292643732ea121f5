"""Unit attention conditions: capacity change, nexus loss, resets, and how they queue."""

from __future__ import annotations

import struct

from array_sim.units import MiB
from targets.scsi import Nexus, ResetKind, SenseReason
from targets.scsi.unit_attention import UnitAttentions

UNIT_ATTENTION = 0x6
TUR = bytes(6)


def test_capacity_changed_after_a_resize(a, b, volumes, thick):
    volumes.group.resize_volume(volumes.name("thick"), 45 * MiB, snapshot=False)
    thick.capacity_changed()
    for host in (a, b):
        sense = host.check(TUR)
        assert (sense.key, sense.asc, sense.ascq) == (UNIT_ATTENTION, 0x2A, 0x09)
    assert struct.unpack(">I", a.ok([0x25] + [0] * 9)[:4])[0] == 45 * MiB // 512 - 1


def test_a_new_nexus_does_not_see_older_conditions(thick, connect, hosts):
    thick.capacity_changed()
    host = connect(thick, hosts[1])
    host.ok(TUR)


def test_a_lost_nexus_is_forgotten_with_its_conditions(a, b, thick, hosts):
    thick.capacity_changed()
    thick.nexus_gone(hosts[0])
    a.ok(TUR)
    assert b.check(TUR).ascq == 0x09
    thick.nexus_gone(Nexus("iqn.never-seen,i,0x1", "t"))  # nothing to remember for it


def test_reset_kinds(a, thick):
    for kind, ascq in ((ResetKind.LOGICAL_UNIT, 0x03), (ResetKind.TARGET_WARM, 0x00), (ResetKind.TARGET_COLD, 0x01)):
        thick.reset(kind)
        assert a.check(TUR).ascq == ascq
        a.ok(TUR)


def test_reset_returns_mode_parameters_to_their_defaults(a, thick):
    page = bytes([0x0A, 0x0A, 0x04]) + bytes(9)
    a.ok(bytes([0x15, 0x10, 0, 0, 4 + len(page), 0]), bytes(4) + page)
    assert thick.mode.d_sense
    thick.reset("lun")
    assert not thick.mode.d_sense
    assert not a.check(TUR).descriptor


def test_queue_rules():
    one, two = Nexus("i1", "t"), Nexus("i2", "t")
    queue = UnitAttentions()
    assert queue.pop(one) is None
    queue.seen(two)
    queue.establish(SenseReason.UA_RESET)
    queue.establish(SenseReason.UA_CAPACITY_CHANGED, exclude=two)
    queue.establish(SenseReason.UA_MODE_PARAMETERS_CHANGED)
    queue.establish(SenseReason.UA_MODE_PARAMETERS_CHANGED)
    assert queue.pop(one) is SenseReason.UA_RESET
    assert queue.pop(one) is SenseReason.UA_CAPACITY_CHANGED
    assert queue.pop(one) is SenseReason.UA_MODE_PARAMETERS_CHANGED
    assert queue.pop(one) is None
    assert queue.pop(two) is SenseReason.UA_RESET  # a reset replaces whatever was queued before it
    queue.establish(SenseReason.UA_LUN_RESET)
    assert queue.pop(two) is SenseReason.UA_LUN_RESET and queue.pop(two) is None
    for reason in list(SenseReason)[-5:] * 3:
        queue.establish(reason, only=[one])
    assert queue.pop(one) is not None
    assert queue.pending(two) is None
