"""iSCSI PDUs (RFC 7143 section 11): typed values and their 48-byte Basic Header Segments.

Rules of this module:

1. No I/O and no state: ``decode(bhs, ahs, data)`` turns one framed PDU into a
   typed value, ``pdu.encode()`` gives the header and the data segment back.
2. Each PDU type declares its header layout as one line of (field, struct
   code) pairs in wire order, so the layout reads like the RFC's figure and
   is packed with one precompiled ``struct.Struct``. Bytes 4-7 (TotalAHSLength
   and DataSegmentLength) are filled in from the data by ``encode``.
3. Field names are the RFC's, in snake case (``itt``, ``cmd_sn``,
   ``exp_stat_sn``, ``buffer_offset``). Byte 1 is kept whole as ``flags``;
   the named bits are module constants.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

__all__ = [
    "Opcode",
    "Pdu",
    "NopOut",
    "ScsiCommand",
    "TaskManagementRequest",
    "LoginRequest",
    "TextRequest",
    "DataOut",
    "LogoutRequest",
    "Snack",
    "NopIn",
    "ScsiResponse",
    "TaskManagementResponse",
    "LoginResponse",
    "TextResponse",
    "DataIn",
    "LogoutResponse",
    "ReadyToTransfer",
    "AsyncMessage",
    "Reject",
    "RejectReason",
    "PDU_TYPES",
    "BHS_LENGTH",
    "RESERVED_TAG",
    "FINAL",
]

BHS_LENGTH = 48
#: The "no tag" value of ITT and TTT (RFC 7143 section 11.1).
RESERVED_TAG = 0xFFFFFFFF

FINAL = 0x80
# SCSI Command flags (section 11.3)
READ, WRITE, ATTR_MASK = 0x40, 0x20, 0x07
# Login flags (section 11.12)
TRANSIT, CONTINUE = 0x80, 0x40
# Response/Data-In residual flags (sections 11.4, 11.7)
BIDI_OVERFLOW, BIDI_UNDERFLOW, OVERFLOW, UNDERFLOW = 0x10, 0x08, 0x04, 0x02
ACKNOWLEDGE, STATUS = 0x40, 0x01


class Opcode(IntEnum):
    """PDU opcodes, initiator (0x00-0x1f) and target (0x20-0x3f) (section 11.2.1.2)."""

    NOP_OUT = 0x00
    SCSI_COMMAND = 0x01
    TASK_MANAGEMENT_REQUEST = 0x02
    LOGIN_REQUEST = 0x03
    TEXT_REQUEST = 0x04
    DATA_OUT = 0x05
    LOGOUT_REQUEST = 0x06
    SNACK = 0x10
    NOP_IN = 0x20
    SCSI_RESPONSE = 0x21
    TASK_MANAGEMENT_RESPONSE = 0x22
    LOGIN_RESPONSE = 0x23
    TEXT_RESPONSE = 0x24
    DATA_IN = 0x25
    LOGOUT_RESPONSE = 0x26
    READY_TO_TRANSFER = 0x31
    ASYNC_MESSAGE = 0x32
    REJECT = 0x3F


@dataclass(frozen=True)
class Layout:
    """A header layout: the packer, and which unpacked values are which fields."""

    packer: struct.Struct
    #: Names of the fields that ``packer.unpack`` returns, in order (``_opcode``, ``_lengths`` included).
    names: tuple[str, ...]
    #: The typed fields among them, and how to pick their values out of an unpacked tuple.
    fields: tuple[str, ...]
    pick: Callable[[tuple[object, ...]], tuple[object, ...]]


class RejectReason(IntEnum):
    """Reject reasons (section 11.17.1)."""

    DATA_DIGEST = 0x02
    PROTOCOL_ERROR = 0x04
    NOT_SUPPORTED = 0x05
    INVALID_FIELD = 0x09


def _layout(spec: str) -> Layout:
    """``"name:code ..."`` after bytes 0-1. Names starting with ``_`` are reserved: zero
    bytes (struct padding), except ``_itt``, which is the all-ones "no task" tag."""
    codes, names = ["B", "B"], ["_opcode", "flags"]
    for item in spec.split():
        name, code = item.split(":")
        if name.startswith("_") and name not in ("_lengths", "_itt"):
            size = struct.calcsize("!" + code)
            codes.append(f"{size}x")
            continue
        codes.append(code)
        names.append(name)
    packer = struct.Struct("!" + "".join(codes))
    if packer.size != BHS_LENGTH:
        raise ValueError(f"layout is {packer.size} bytes: {spec}")
    indexes = [i for i, name in enumerate(names) if not name.startswith("_")]
    pick = operator.itemgetter(*indexes)
    return Layout(packer, tuple(names), tuple(names[i] for i in indexes), pick)  # type: ignore[arg-type]


@dataclass
class Pdu:
    """Base of every PDU type: the immediate bit, byte 1, the AHS and the data segment."""

    OPCODE: ClassVar[Opcode]
    LAYOUT: ClassVar[Layout]

    flags: int = FINAL
    immediate: bool = False
    ahs: bytes = b""
    data: bytes | bytearray | memoryview = b""

    @property
    def final(self) -> bool:
        return bool(self.flags & FINAL)

    def encode(self) -> bytes:
        """The BHS followed by the AHS; the data segment is ``self.data`` (padding is the framer's).

        Each class gets its own straight-line version of this at definition
        (``_compile_encode``): headers are built for every I/O, so no loop here.
        """
        raise NotImplementedError

    @classmethod
    def decode(cls, bhs: bytes | memoryview, ahs: bytes = b"", data: bytes | memoryview = b"") -> Pdu:
        layout = cls.LAYOUT
        values = layout.packer.unpack(bhs)
        pdu = object.__new__(cls)
        pdu.__dict__.update(zip(layout.fields, layout.pick(values), strict=True))
        pdu.__dict__.update(immediate=bool(values[0] & 0x40), ahs=bytes(ahs), data=data)
        return pdu


def _compile_encode(cls: type[Pdu]) -> Callable[[Pdu], bytes]:
    """A straight-line ``encode`` for one layout (as ``dataclasses`` generates ``__init__``)."""
    expressions = []
    for name in cls.LAYOUT.names:
        if name == "_opcode":
            expressions.append(f"{int(cls.OPCODE)} | (0x40 if self.immediate else 0)")
        elif name == "_lengths":
            expressions.append("len(self.ahs) // 4 << 24 | len(self.data)")
        elif name == "_itt":
            expressions.append(str(RESERVED_TAG))
        else:
            expressions.append(f"self.{name}")
    source = f"def encode(self):\n    return pack({', '.join(expressions)}) + self.ahs\n"
    namespace: dict[str, object] = {"pack": cls.LAYOUT.packer.pack}
    exec(source, namespace)  # noqa: S102 - generated from the layout table above, no outside input
    encode = namespace["encode"]
    encode.__doc__ = Pdu.encode.__doc__  # type: ignore[attr-defined]
    return encode  # type: ignore[return-value]


def _pdu(opcode: Opcode, spec: str) -> Callable[[type[P]], type[P]]:
    """Class decorator: set the opcode and layout, and make the class a dataclass."""

    def wrap(cls: type[P]) -> type[P]:
        cls.OPCODE = opcode
        cls.LAYOUT = _layout(spec)
        cls.encode = _compile_encode(cls)  # type: ignore[method-assign]
        return dataclass(cls)

    return wrap


P = TypeVar("P", bound=Pdu)
_HEAD = "_r2:2s _lengths:I"  # bytes 2-3 (opcode specific) and 4-7


@_pdu(Opcode.NOP_OUT, f"{_HEAD} lun:Q itt:I ttt:I cmd_sn:I exp_stat_sn:I _r32:16s")
class NopOut(Pdu):
    lun: int = 0
    itt: int = RESERVED_TAG
    ttt: int = RESERVED_TAG
    cmd_sn: int = 0
    exp_stat_sn: int = 0


@_pdu(Opcode.SCSI_COMMAND, f"{_HEAD} lun:Q itt:I expected_length:I cmd_sn:I exp_stat_sn:I cdb:16s")
class ScsiCommand(Pdu):
    lun: int = 0
    itt: int = 0
    expected_length: int = 0
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    cdb: bytes = bytes(16)


@_pdu(
    Opcode.TASK_MANAGEMENT_REQUEST,
    f"{_HEAD} lun:Q itt:I referenced_task_tag:I cmd_sn:I exp_stat_sn:I ref_cmd_sn:I exp_data_sn:I _r40:8s",
)
class TaskManagementRequest(Pdu):
    lun: int = 0
    itt: int = 0
    referenced_task_tag: int = RESERVED_TAG
    cmd_sn: int = 0
    exp_stat_sn: int = 0
    ref_cmd_sn: int = 0
    exp_data_sn: int = 0

    @property
    def function(self) -> int:
        return self.flags & 0x7F


@_pdu(
    Opcode.LOGIN_REQUEST,
    "version_max:B version_min:B _lengths:I isid:6s tsih:H itt:I cid:H _r22:H cmd_sn:I exp_stat_sn:I _r32:16s",
)
class LoginRequest(Pdu):
    version_max: int = 0
    version_min: int = 0
    isid: bytes = bytes(6)
    tsih: int = 0
    itt: int = 0
    cid: int = 0
    cmd_sn: int = 0
    exp_stat_sn: int = 0


@_pdu(Opcode.TEXT_REQUEST, f"{_HEAD} lun:Q itt:I ttt:I cmd_sn:I exp_stat_sn:I _r32:16s")
class TextRequest(Pdu):
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    cmd_sn: int = 0
    exp_stat_sn: int = 0


@_pdu(Opcode.DATA_OUT, f"{_HEAD} lun:Q itt:I ttt:I _r24:I exp_stat_sn:I _r32:I data_sn:I buffer_offset:I _r44:I")
class DataOut(Pdu):
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    exp_stat_sn: int = 0
    data_sn: int = 0
    buffer_offset: int = 0


@_pdu(Opcode.LOGOUT_REQUEST, f"{_HEAD} _r8:Q itt:I cid:H _r22:H cmd_sn:I exp_stat_sn:I _r32:16s")
class LogoutRequest(Pdu):
    itt: int = 0
    cid: int = 0
    cmd_sn: int = 0
    exp_stat_sn: int = 0

    @property
    def reason(self) -> int:
        return self.flags & 0x7F


@_pdu(Opcode.SNACK, f"{_HEAD} lun:Q itt:I ttt:I _r24:I exp_stat_sn:I _r32:8s beg_run:I run_length:I")
class Snack(Pdu):
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    exp_stat_sn: int = 0
    beg_run: int = 0
    run_length: int = 0


_TARGET_SN = "stat_sn:I exp_cmd_sn:I max_cmd_sn:I"


@_pdu(Opcode.NOP_IN, f"{_HEAD} lun:Q itt:I ttt:I {_TARGET_SN} _r36:12s")
class NopIn(Pdu):
    lun: int = 0
    itt: int = RESERVED_TAG
    ttt: int = RESERVED_TAG
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0


@_pdu(
    Opcode.SCSI_RESPONSE,
    f"response:B status:B _lengths:I _r8:Q itt:I snack_tag:I {_TARGET_SN} exp_data_sn:I bidi_residual:I residual:I",
)
class ScsiResponse(Pdu):
    response: int = 0
    status: int = 0
    itt: int = 0
    snack_tag: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    exp_data_sn: int = 0
    bidi_residual: int = 0
    residual: int = 0


@_pdu(Opcode.TASK_MANAGEMENT_RESPONSE, f"response:B _r3:B _lengths:I _r8:Q itt:I _r20:I {_TARGET_SN} _r36:12s")
class TaskManagementResponse(Pdu):
    response: int = 0
    itt: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0


@_pdu(
    Opcode.LOGIN_RESPONSE,
    "version_max:B version_active:B _lengths:I isid:6s tsih:H itt:I _r20:I "
    f"{_TARGET_SN} status_class:B status_detail:B _r38:10s",
)
class LoginResponse(Pdu):
    version_max: int = 0
    version_active: int = 0
    isid: bytes = bytes(6)
    tsih: int = 0
    itt: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    status_class: int = 0
    status_detail: int = 0


@_pdu(Opcode.TEXT_RESPONSE, f"{_HEAD} lun:Q itt:I ttt:I {_TARGET_SN} _r36:12s")
class TextResponse(Pdu):
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0


@_pdu(
    Opcode.DATA_IN,
    f"_r2:B status:B _lengths:I lun:Q itt:I ttt:I {_TARGET_SN} data_sn:I buffer_offset:I residual:I",
)
class DataIn(Pdu):
    status: int = 0
    lun: int = 0
    itt: int = 0
    ttt: int = RESERVED_TAG
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    data_sn: int = 0
    buffer_offset: int = 0
    residual: int = 0


@_pdu(
    Opcode.LOGOUT_RESPONSE,
    f"response:B _r3:B _lengths:I _r8:Q itt:I _r20:I {_TARGET_SN} _r36:I time2wait:H time2retain:H _r44:I",
)
class LogoutResponse(Pdu):
    response: int = 0
    itt: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    time2wait: int = 0
    time2retain: int = 0


@_pdu(
    Opcode.READY_TO_TRANSFER,
    f"{_HEAD} lun:Q itt:I ttt:I {_TARGET_SN} r2t_sn:I buffer_offset:I desired_length:I",
)
class ReadyToTransfer(Pdu):
    lun: int = 0
    itt: int = 0
    ttt: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    r2t_sn: int = 0
    buffer_offset: int = 0
    desired_length: int = 0


@_pdu(
    Opcode.ASYNC_MESSAGE,
    f"{_HEAD} lun:Q _itt:I _r20:I {_TARGET_SN} async_event:B async_vcode:B "
    "parameter1:H parameter2:H parameter3:H _r44:I",
)
class AsyncMessage(Pdu):
    lun: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    async_event: int = 0
    async_vcode: int = 0
    parameter1: int = 0
    parameter2: int = 0
    parameter3: int = 0


@_pdu(Opcode.REJECT, f"reason:B _r3:B _lengths:I _r8:Q _itt:I _r20:I {_TARGET_SN} data_sn:I _r40:8s")
class Reject(Pdu):
    reason: int = 0
    stat_sn: int = 0
    exp_cmd_sn: int = 0
    max_cmd_sn: int = 0
    data_sn: int = 0


#: Decoder by opcode.
PDU_TYPES: dict[int, type[Pdu]] = {
    cls.OPCODE: cls
    for cls in (
        NopOut, ScsiCommand, TaskManagementRequest, LoginRequest, TextRequest, DataOut, LogoutRequest, Snack,
        NopIn, ScsiResponse, TaskManagementResponse, LoginResponse, TextResponse, DataIn, LogoutResponse,
        ReadyToTransfer, AsyncMessage, Reject,
    )
}  # fmt: skip
