"""The shape of one row of the opcode table, and what a handler is given.

A ``CommandSpec`` is data: the check sequence in ``dispatch.py`` reads it to
decide everything that is common to all commands (CDB length and reserved bits,
unit attention, reservation conflicts, readiness, Data-Out size, allocation
length), and REPORT SUPPORTED OPERATION CODES prints it. A handler only does
what is particular to its command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, Flag
from typing import TYPE_CHECKING

from .cdb import Field
from .model import Nexus

if TYPE_CHECKING:
    from .logical_unit import LogicalUnit

__all__ = ["DataDir", "PrConflict", "CommandSpec", "Request", "Handler", "usage"]


class DataDir(Enum):
    NONE = "none"
    IN = "in"
    OUT = "out"


class PrConflict(Flag):
    """Where a command conflicts with a persistent reservation it does not hold.

    The columns of SPC-5 table 67 and SBC-4 table 13 (as tgt's ``pr_conflict``
    bits): a set flag means RESERVATION CONFLICT for a non-holder I_T nexus
    under that reservation type. Registered nexuses are always allowed under
    the registrants-only and all-registrants types.
    """

    NONE = 0
    #: Write Exclusive, from any I_T nexus but the holder.
    WE = 1
    #: Exclusive Access, from any I_T nexus but the holder.
    EA = 2
    #: Write Exclusive - Registrants Only / All Registrants, from an unregistered I_T nexus.
    WE_UNREGISTERED = 4
    #: Exclusive Access - Registrants Only / All Registrants, from an unregistered I_T nexus.
    EA_UNREGISTERED = 8


#: Commands that read the medium or its metadata: allowed under Write Exclusive types.
READS = PrConflict.EA | PrConflict.EA_UNREGISTERED
#: Commands that change the medium or the logical unit: conflict under every type.
WRITES = PrConflict.WE | PrConflict.EA | PrConflict.WE_UNREGISTERED | PrConflict.EA_UNREGISTERED


def usage(*octets: int) -> bytes:
    """CDB USAGE DATA from the bit mask of each CDB byte, opcode first."""
    return bytes(octets)


Handler = Callable[["Request"], "bytes | None"]


@dataclass(frozen=True)
class CommandSpec:
    """One command (or one service action of an opcode) in the table.

    Attributes:
        name: the command's name as the standards spell it.
        cdb_len: CDB length in bytes (the CONTROL byte is the last one).
        usage: CDB USAGE DATA (SPC-5 6.35.3): bits the device server looks at;
            any other bit set in a CDB is refused as INVALID FIELD IN CDB.
        handler: does the command; None for an opcode split by service action.
        data_dir: the direction of the data, for the transport and for RSOC.
        pr_conflict: flags, or a function of the CDB for the commands whose
            conflict depends on a field (START STOP UNIT, PREVENT ALLOW).
        spc2_allowed: allowed while another I_T nexus holds an SPC-2 RESERVE.
        ua_exempt: neither reports nor clears a pending unit attention.
        lun_exempt: runs even when the LUN names no logical unit.
        needs_ready: accesses the medium, so an offline volume is NOT READY.
        alloc_len: where the ALLOCATION LENGTH is; data-in is cut to it.
        data_out_len: bytes of Data-Out the CDB asks for, given the block size.
        exact_data_out: more Data-Out than that is an error, not padding.
        service_actions: the sub-table for opcodes with a SERVICE ACTION field.
        available: whether a given logical unit offers the command (UNMAP is
            offered by thin-provisioned volumes only).
        timeout: recommended command timeout in seconds, for RSOC's CTDP.
    """

    name: str
    cdb_len: int
    usage: bytes
    handler: Handler | None = None
    data_dir: DataDir = DataDir.NONE
    pr_conflict: PrConflict | Callable[[bytes], PrConflict] = PrConflict.NONE
    spc2_allowed: bool = False
    ua_exempt: bool = False
    lun_exempt: bool = False
    needs_ready: bool = False
    alloc_len: Field | None = None
    data_out_len: Callable[[bytes, int], int] | None = None
    exact_data_out: bool = False
    service_actions: Mapping[int, CommandSpec] | None = None
    available: Callable[[LogicalUnit], bool] | None = None
    timeout: int = 30

    def conflict_flags(self, cdb: bytes) -> PrConflict:
        return self.pr_conflict(cdb) if callable(self.pr_conflict) else self.pr_conflict

    def offered_by(self, lu: LogicalUnit | None) -> bool:
        return self.available is None or (lu is not None and self.available(lu))


@dataclass
class Request:
    """Everything a handler may look at.

    ``lu`` is None only for the LUN-exempt commands sent to a LUN that names
    no logical unit; ``cdb`` is cut to the command's CDB length and
    ``data_out`` to what the CDB asked for.
    """

    lu: LogicalUnit | None
    cdb: bytes
    data_out: memoryview
    nexus: Nexus
    lun: int
    spec: CommandSpec
    table: Mapping[int, CommandSpec]
    luns: Sequence[int]

    @property
    def unit(self) -> LogicalUnit:
        """The logical unit, for handlers that never run without one."""
        assert self.lu is not None, f"{self.spec.name} needs a logical unit"
        return self.lu
