"""Operation codes and service actions this device server knows by name.

Naming an opcode here does not make it supported: only the entries of
``dispatch.COMMANDS`` are. The rest of the 256 codes answer INVALID COMMAND
OPERATION CODE.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "Opcode",
    "ServiceActionIn16",
    "MaintenanceIn",
    "PrIn",
    "PrOut",
    "PrType",
    "group_cdb_length",
]


class Opcode(IntEnum):
    #: SPC-5 6.47
    TEST_UNIT_READY = 0x00
    #: SPC-5 6.39
    REQUEST_SENSE = 0x03
    #: SBC-4 5.7 (READ(6) is in SBC-4 annex as obsolete but still widely sent)
    READ_6 = 0x08
    WRITE_6 = 0x0A
    #: SPC-5 6.7
    INQUIRY = 0x12
    #: SPC-5 6.11
    MODE_SELECT_6 = 0x15
    #: SPC-2 7.21 / 7.16 (obsolete in SPC-3 and later, still used by old cluster software)
    RESERVE_6 = 0x16
    RELEASE_6 = 0x17
    #: SPC-5 6.13
    MODE_SENSE_6 = 0x1A
    #: SBC-4 5.25
    START_STOP_UNIT = 0x1B
    #: SBC-4 5.14
    PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1E
    #: SBC-4 5.20
    READ_CAPACITY_10 = 0x25
    #: SBC-4 5.16
    READ_10 = 0x28
    #: SBC-4 5.40
    WRITE_10 = 0x2A
    #: SBC-4 5.45
    WRITE_AND_VERIFY_10 = 0x2E
    #: SBC-4 5.36
    VERIFY_10 = 0x2F
    #: SBC-4 5.11
    PRE_FETCH_10 = 0x34
    #: SBC-4 5.27
    SYNCHRONIZE_CACHE_10 = 0x35
    #: SBC-4 5.48
    WRITE_SAME_10 = 0x41
    #: SBC-4 5.32
    UNMAP = 0x42
    MODE_SELECT_10 = 0x55
    MODE_SENSE_10 = 0x5A
    #: SPC-5 6.16 / 6.17
    PERSISTENT_RESERVE_IN = 0x5E
    PERSISTENT_RESERVE_OUT = 0x5F
    READ_16 = 0x88
    #: SBC-4 5.3
    COMPARE_AND_WRITE = 0x89
    WRITE_16 = 0x8A
    WRITE_AND_VERIFY_16 = 0x8E
    VERIFY_16 = 0x8F
    PRE_FETCH_16 = 0x90
    SYNCHRONIZE_CACHE_16 = 0x91
    WRITE_SAME_16 = 0x93
    #: SERVICE ACTION IN(16): READ CAPACITY(16), GET LBA STATUS
    SERVICE_ACTION_IN_16 = 0x9E
    #: SPC-5 6.33
    REPORT_LUNS = 0xA0
    #: MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES
    MAINTENANCE_IN = 0xA3
    READ_12 = 0xA8
    WRITE_12 = 0xAA
    WRITE_AND_VERIFY_12 = 0xAE
    VERIFY_12 = 0xAF


class ServiceActionIn16(IntEnum):
    #: SBC-4 5.21
    READ_CAPACITY_16 = 0x10
    #: SBC-4 5.6
    GET_LBA_STATUS = 0x12


class MaintenanceIn(IntEnum):
    #: SPC-5 6.35
    REPORT_SUPPORTED_OPERATION_CODES = 0x0C


class PrIn(IntEnum):
    """SPC-5 6.16.1, table 160."""

    READ_KEYS = 0x00
    READ_RESERVATION = 0x01
    REPORT_CAPABILITIES = 0x02
    READ_FULL_STATUS = 0x03


class PrOut(IntEnum):
    """SPC-5 6.17.1, table 175 (REGISTER AND MOVE and REPLACE LOST RESERVATION unsupported)."""

    REGISTER = 0x00
    RESERVE = 0x01
    RELEASE = 0x02
    CLEAR = 0x03
    PREEMPT = 0x04
    PREEMPT_AND_ABORT = 0x05
    REGISTER_AND_IGNORE_EXISTING_KEY = 0x06


class PrType(IntEnum):
    """SPC-5 6.16.3.4, table 166."""

    WRITE_EXCLUSIVE = 0x1
    EXCLUSIVE_ACCESS = 0x3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 0x5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 0x6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 0x7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 0x8

    @property
    def all_registrants(self) -> bool:
        return self in (PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS, PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)

    @property
    def registrants_only(self) -> bool:
        return self in (PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY)

    @property
    def write_exclusive(self) -> bool:
        return self in (
            PrType.WRITE_EXCLUSIVE,
            PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
            PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS,
        )


def group_cdb_length(opcode: int) -> int | None:
    """The CDB length the opcode's group code implies (SPC-5 4.2.5.1), None if vendor/variable."""
    group = opcode >> 5
    return {0: 6, 1: 10, 2: 10, 4: 16, 5: 12}.get(group)
