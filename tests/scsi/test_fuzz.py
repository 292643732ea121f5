"""Random CDBs: execute never raises, and only a successful write changes stored data.

Every opcode of the table is tried with random CDB bytes (biased towards
small values so that many commands are valid), random Data-Out and two I_T
nexuses. A spy between the logical units and their volumes records every
call that could change data; a refused command must not have made one, and
at the end each volume must hold exactly what the successful writes wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from targets.scsi import COMMANDS, Command, Result, Status, expected_data_out
from targets.scsi.reservations import Reservations
from targets.scsi.unit_attention import UnitAttentions

WRITERS = {0x0A, 0x2A, 0xAA, 0x8A, 0x2E, 0xAE, 0x8E, 0x41, 0x93, 0x42, 0x89}
OPCODES = sorted(COMMANDS)


@dataclass
class Spy:
    """Wraps a device; keeps a model of its blocks and every data-changing call."""

    device: object
    model: bytearray
    calls: list[str] = field(default_factory=list)

    def __getattr__(self, name: str):
        return getattr(self.device, name)

    def write(self, lba, data, fua=False):
        self.calls.append("write")
        self.device.write(lba, data, fua)
        self.model[lba * 512 : lba * 512 + len(data)] = bytes(data)

    def unmap(self, lba, count):
        self.calls.append("unmap")
        self.device.unmap(lba, count)
        self.model[lba * 512 : (lba + count) * 512] = bytes(count * 512)

    def write_same(self, lba, count, block, unmap=False):
        self.calls.append("write_same")
        self.device.write_same(lba, count, block, unmap)
        self.model[lba * 512 : (lba + count) * 512] = bytes(block) * count


byte = st.one_of(st.just(0), st.sampled_from([1, 2, 4, 8, 0x10, 0x3F, 0x80, 0xFF]), st.integers(0, 255))


#: (LBA offset, LBA size, length offset, length size) of the block commands, by CDB length.
LAYOUT = {10: (2, 4, 7, 2), 12: (2, 4, 6, 4), 16: (2, 8, 10, 4)}
BLOCK_COMMANDS = WRITERS - {0x42} | {0x08, 0x28, 0xA8, 0x88, 0x2F, 0xAF, 0x8F, 0x34, 0x90, 0x35, 0x91}


@st.composite
def commands(draw):
    """A CDB for an opcode of the table and some Data-Out.

    Three times in four the CDB is tidied: bits outside the command's CDB
    USAGE DATA cleared and, for block commands, a small LBA near either end
    of the volume and a short length, so that many commands succeed.
    """
    opcode = draw(st.sampled_from(OPCODES))
    spec = entry = COMMANDS[opcode]
    length = draw(st.sampled_from([spec.cdb_len, spec.cdb_len, spec.cdb_len, 16, 6]))
    cdb = bytearray(draw(st.lists(byte, min_size=length, max_size=length)))
    cdb[0] = opcode
    if spec.service_actions and draw(st.integers(0, 4)):
        action = draw(st.sampled_from(sorted(spec.service_actions)))
        cdb[1] = cdb[1] & 0xE0 | action
        entry = spec.service_actions[action]
    if draw(st.integers(0, 3)) and length >= entry.cdb_len:
        for index in range(entry.cdb_len):
            cdb[index] &= entry.usage[index]
        lba = draw(st.one_of(st.integers(0, 64), st.integers(61440 - 64, 61440 + 2)))
        count = draw(st.integers(0, 16))
        if opcode in BLOCK_COMMANDS and entry.cdb_len in LAYOUT:
            if draw(st.integers(0, 3)):
                cdb[1] &= 0x1F  # no RDPROTECT / WRPROTECT / VRPROTECT
            lba_at, lba_size, count_at, count_size = LAYOUT[entry.cdb_len]
            cdb[lba_at : lba_at + lba_size] = lba.to_bytes(lba_size, "big")
            cdb[count_at : count_at + count_size] = count.to_bytes(count_size, "big")
        if opcode == 0x89:
            cdb[13] = count % 3
        if opcode in (0x08, 0x0A):
            cdb[1:4] = (lba & 0x1FFFFF).to_bytes(3, "big")
            cdb[4] = count
    wanted = expected_data_out(bytes(cdb))
    size = wanted if wanted <= 65536 and draw(st.integers(0, 4)) else draw(st.integers(0, 1100))
    fill = draw(st.integers(0, 255))
    return bytes(cdb), bytes([fill]) * size


_FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
_CASES = st.tuples(commands(), st.sampled_from(["thin", "thick", "ro"]), st.booleans())


@settings(max_examples=100, **_FUZZ)
@given(case=_CASES)
def test_random_commands_never_raise_and_never_change_data_unless_they_succeed(volumes, hosts, case):
    """The fast loop's run: 100 commands; the whole suite also runs 400 (``..._full``)."""
    _one_random_command(volumes, hosts, case)


@pytest.mark.slow
@settings(max_examples=400, **_FUZZ)
@given(case=_CASES)
def test_random_commands_never_raise_and_never_change_data_unless_they_succeed_full(volumes, hosts, case):
    _one_random_command(volumes, hosts, case)


def _one_random_command(volumes, hosts, case):
    (cdb, data_out), kind, second = case
    lu = volumes.lu(kind)
    if not isinstance(lu.device, Spy):
        lu.device = Spy(lu.device, bytearray(lu.device.read(0, lu.device.num_blocks)))
    # Each example starts from a quiet logical unit (the stored data carries over).
    lu.reservations, lu.unit_attention = Reservations(), UnitAttentions()
    lu.mode.restore_defaults()
    for host in hosts:
        lu.unit_attention.pop(host)
    spy = lu.device
    spy.calls.clear()
    result = lu.execute(Command(cdb, data_out, nexus=hosts[second]))
    assert isinstance(result, Result) and result.status in set(Status)
    event(f"{cdb[0]:02x}: {result.status.name}{' (wrote)' if spy.calls else ''}")
    assert (result.status == Status.CHECK_CONDITION) == bool(result.sense)
    if result.sense:
        assert result.sense[0] & 0x7F in (0x70, 0x72)
    if spy.calls:
        assert result.status == Status.GOOD, (cdb.hex(), spy.calls, result)
        assert cdb[0] in WRITERS and kind != "ro"
    probe = cdb[2:6]
    lba = int.from_bytes(probe, "big") % spy.num_blocks
    assert spy.device.read(lba, 1) == bytes(spy.model[lba * 512 : lba * 512 + 512])


def test_fuzzed_volumes_hold_what_the_model_says(volumes, hosts):
    """Run a fixed batch of the generator, then compare every block of every volume."""
    lus = {kind: volumes.lu(kind) for kind in ("thin", "thick")}
    spies = {}
    for kind, lu in lus.items():
        lu.device = spies[kind] = Spy(lu.device, bytearray(lu.device.read(0, lu.device.num_blocks)))

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=st.tuples(commands(), st.sampled_from(sorted(lus)), st.booleans()))
    def run(case):
        (cdb, data_out), kind, second = case
        lus[kind].execute(Command(cdb, data_out, nexus=hosts[second]))

    run()
    for spy in spies.values():
        assert spy.device.read(0, spy.num_blocks) == bytes(spy.model)
