"""REPORT SUPPORTED OPERATION CODES is the opcode table, seen from outside."""

from __future__ import annotations

import struct

import pytest

from targets.scsi import COMMANDS


def rsoc(host, option: int = 0, opcode: int = 0, action: int = 0, rctd: bool = False, alloc: int = 65535) -> bytes:
    return host.ok(struct.pack(">BBBBHIxB", 0xA3, 0x0C, (0x80 if rctd else 0) | option, opcode, action, alloc, 0))


def all_commands(host, rctd: bool = False) -> list[tuple[int, int, int, int]]:
    """(opcode, service action, flags, CDB length) of every command descriptor."""
    data = rsoc(host, rctd=rctd)
    size = 20 if rctd else 8
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    out = []
    for at in range(4, len(data), size):
        opcode, action, flags, length = struct.unpack(">BxHxBH", data[at : at + 8])
        if rctd:
            assert data[at + 8 : at + 10] == b"\x00\x0a"
        out.append((opcode, action, flags, length))
    return out


def expected(thin: bool) -> set[tuple[int, int]]:
    entries = set()
    for opcode, spec in COMMANDS.items():
        if opcode == 0x42 and not thin:
            continue
        if spec.service_actions:
            entries |= {(opcode, action) for action in spec.service_actions}
        else:
            entries.add((opcode, 0))
    return entries


def test_all_commands_is_the_table(a, t):
    thick = all_commands(a)
    assert {(o, s) for o, s, _, _ in thick} == expected(thin=False)
    assert {(o, s) for o, s, _, _ in all_commands(t)} == expected(thin=True)
    assert [(o, s) for o, s, _, _ in thick] == sorted((o, s) for o, s, _, _ in thick)
    for opcode, action, flags, length in thick:
        spec = COMMANDS[opcode]
        has_actions = spec.service_actions is not None
        assert flags & 0x01 == has_actions  # SERVACTV
        assert action == 0 or has_actions
        entry = spec.service_actions[action] if has_actions else spec
        assert length == entry.cdb_len == len(entry.usage)


def test_timeouts_descriptors_with_rctd(a):
    assert all(flags & 0x02 == 0 for *_, flags, _ in [(o, s, f, n) for o, s, f, n in all_commands(a)])
    assert all(flags & 0x02 for _, _, flags, _ in all_commands(a, rctd=True))


def test_one_command_reports_the_usage_data_the_dispatcher_enforces(a):
    for opcode, action, flags, _ in all_commands(a):
        spec = COMMANDS[opcode]
        if flags & 0x01:
            assert a.check(struct.pack(">BBBBHIxB", 0xA3, 0x0C, 1, opcode, action, 512, 0)).asc == 0x24
            data = rsoc(a, 2, opcode, action)
            entry = spec.service_actions[action]
        else:
            assert a.check(struct.pack(">BBBBHIxB", 0xA3, 0x0C, 2, opcode, action, 512, 0)).asc == 0x24
            data = rsoc(a, 1, opcode)
            entry = spec
        assert data[1] & 0x07 == 0x03
        assert int.from_bytes(data[2:4], "big") == entry.cdb_len
        usage = data[4 : 4 + entry.cdb_len]
        assert usage[0] == opcode
        if flags & 0x01:
            assert usage[1] & 0x1F == action and usage[1] & 0xE0 == entry.usage[1] & 0xE0
        else:
            assert usage[1] == entry.usage[1]
        assert usage[2:] == entry.usage[2:]
        assert rsoc(a, 3, opcode, action) == data


@pytest.mark.parametrize(("opcode", "dpo"), [(0x89, 0x18), (0x2F, 0x10), (0x2E, 0x10), (0x28, 0x18)])
def test_dpo_and_fua_are_advertised_as_mode_sense_says(a, opcode, dpo):
    assert a.ok([0x1A, 0, 0x3F, 0, 255, 0])[2] & 0x10  # DPOFUA
    assert rsoc(a, 1, opcode)[5] & dpo == dpo


def test_unsupported_commands_and_options(a):
    assert rsoc(a, 1, 0x04) == b"\x00\x01\x00\x00"
    assert rsoc(a, 1, 0x42)[1] & 0x07 == 0x01  # UNMAP on a thick volume
    assert rsoc(a, 2, 0x9E, 0x11)[1] & 0x07 == 0x01
    assert rsoc(a, 1, 0x28, rctd=True)[1] & 0x80
    assert a.check(struct.pack(">BBBBHIxB", 0xA3, 0x0C, 4, 0, 0, 512, 0)).field == (2, 2, True)
    assert len(rsoc(a, alloc=12)) == 12
