"""The values that cross the boundary between a transport and the SCSI layer.

A transport (our iSCSI target, later a LIO/TCMU handler) turns what arrives on
the wire into a ``Command`` and sends back what the ``Result`` says. Nothing in
here knows about PDUs, sockets or sessions: an I_T nexus is just the pair of
SCSI port names (SAM-5 4.6), and a LUN is an integer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

__all__ = ["Status", "Nexus", "Command", "Result", "encode_lun", "decode_lun", "REPORT_LUNS_WLUN"]

#: The REPORT LUNS well-known logical unit (SPC-5 8.2), as ``decode_lun`` returns it.
REPORT_LUNS_WLUN = 0xC101


class Status(IntEnum):
    """SAM-5 5.3 status codes."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28


@dataclass(frozen=True)
class Nexus:
    """An I_T nexus: the initiator port and the target port it reached.

    For iSCSI the port names are ``"<initiator name>,i,0x<ISID>"`` and
    ``"<target name>,t,0x<TPGT>"`` (RFC 7143 §4.4.1); this layer only compares
    them, except that a persistent reservation TransportID is built from the
    initiator port name (see ``reservations.transport_id``).
    """

    initiator_port: str
    target_port: str


@dataclass
class Command:
    """One SCSI command as the device server receives it.

    ``data_out`` is the whole Data-Out buffer (the transport gathers it first);
    ``lun`` is the logical unit number decoded from the 8-byte LUN field.
    """

    cdb: bytes
    data_out: bytes | memoryview = b""
    nexus: Nexus = field(kw_only=True)
    lun: int = field(default=0, kw_only=True)


@dataclass
class Result:
    """What the command produced.

    ``data_in`` is already cut to the CDB's ALLOCATION LENGTH; the transport
    cuts it further to the initiator's expected length and reports residuals.
    ``sense`` is non-empty only with CHECK CONDITION.
    """

    status: Status
    data_in: bytes = b""
    sense: bytes = b""


def encode_lun(lun: int) -> bytes:
    """The 8-byte LUN field for ``lun`` (SAM-5 4.7: peripheral below 256, else flat space)."""
    if lun == REPORT_LUNS_WLUN:
        return bytes([0xC1, 0x01]) + bytes(6)
    if not 0 <= lun < 0x4000:
        raise ValueError(f"LUN {lun} is outside 0..16383")
    if lun < 256:
        return bytes([0, lun]) + bytes(6)
    return bytes([0x40 | lun >> 8, lun & 0xFF]) + bytes(6)


def decode_lun(field_: bytes) -> int:
    """The LUN an 8-byte LUN field names (peripheral or flat space addressing).

    The REPORT LUNS well-known LUN comes back as ``REPORT_LUNS_WLUN``; no
    logical unit has that number, so only INQUIRY, REPORT LUNS and REQUEST
    SENSE answer there.

    Raises:
        ValueError: another addressing method or a second level, which no
            logical unit of ours answers to.
    """
    if len(field_) != 8 or any(field_[2:]):
        raise ValueError("only single-level LUNs are supported")
    if field_[:2] == b"\xc1\x01":
        return REPORT_LUNS_WLUN
    method = field_[0] >> 6
    if method == 0 and field_[0] == 0:
        return field_[1]
    if method == 1:
        return (field_[0] & 0x3F) << 8 | field_[1]
    raise ValueError(f"unsupported LUN addressing method {method}")
