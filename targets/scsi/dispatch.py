"""The opcode table and the fixed check sequence every command goes through.

Rule of this module: what is common to all commands happens here, in this
order, and nowhere else (tgt's ``scsi_cmd_perform`` order):

1. CONTROL byte: NACA or LINK set -> INVALID FIELD IN CDB.
2. LUN: no logical unit -> LOGICAL UNIT NOT SUPPORTED (INQUIRY, REPORT LUNS,
   REQUEST SENSE answer anyway).
3. Unit attention: a pending one is reported instead (INQUIRY, REPORT LUNS,
   REQUEST SENSE exempt).
4. Operation code and service action in the table, offered by this LU, else
   INVALID COMMAND OPERATION CODE / INVALID FIELD IN CDB; a CDB shorter than
   the command's is an INVALID FIELD IN CDB.
5. Reservation conflict (SPC-2 reservation, then the table's ``pr_conflict``).
6. Readiness for medium access (an offline volume is NOT READY).
7. Reserved CDB bits, against the table's CDB USAGE DATA.
8. Data-Out: as much as the CDB asks for must have arrived.
9. The handler; data-in is cut to the ALLOCATION LENGTH.

A missing key in ``COMMANDS`` is an unsupported command: it is neither
accepted nor reported by REPORT SUPPORTED OPERATION CODES.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from array_sim.block import BlockError

from . import mode, persistent_reserve, provisioning, reservations, rsoc, sbc, spc
from .cdb import Field, check_reserved, transfer_length
from .model import Command, Result, Status
from .opcodes import MaintenanceIn, Opcode, PrIn, PrOut, ServiceActionIn16, group_cdb_length
from .sense import (
    ENGINE_REASONS,
    CheckCondition,
    FieldPointer,
    ReservationConflict,
    SenseReason,
    build_sense,
    invalid_cdb,
)
from .spec import READS, WRITES, CommandSpec, DataDir, Handler, PrConflict, Request, usage
from .vpd import MAX_TRANSFER_LENGTH

if TYPE_CHECKING:
    from .logical_unit import LogicalUnit

__all__ = ["COMMANDS", "execute", "expected_data_out", "data_out_to_gather"]

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE = 512
#: CONTROL byte: only NACA is evaluated (and refused); LINK and the rest are reserved.
C = 0x04
NACA, LINK = 0x04, 0x01


# ------------------------------------------------------------ Data-Out sizes


def _blocks(cdb: bytes, block_size: int) -> int:
    return transfer_length(cdb) * block_size


def _verify_data(cdb: bytes, block_size: int) -> int:
    bytchk, count = cdb[1] >> 1 & 0x03, transfer_length(cdb)
    return {1: count * block_size, 3: block_size if count else 0}.get(bytchk, 0)


def _write_same_data(cdb: bytes, block_size: int) -> int:
    return 0 if len(cdb) == 16 and cdb[1] & 0x01 else block_size


def _caw_data(cdb: bytes, block_size: int) -> int:
    return 2 * cdb[13] * block_size


def _parameter_list(field: Field) -> Callable[[bytes, int], int]:
    return lambda cdb, block_size: field.get(cdb)


# ------------------------------------------------- reservation conflict rules


def _start_stop_conflict(cdb: bytes) -> PrConflict:
    """SBC-4 table 13: START=1 with POWER CONDITION 0h is allowed, anything else is not."""
    return PrConflict.NONE if cdb[4] & 0x01 and not cdb[4] >> 4 else WRITES


def _prevent_conflict(cdb: bytes) -> PrConflict:
    return PrConflict.NONE if not cdb[4] & 0x03 else WRITES


# ---------------------------------------------------------------- the table


def _rw(name: str, length: int, handler: Handler, writes: bool, byte1: int) -> CommandSpec:
    """READ/WRITE-like commands of the 10/12/16-byte forms (SBC-4 5.x): same field layout."""
    lba = (0xFF,) * (4 if length != 16 else 8)
    count = (0xFF,) * (2 if length == 10 else 4)
    octets = (0xFF, byte1, *lba, 0x3F, *count, C) if length == 10 else (0xFF, byte1, *lba, *count, 0x3F, C)
    return CommandSpec(
        name,
        length,
        usage(*octets),
        handler,
        DataDir.OUT if writes else DataDir.IN,
        WRITES if writes else READS,
        needs_ready=True,
        data_out_len=_blocks if writes else None,
    )


def _verify(name: str, length: int) -> CommandSpec:
    spec = _rw(name, length, sbc.verify, False, 0xF6)
    return replace(spec, data_dir=DataDir.OUT, data_out_len=_verify_data)


def _cache(name: str, length: int, handler: Handler, byte1: int, pr: PrConflict) -> CommandSpec:
    spec = _rw(name, length, handler, False, byte1)
    return replace(spec, data_dir=DataDir.NONE, pr_conflict=pr, timeout=60)


def _write_same(length: int, byte1: int) -> CommandSpec:
    spec = _rw(f"WRITE SAME({length})", length, provisioning.write_same, True, byte1)
    return replace(spec, data_out_len=_write_same_data, exact_data_out=True, timeout=60)


def _pr_in(name: str, handler: Handler) -> CommandSpec:
    return CommandSpec(
        name,
        10,
        usage(0xFF, 0x1F, 0, 0, 0, 0, 0, 0xFF, 0xFF, C),
        handler,
        DataDir.IN,
        alloc_len=Field(7, 2),
    )


def _pr_out(name: str, handler: Handler) -> CommandSpec:
    return CommandSpec(
        name,
        10,
        usage(0xFF, 0x1F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, C),
        handler,
        DataDir.OUT,
        data_out_len=_parameter_list(Field(5, 4)),
    )


def _thin(lu: LogicalUnit) -> bool:
    return lu.thin


_LBA16 = (0xFF,) * 8
_ALLOC4 = (0xFF,) * 4

COMMANDS: dict[int, CommandSpec] = {
    Opcode.TEST_UNIT_READY: CommandSpec(
        "TEST UNIT READY", 6, usage(0xFF, 0, 0, 0, 0, C), spc.test_unit_ready, needs_ready=True
    ),
    Opcode.REQUEST_SENSE: CommandSpec(
        "REQUEST SENSE", 6, usage(0xFF, 0x01, 0, 0, 0xFF, C), spc.request_sense, DataDir.IN,
        spc2_allowed=True, ua_exempt=True, lun_exempt=True, alloc_len=Field(4, 1),
    ),
    Opcode.READ_6: CommandSpec(
        "READ(6)", 6, usage(0xFF, 0x1F, 0xFF, 0xFF, 0xFF, C), sbc.read, DataDir.IN, READS, needs_ready=True
    ),
    Opcode.WRITE_6: CommandSpec(
        "WRITE(6)", 6, usage(0xFF, 0x1F, 0xFF, 0xFF, 0xFF, C), sbc.write, DataDir.OUT, WRITES,
        needs_ready=True, data_out_len=_blocks,
    ),
    Opcode.INQUIRY: CommandSpec(
        "INQUIRY", 6, usage(0xFF, 0x01, 0xFF, 0xFF, 0xFF, C), spc.inquiry, DataDir.IN,
        spc2_allowed=True, ua_exempt=True, lun_exempt=True, alloc_len=Field(3, 2),
    ),
    Opcode.MODE_SELECT_6: CommandSpec(
        "MODE SELECT(6)", 6, usage(0xFF, 0x13, 0, 0, 0xFF, C), mode.mode_select, DataDir.OUT, WRITES,
        data_out_len=_parameter_list(Field(4, 1)),
    ),
    Opcode.RESERVE_6: CommandSpec("RESERVE(6)", 6, usage(0xFF, 0, 0, 0, 0, C), reservations.reserve_6),
    Opcode.RELEASE_6: CommandSpec(
        "RELEASE(6)", 6, usage(0xFF, 0, 0, 0, 0, C), reservations.release_6, spc2_allowed=True
    ),
    Opcode.MODE_SENSE_6: CommandSpec(
        "MODE SENSE(6)", 6, usage(0xFF, 0x08, 0xFF, 0xFF, 0xFF, C), mode.mode_sense, DataDir.IN, READS,
        alloc_len=Field(4, 1),
    ),
    Opcode.START_STOP_UNIT: CommandSpec(
        "START STOP UNIT", 6, usage(0xFF, 0x01, 0, 0x0F, 0xF7, C), spc.start_stop_unit,
        pr_conflict=_start_stop_conflict, timeout=60,
    ),
    Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL: CommandSpec(
        "PREVENT ALLOW MEDIUM REMOVAL", 6, usage(0xFF, 0, 0, 0, 0x03, C), spc.prevent_allow_medium_removal,
        pr_conflict=_prevent_conflict,
    ),
    Opcode.READ_CAPACITY_10: CommandSpec(
        "READ CAPACITY(10)", 10, usage(0xFF, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x01, C), sbc.read_capacity_10,
        DataDir.IN, needs_ready=True,
    ),
    Opcode.READ_10: _rw("READ(10)", 10, sbc.read, False, 0xFE),
    Opcode.WRITE_10: _rw("WRITE(10)", 10, sbc.write, True, 0xFA),
    Opcode.WRITE_AND_VERIFY_10: _rw("WRITE AND VERIFY(10)", 10, sbc.write_and_verify, True, 0xF6),
    Opcode.VERIFY_10: _verify("VERIFY(10)", 10),
    Opcode.PRE_FETCH_10: _cache("PRE-FETCH(10)", 10, sbc.pre_fetch, 0x02, READS),
    Opcode.SYNCHRONIZE_CACHE_10: _cache("SYNCHRONIZE CACHE(10)", 10, sbc.synchronize_cache, 0x06, WRITES),
    Opcode.WRITE_SAME_10: _write_same(10, 0xF8),
    Opcode.UNMAP: CommandSpec(
        "UNMAP", 10, usage(0xFF, 0x01, 0, 0, 0, 0, 0x3F, 0xFF, 0xFF, C), provisioning.unmap, DataDir.OUT, WRITES,
        needs_ready=True, data_out_len=_parameter_list(Field(7, 2)), available=_thin, timeout=60,
    ),
    Opcode.MODE_SELECT_10: CommandSpec(
        "MODE SELECT(10)", 10, usage(0xFF, 0x13, 0, 0, 0, 0, 0, 0xFF, 0xFF, C), mode.mode_select, DataDir.OUT,
        WRITES, data_out_len=_parameter_list(Field(7, 2)),
    ),
    Opcode.MODE_SENSE_10: CommandSpec(
        "MODE SENSE(10)", 10, usage(0xFF, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, C), mode.mode_sense, DataDir.IN,
        READS, alloc_len=Field(7, 2),
    ),
    Opcode.PERSISTENT_RESERVE_IN: CommandSpec(
        "PERSISTENT RESERVE IN", 10, usage(0xFF, 0x1F, 0, 0, 0, 0, 0, 0xFF, 0xFF, C),
        service_actions={
            PrIn.READ_KEYS: _pr_in("READ KEYS", persistent_reserve.read_keys),
            PrIn.READ_RESERVATION: _pr_in("READ RESERVATION", persistent_reserve.read_reservation),
            PrIn.REPORT_CAPABILITIES: _pr_in("REPORT CAPABILITIES", persistent_reserve.report_capabilities),
            PrIn.READ_FULL_STATUS: _pr_in("READ FULL STATUS", persistent_reserve.read_full_status),
        },
    ),
    Opcode.PERSISTENT_RESERVE_OUT: CommandSpec(
        "PERSISTENT RESERVE OUT", 10, usage(0xFF, 0x1F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, C),
        service_actions={
            PrOut.REGISTER: _pr_out("REGISTER", persistent_reserve.register),
            PrOut.RESERVE: _pr_out("RESERVE", persistent_reserve.reserve),
            PrOut.RELEASE: _pr_out("RELEASE", persistent_reserve.release),
            PrOut.CLEAR: _pr_out("CLEAR", persistent_reserve.clear),
            PrOut.PREEMPT: _pr_out("PREEMPT", persistent_reserve.preempt),
            PrOut.PREEMPT_AND_ABORT: _pr_out("PREEMPT AND ABORT", persistent_reserve.preempt_and_abort),
            PrOut.REGISTER_AND_IGNORE_EXISTING_KEY: _pr_out(
                "REGISTER AND IGNORE EXISTING KEY", persistent_reserve.register_and_ignore
            ),
        },
    ),
    Opcode.READ_16: _rw("READ(16)", 16, sbc.read, False, 0xFE),
    Opcode.COMPARE_AND_WRITE: CommandSpec(
        "COMPARE AND WRITE", 16, usage(0xFF, 0xFA, *_LBA16, 0, 0, 0, 0xFF, 0x3F, C), sbc.compare_and_write,
        DataDir.OUT, WRITES, needs_ready=True, data_out_len=_caw_data, exact_data_out=True,
    ),
    Opcode.WRITE_16: _rw("WRITE(16)", 16, sbc.write, True, 0xFA),
    Opcode.WRITE_AND_VERIFY_16: _rw("WRITE AND VERIFY(16)", 16, sbc.write_and_verify, True, 0xF6),
    Opcode.VERIFY_16: _verify("VERIFY(16)", 16),
    Opcode.PRE_FETCH_16: _cache("PRE-FETCH(16)", 16, sbc.pre_fetch, 0x02, READS),
    Opcode.SYNCHRONIZE_CACHE_16: _cache("SYNCHRONIZE CACHE(16)", 16, sbc.synchronize_cache, 0x06, WRITES),
    Opcode.WRITE_SAME_16: _write_same(16, 0xF9),
    Opcode.SERVICE_ACTION_IN_16: CommandSpec(
        "SERVICE ACTION IN(16)", 16, usage(0xFF, 0x1F, *_LBA16, *_ALLOC4, 0, C),
        service_actions={
            ServiceActionIn16.READ_CAPACITY_16: CommandSpec(
                "READ CAPACITY(16)", 16, usage(0xFF, 0x1F, *_LBA16, *_ALLOC4, 0x01, C), sbc.read_capacity_16,
                DataDir.IN, needs_ready=True, alloc_len=Field(10, 4),
            ),
            ServiceActionIn16.GET_LBA_STATUS: CommandSpec(
                "GET LBA STATUS", 16, usage(0xFF, 0x1F, *_LBA16, *_ALLOC4, 0, C), provisioning.get_lba_status,
                DataDir.IN, READS, needs_ready=True, alloc_len=Field(10, 4),
            ),
        },
    ),
    Opcode.REPORT_LUNS: CommandSpec(
        "REPORT LUNS", 12, usage(0xFF, 0, 0xFF, 0, 0, 0, *_ALLOC4, 0, C), spc.report_luns, DataDir.IN,
        spc2_allowed=True, ua_exempt=True, lun_exempt=True, alloc_len=Field(6, 4),
    ),
    Opcode.MAINTENANCE_IN: CommandSpec(
        "MAINTENANCE IN", 12, usage(0xFF, 0x1F, 0x87, 0xFF, 0xFF, 0xFF, *_ALLOC4, 0, C),
        service_actions={
            MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES: CommandSpec(
                "REPORT SUPPORTED OPERATION CODES", 12, usage(0xFF, 0x1F, 0x87, 0xFF, 0xFF, 0xFF, *_ALLOC4, 0, C),
                rsoc.report_supported_operation_codes, DataDir.IN, READS, alloc_len=Field(6, 4),
            ),
        },
    ),
    Opcode.READ_12: _rw("READ(12)", 12, sbc.read, False, 0xFE),
    Opcode.WRITE_12: _rw("WRITE(12)", 12, sbc.write, True, 0xFA),
    Opcode.WRITE_AND_VERIFY_12: _rw("WRITE AND VERIFY(12)", 12, sbc.write_and_verify, True, 0xF6),
    Opcode.VERIFY_12: _verify("VERIFY(12)", 12),
}  # fmt: skip


# ------------------------------------------------------------ check sequence


def _resolve(cdb: bytes) -> CommandSpec | None:
    """The table entry for the CDB, descending into the service action sub-table."""
    spec = COMMANDS.get(cdb[0])
    if spec is None or spec.service_actions is None:
        return spec
    if len(cdb) < 2:
        return None
    return spec.service_actions.get(cdb[1] & 0x1F)


def expected_data_out(cdb: bytes, block_size: int = DEFAULT_BLOCK_SIZE) -> int:
    """Bytes of Data-Out the CDB asks for (0 for anything unknown or malformed)."""
    spec = _resolve(bytes(cdb)) if cdb else None
    if spec is None or spec.data_out_len is None or len(cdb) < spec.cdb_len:
        return 0
    return spec.data_out_len(bytes(cdb[: spec.cdb_len]), block_size)


def data_out_to_gather(cdb: bytes, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[int, int]:
    """(bytes of Data-Out the CDB asks for, bytes of it worth gathering before the command runs).

    No command takes more than MAXIMUM TRANSFER LENGTH blocks (SBC-4 6.6.4, VPD
    B0h): every CDB asking for more is refused on its own fields (TRANSFER
    LENGTH, PARAMETER LIST LENGTH), so for it nothing is gathered and the
    command runs at once. A transport sizes its buffer by the second value (and
    the initiator's Expected Data Transfer Length), never by what it is told.
    """
    asked = expected_data_out(cdb, block_size)
    return asked, asked if asked <= MAX_TRANSFER_LENGTH * block_size else 0


def execute(lu: LogicalUnit | None, command: Command, *, luns: Sequence[int]) -> Result:
    """Run one command against ``lu`` (None: the LUN names no logical unit). Never raises."""
    try:
        data = _run(lu, command, luns)
    except CheckCondition as error:
        return _check_condition(lu, error.reason, error.information, error.field)
    except ReservationConflict:
        return Result(Status.RESERVATION_CONFLICT)
    except BlockError as error:
        reason = next((r for kind, r in ENGINE_REASONS.items() if isinstance(error, kind)), None)
        return _check_condition(lu, reason or SenseReason.INTERNAL_TARGET_FAILURE)
    except Exception:
        log.exception("SCSI command %s failed", bytes(command.cdb[:16]).hex())
        return _check_condition(lu, SenseReason.INTERNAL_TARGET_FAILURE)
    return Result(Status.GOOD, data)


def _check_condition(
    lu: LogicalUnit | None, reason: SenseReason, information: int | None = None, field: FieldPointer | None = None
) -> Result:
    descriptor = lu is not None and lu.mode.d_sense
    sense = build_sense(reason, descriptor=descriptor, information=information, field=field)
    return Result(Status.CHECK_CONDITION, sense=sense)


def _run(lu: LogicalUnit | None, command: Command, luns: Sequence[int]) -> bytes:
    cdb, nexus = bytes(command.cdb), command.nexus
    if not cdb:
        raise CheckCondition(SenseReason.INVALID_OPCODE)
    _check_control_byte(cdb)
    entry = COMMANDS.get(cdb[0])
    if lu is None and not (entry is not None and entry.lun_exempt):
        raise CheckCondition(SenseReason.LUN_NOT_SUPPORTED)
    if lu is not None:
        lu.unit_attention.seen(nexus)
        if not (entry is not None and entry.ua_exempt):
            pending = lu.unit_attention.pop(nexus)
            if pending is not None:
                raise CheckCondition(pending)
    spec = _supported(lu, cdb)
    if len(cdb) < spec.cdb_len:
        raise CheckCondition(SenseReason.INVALID_FIELD_IN_CDB)
    cdb = cdb[: spec.cdb_len]
    if lu is not None and lu.reservations.conflicts(nexus, spec, cdb):
        raise ReservationConflict()
    if spec.needs_ready and lu is not None and not lu.device.online:
        raise CheckCondition(SenseReason.NOT_READY_OFFLINE)
    check_reserved(cdb, spec.usage)
    block_size = lu.device.block_size if lu is not None else DEFAULT_BLOCK_SIZE
    data_out = _data_out(spec, cdb, command.data_out, block_size)
    assert spec.handler is not None
    request = Request(lu, cdb, data_out, nexus, command.lun, spec, COMMANDS, luns)
    data = spec.handler(request) or b""
    if spec.alloc_len is not None:
        data = data[: spec.alloc_len.get(cdb)]
    return data


def _check_control_byte(cdb: bytes) -> None:
    """SAM-5 5.2: no ACA (NACA=1) and no linked commands (LINK=1)."""
    length = group_cdb_length(cdb[0])
    if length is None or len(cdb) < length:
        return
    control = cdb[length - 1]
    if control & NACA:
        raise invalid_cdb(length - 1, 2)
    if control & LINK:
        raise invalid_cdb(length - 1, 0)


def _supported(lu: LogicalUnit | None, cdb: bytes) -> CommandSpec:
    entry = COMMANDS.get(cdb[0])
    if entry is None or not entry.offered_by(lu):
        raise CheckCondition(SenseReason.INVALID_OPCODE)
    if entry.service_actions is None:
        return entry
    spec = _resolve(cdb)
    if spec is None or not spec.offered_by(lu):
        raise invalid_cdb(1, 4)
    return spec


def _data_out(spec: CommandSpec, cdb: bytes, data: bytes | memoryview, block_size: int) -> memoryview:
    """The Data-Out the command gets: at most what the CDB asks for.

    With less than the CDB asks for, SAM-5 leaves a choice between refusing and
    processing what arrived; like tgt and LIO (and as libiscsi's residual tests
    expect) the whole blocks that arrived are processed and the transport
    reports the overflow residual. Commands that need their Data-Out exact
    (WRITE SAME, COMPARE AND WRITE) check it themselves, after their CDB, so a
    bad CDB field is reported as such whatever the data.
    """
    needed = spec.data_out_len(cdb, block_size) if spec.data_out_len is not None else 0
    view = memoryview(data)
    if view.itemsize != 1 or view.ndim != 1:
        view = view.cast("B")
    if spec.exact_data_out:
        return view
    return view[:needed] if len(view) >= needed else view[: len(view) // block_size * block_size]
