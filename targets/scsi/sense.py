"""Why a command failed, and the one place that turns the reason into sense bytes.

Rule of this module: handlers never build sense data. They raise
``CheckCondition(SenseReason.X, ...)``; ``SENSE_TABLE`` maps every reason to its
sense key and ASC/ASCQ, and ``build_sense`` lays the bytes out in fixed (0x70)
or descriptor (0x72) format (SPC-5 4.4), chosen by the D_SENSE bit of the
Control mode page. Engine errors reach the same table through ``ENGINE_REASONS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, auto

from array_sim.block import BlockError, DeviceOffline, OutOfRange, SpaceExhausted, UnrecoveredRead, WriteProtected

__all__ = [
    "SenseKey",
    "Ascq",
    "SenseReason",
    "SenseDetail",
    "SENSE_TABLE",
    "ENGINE_REASONS",
    "FieldPointer",
    "CheckCondition",
    "invalid_cdb",
    "invalid_param",
    "ReservationConflict",
    "build_sense",
]


class SenseKey(IntEnum):
    """SPC-5 4.4.8, table 49."""

    NO_SENSE = 0x0
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    ABORTED_COMMAND = 0xB
    MISCOMPARE = 0xE


class Ascq(IntEnum):
    """ASC and ASCQ packed as ``asc << 8 | ascq`` (SPC-5 4.4.9, libiscsi's naming)."""

    NO_ADDITIONAL_SENSE = 0x0000
    LUN_NOT_READY_MANUAL_INTERVENTION = 0x0403
    INVALID_FIELD_IN_INFORMATION_UNIT = 0x0E03
    UNRECOVERED_READ_ERROR = 0x1100
    PARAMETER_LIST_LENGTH_ERROR = 0x1A00
    MISCOMPARE_DURING_VERIFY = 0x1D00
    INVALID_COMMAND_OPERATION_CODE = 0x2000
    LBA_OUT_OF_RANGE = 0x2100
    INVALID_FIELD_IN_CDB = 0x2400
    LOGICAL_UNIT_NOT_SUPPORTED = 0x2500
    INVALID_FIELD_IN_PARAMETER_LIST = 0x2600
    INVALID_RELEASE_OF_PERSISTENT_RESERVATION = 0x2604
    WRITE_PROTECTED = 0x2700
    SPACE_ALLOCATION_FAILED_WRITE_PROTECT = 0x2707
    POWER_ON_RESET_OR_BUS_DEVICE_RESET = 0x2900
    POWER_ON_OCCURRED = 0x2901
    BUS_DEVICE_RESET_FUNCTION_OCCURRED = 0x2903
    MODE_PARAMETERS_CHANGED = 0x2A01
    RESERVATIONS_PREEMPTED = 0x2A03
    RESERVATIONS_RELEASED = 0x2A04
    REGISTRATIONS_PREEMPTED = 0x2A05
    CAPACITY_DATA_HAS_CHANGED = 0x2A09
    SAVING_PARAMETERS_NOT_SUPPORTED = 0x3900
    INTERNAL_TARGET_FAILURE = 0x4400
    DATA_PHASE_ERROR = 0x4B00
    INSUFFICIENT_REGISTRATION_RESOURCES = 0x5504


class SenseReason(Enum):
    """An abstract reason a command ended in CHECK CONDITION (or a sense-data report)."""

    NO_SENSE = auto()
    NOT_READY_OFFLINE = auto()
    #: Data the member could neither read nor rebuild (a latent error with no redundancy left).
    UNRECOVERED_READ_ERROR = auto()
    INVALID_FIELD_IN_INFORMATION_UNIT = auto()
    PARAMETER_LIST_LENGTH_ERROR = auto()
    MISCOMPARE = auto()
    INVALID_OPCODE = auto()
    LBA_OUT_OF_RANGE = auto()
    INVALID_FIELD_IN_CDB = auto()
    LUN_NOT_SUPPORTED = auto()
    INVALID_FIELD_IN_PARAMETER_LIST = auto()
    INVALID_RELEASE_OF_PR = auto()
    WRITE_PROTECTED = auto()
    SPACE_ALLOCATION_FAILED = auto()
    SAVING_PARAMETERS_NOT_SUPPORTED = auto()
    INSUFFICIENT_REGISTRATION_RESOURCES = auto()
    INTERNAL_TARGET_FAILURE = auto()
    #: The transport received Data-Out it could not accept (iSCSI: a DataSN out of sequence).
    DATA_PHASE_ERROR = auto()
    # Unit attention conditions (SAM-5 5.14, SPC-5 5.14 and 7.5).
    UA_RESET = auto()
    UA_POWER_ON = auto()
    UA_LUN_RESET = auto()
    UA_MODE_PARAMETERS_CHANGED = auto()
    UA_RESERVATIONS_PREEMPTED = auto()
    UA_RESERVATIONS_RELEASED = auto()
    UA_REGISTRATIONS_PREEMPTED = auto()
    UA_CAPACITY_CHANGED = auto()


@dataclass(frozen=True)
class SenseDetail:
    key: SenseKey
    ascq: Ascq


_K = SenseKey
_A = Ascq
#: The only mapping from reasons to sense key / ASC / ASCQ.
SENSE_TABLE: dict[SenseReason, SenseDetail] = {
    SenseReason.NO_SENSE: SenseDetail(_K.NO_SENSE, _A.NO_ADDITIONAL_SENSE),
    # An offline volume needs an administrator to set it online again (volume
    # select ... online), which is what 04/03 says; Linux fails such I/O at once
    # instead of retrying as it would for 04/01 BECOMING READY.
    SenseReason.NOT_READY_OFFLINE: SenseDetail(_K.NOT_READY, _A.LUN_NOT_READY_MANUAL_INTERVENTION),
    SenseReason.UNRECOVERED_READ_ERROR: SenseDetail(_K.MEDIUM_ERROR, _A.UNRECOVERED_READ_ERROR),
    SenseReason.INVALID_FIELD_IN_INFORMATION_UNIT: SenseDetail(
        _K.ILLEGAL_REQUEST, _A.INVALID_FIELD_IN_INFORMATION_UNIT
    ),
    SenseReason.PARAMETER_LIST_LENGTH_ERROR: SenseDetail(_K.ILLEGAL_REQUEST, _A.PARAMETER_LIST_LENGTH_ERROR),
    SenseReason.MISCOMPARE: SenseDetail(_K.MISCOMPARE, _A.MISCOMPARE_DURING_VERIFY),
    SenseReason.INVALID_OPCODE: SenseDetail(_K.ILLEGAL_REQUEST, _A.INVALID_COMMAND_OPERATION_CODE),
    SenseReason.LBA_OUT_OF_RANGE: SenseDetail(_K.ILLEGAL_REQUEST, _A.LBA_OUT_OF_RANGE),
    SenseReason.INVALID_FIELD_IN_CDB: SenseDetail(_K.ILLEGAL_REQUEST, _A.INVALID_FIELD_IN_CDB),
    SenseReason.LUN_NOT_SUPPORTED: SenseDetail(_K.ILLEGAL_REQUEST, _A.LOGICAL_UNIT_NOT_SUPPORTED),
    SenseReason.INVALID_FIELD_IN_PARAMETER_LIST: SenseDetail(_K.ILLEGAL_REQUEST, _A.INVALID_FIELD_IN_PARAMETER_LIST),
    SenseReason.INVALID_RELEASE_OF_PR: SenseDetail(_K.ILLEGAL_REQUEST, _A.INVALID_RELEASE_OF_PERSISTENT_RESERVATION),
    SenseReason.WRITE_PROTECTED: SenseDetail(_K.DATA_PROTECT, _A.WRITE_PROTECTED),
    SenseReason.SPACE_ALLOCATION_FAILED: SenseDetail(_K.DATA_PROTECT, _A.SPACE_ALLOCATION_FAILED_WRITE_PROTECT),
    SenseReason.SAVING_PARAMETERS_NOT_SUPPORTED: SenseDetail(_K.ILLEGAL_REQUEST, _A.SAVING_PARAMETERS_NOT_SUPPORTED),
    SenseReason.INSUFFICIENT_REGISTRATION_RESOURCES: SenseDetail(
        _K.ILLEGAL_REQUEST, _A.INSUFFICIENT_REGISTRATION_RESOURCES
    ),
    SenseReason.INTERNAL_TARGET_FAILURE: SenseDetail(_K.HARDWARE_ERROR, _A.INTERNAL_TARGET_FAILURE),
    SenseReason.DATA_PHASE_ERROR: SenseDetail(_K.ABORTED_COMMAND, _A.DATA_PHASE_ERROR),
    SenseReason.UA_RESET: SenseDetail(_K.UNIT_ATTENTION, _A.POWER_ON_RESET_OR_BUS_DEVICE_RESET),
    SenseReason.UA_POWER_ON: SenseDetail(_K.UNIT_ATTENTION, _A.POWER_ON_OCCURRED),
    SenseReason.UA_LUN_RESET: SenseDetail(_K.UNIT_ATTENTION, _A.BUS_DEVICE_RESET_FUNCTION_OCCURRED),
    SenseReason.UA_MODE_PARAMETERS_CHANGED: SenseDetail(_K.UNIT_ATTENTION, _A.MODE_PARAMETERS_CHANGED),
    SenseReason.UA_RESERVATIONS_PREEMPTED: SenseDetail(_K.UNIT_ATTENTION, _A.RESERVATIONS_PREEMPTED),
    SenseReason.UA_RESERVATIONS_RELEASED: SenseDetail(_K.UNIT_ATTENTION, _A.RESERVATIONS_RELEASED),
    SenseReason.UA_REGISTRATIONS_PREEMPTED: SenseDetail(_K.UNIT_ATTENTION, _A.REGISTRATIONS_PREEMPTED),
    SenseReason.UA_CAPACITY_CHANGED: SenseDetail(_K.UNIT_ATTENTION, _A.CAPACITY_DATA_HAS_CHANGED),
}

#: What each engine error means in SCSI terms (array_sim/block.py names the condition).
ENGINE_REASONS: dict[type[BlockError], SenseReason] = {
    OutOfRange: SenseReason.LBA_OUT_OF_RANGE,
    WriteProtected: SenseReason.WRITE_PROTECTED,
    SpaceExhausted: SenseReason.SPACE_ALLOCATION_FAILED,
    DeviceOffline: SenseReason.NOT_READY_OFFLINE,
    UnrecoveredRead: SenseReason.UNRECOVERED_READ_ERROR,
}


@dataclass(frozen=True)
class FieldPointer:
    """The SENSE KEY SPECIFIC field pointer for ILLEGAL REQUEST (SPC-5 4.4.2.4.2).

    ``byte`` counts from the start of the CDB (``in_cdb``) or of the parameter
    list; ``bit`` is the most significant bit of the field, or None.
    """

    byte: int
    bit: int | None = None
    in_cdb: bool = True

    def encode(self) -> bytes:
        first = 0x80 | (0x40 if self.in_cdb else 0)
        if self.bit is not None:
            first |= 0x08 | (self.bit & 0x07)
        return bytes([first]) + (self.byte & 0xFFFF).to_bytes(2, "big")


class CheckCondition(Exception):
    """End the command with CHECK CONDITION for ``reason``.

    Args:
        reason: the abstract reason; ``SENSE_TABLE`` decides the bytes.
        information: the INFORMATION field (a byte offset for MISCOMPARE).
        field: where in the CDB or parameter list the bad field is.
    """

    def __init__(
        self, reason: SenseReason, *, information: int | None = None, field: FieldPointer | None = None
    ) -> None:
        super().__init__(reason.name)
        self.reason = reason
        self.information = information
        self.field = field


def invalid_cdb(byte: int, bit: int | None = None) -> CheckCondition:
    return CheckCondition(SenseReason.INVALID_FIELD_IN_CDB, field=FieldPointer(byte, bit))


def invalid_param(byte: int, bit: int | None = None) -> CheckCondition:
    return CheckCondition(SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, field=FieldPointer(byte, bit, in_cdb=False))


class ReservationConflict(Exception):
    """End the command with RESERVATION CONFLICT status (no sense data)."""


def build_sense(
    reason: SenseReason, *, descriptor: bool, information: int | None = None, field: FieldPointer | None = None
) -> bytes:
    """Sense data for ``reason``, current error, fixed or descriptor format (SPC-5 4.4.2, 4.4.3)."""
    detail = SENSE_TABLE[reason]
    asc, ascq = detail.ascq >> 8, detail.ascq & 0xFF
    if descriptor:
        descriptors = b""
        if information is not None:
            # Information descriptor (SPC-5 4.4.2.2): VALID=1, 8-byte INFORMATION.
            descriptors += bytes([0x00, 0x0A, 0x80, 0]) + (information & (2**64 - 1)).to_bytes(8, "big")
        if field is not None:
            # Sense key specific descriptor (SPC-5 4.4.2.3).
            descriptors += bytes([0x02, 0x06, 0, 0]) + field.encode() + b"\x00"
        return bytes([0x72, detail.key, asc, ascq, 0, 0, 0, len(descriptors)]) + descriptors
    sense = bytearray(18)
    sense[0] = 0x70
    if information is not None and 0 <= information <= 0xFFFFFFFF:
        sense[0] |= 0x80
        sense[3:7] = information.to_bytes(4, "big")
    sense[2] = detail.key
    sense[7] = 10
    sense[12], sense[13] = asc, ascq
    if field is not None:
        sense[15:18] = field.encode()
    return bytes(sense)
