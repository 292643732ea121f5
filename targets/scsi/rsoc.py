"""REPORT SUPPORTED OPERATION CODES (SPC-5 6.35), generated from the opcode table.

A command is reported exactly when the table has it and the logical unit
offers it, with the table's CDB USAGE DATA; that same mask is what the
dispatcher checks reserved bits against, so the two cannot disagree. (In the
report, the opcode byte and the SERVICE ACTION field carry the codes themselves.)
"""

from __future__ import annotations

from .cdb import be
from .sense import invalid_cdb
from .spec import CommandSpec, Request

__all__ = ["report_supported_operation_codes"]

SUPPORTED = 0x03  # 011b: supported as the standard defines it
NOT_SUPPORTED = 0x01


def _timeouts(spec: CommandSpec) -> bytes:
    """Command timeouts descriptor (SPC-5 6.35.4): nominal 0 (not given), recommended in seconds."""
    return bytes([0x00, 0x0A, 0, 0]) + bytes(4) + spec.timeout.to_bytes(4, "big")


def _all_commands(req: Request, with_timeouts: bool) -> bytes:
    descriptors = []
    for opcode in sorted(req.table):
        spec = req.table[opcode]
        if not spec.offered_by(req.lu):
            continue
        entries = sorted(spec.service_actions.items()) if spec.service_actions else [(0, spec)]
        for action, entry in entries:
            if not entry.offered_by(req.lu):
                continue
            flags = (0x02 if with_timeouts else 0) | (0x01 if spec.service_actions else 0)
            descriptor = bytes([opcode, 0]) + action.to_bytes(2, "big") + bytes([0, flags])
            descriptor += entry.cdb_len.to_bytes(2, "big")
            descriptors.append(descriptor + (_timeouts(entry) if with_timeouts else b""))
    body = b"".join(descriptors)
    return len(body).to_bytes(4, "big") + body


def _usage_data(opcode: int, action: int | None, entry: CommandSpec) -> bytes:
    """SPC-5 6.35.3: the operation code first, the service action where the CDB has it,
    the usage bit map everywhere else."""
    usage = bytearray(entry.usage)
    usage[0] = opcode
    if action is not None:
        usage[1] = usage[1] & ~0x1F | action
    return bytes(usage)


def _one_command(opcode: int, action: int | None, entry: CommandSpec | None, with_timeouts: bool) -> bytes:
    if entry is None:
        return bytes([0, NOT_SUPPORTED, 0, 0])
    data = bytes([0, (0x80 if with_timeouts else 0) | SUPPORTED]) + entry.cdb_len.to_bytes(2, "big")
    data += _usage_data(opcode, action, entry)
    return data + (_timeouts(entry) if with_timeouts else b"")


def report_supported_operation_codes(req: Request) -> bytes:
    """REPORTING OPTIONS 000b (all), 001b (opcode), 010b (opcode + service action),
    011b (opcode, and service action if it has them); RCTD adds timeouts."""
    cdb = req.cdb
    with_timeouts = bool(cdb[2] & 0x80)
    option, opcode, action = cdb[2] & 0x07, cdb[3], be(cdb, 4, 2)
    if option == 0:
        return _all_commands(req, with_timeouts)
    if option > 3:
        raise invalid_cdb(2, 2)
    spec = req.table.get(opcode)
    if spec is not None and not spec.offered_by(req.lu):
        spec = None
    entry: CommandSpec | None
    if option == 1:
        if spec is not None and spec.service_actions:
            raise invalid_cdb(3)  # it has service actions: ask with option 010b
        entry = spec
    elif option == 2:
        if spec is not None and not spec.service_actions:
            raise invalid_cdb(3)
        entry = spec.service_actions.get(action) if spec and spec.service_actions else None
    else:
        entry = spec.service_actions.get(action) if spec and spec.service_actions else spec
    if entry is not None and not entry.offered_by(req.lu):
        entry = None
    return _one_command(opcode, action if spec is not None and spec.service_actions else None, entry, with_timeouts)
