"""The target_core_user ABI: every offset, size and constant the ring walk uses.

Source: Linux 6.1 ``include/uapi/linux/target_core_user.h``, with the offsets
checked by ``gcc`` ``offsetof`` against Debian's linux-libc-dev 6.1.192 (lio.md
3.2). Everything is little-endian (the mapping is shared with the kernel of
the same machine; every host we run on is x86-64 or arm64 little-endian).

Rules of this module:

1. This is the only place that knows a field's offset or size; ``ring`` and
   the tests' fake kernel use these names and never a bare number.
2. A field is named ``<STRUCT>_<FIELD>`` and is an ``(offset, struct format)``
   pair relative to the start of its struct (the mailbox, or one ring entry);
   ``*_SIZE`` constants are byte counts.
3. Nothing here reads or writes memory: it is a table.

The mapping is ``mailbox | command ring | data area``: the mailbox is
``MAILBOX_SIZE`` bytes, the ring starts at ``cmdr_off`` (always
``MAILBOX_SIZE``) and is ``cmdr_size`` bytes, and the data area follows it
(``tcmu_configure_device``: ``data_off = cmdr_size + CMDR_OFF``). Every
``cdb_off`` and ``iov_base`` is an offset from the start of the mapping, not
from the entry.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "MAILBOX_VERSION",
    "MAILBOX_SIZE",
    "CMDR_OFF",
    "MailboxFlag",
    "MAILBOX_VERSION_FIELD",
    "MAILBOX_FLAGS",
    "MAILBOX_GEOMETRY",
    "MAILBOX_CMD_HEAD",
    "MAILBOX_CMD_TAIL",
    "Op",
    "UFlag",
    "OP_MASK",
    "OP_ALIGN",
    "HDR",
    "HDR_SIZE",
    "HDR_CMD_ID",
    "HDR_UFLAGS",
    "REQ_COUNTS",
    "REQ_CDB_OFF",
    "REQ_IOV",
    "REQ_IOV_OFFSET",
    "IOV",
    "IOV_SIZE",
    "RSP_STATUS",
    "RSP_READ_LEN",
    "RSP_SENSE",
    "SENSE_SIZE",
    "ENTRY_SIZE",
    "TMR_HEAD",
    "TMR_CMD_IDS",
    "TMR_SIZE",
    "TmrType",
    "base_command_size",
    "cdb_length",
    "VARIABLE_LENGTH_OPCODE",
]

# ---------------------------------------------------------------- struct tcmu_mailbox (sizeof 128)

#: ``TCMU_MAILBOX_VERSION``. tcmu-design.rst still says 1; the 6.1 kernel writes 2 (lio.md 3.1).
MAILBOX_VERSION = 2
#: sizeof(struct tcmu_mailbox): cmd_tail sits on its own 64-byte cache line.
MAILBOX_SIZE = 128
#: ``CMDR_OFF`` in target_core_user.c: the ring starts right after the mailbox.
CMDR_OFF = MAILBOX_SIZE


class MailboxFlag(IntFlag):
    """``TCMU_MAILBOX_FLAG_CAP_*``; the 6.1 kernel sets all four (0xf, lio.md 3.1)."""

    #: Out-of-order completions: any entry at cmd_tail may carry any command's cmd_id.
    OOOC = 1 << 0
    #: ``rsp.read_len`` is honoured when ``UFlag.READ_LEN`` is set.
    READ_LEN = 1 << 1
    #: TMR entries are queued when ``attrib/tmr_notification=1``.
    TMR = 1 << 2
    #: ``UFlag.KEEP_BUF`` and ``action/free_kept_buf`` exist (we never use them).
    KEEP_BUF = 1 << 3


MAILBOX_VERSION_FIELD = (0, "<H")
MAILBOX_FLAGS = (2, "<H")
#: ``cmdr_off`` and ``cmdr_size`` (u32 each), set once by the kernel.
MAILBOX_GEOMETRY = (4, "<II")
#: Written by the kernel after each queued entry (``UPDATE_HEAD(mb->cmd_head, ...)``).
MAILBOX_CMD_HEAD = (12, "<I")
#: Written by userspace only; the kernel reaps completions up to it (``tcmu_handle_completions``).
MAILBOX_CMD_TAIL = (64, "<I")

# ---------------------------------------------------------------- struct tcmu_cmd_entry_hdr (8)


class Op(IntEnum):
    """``enum tcmu_opcode``: the low three bits of ``len_op``."""

    PAD = 0
    CMD = 1
    #: Only queued with ``attrib/tmr_notification=1`` (``queue_tmr_ring``).
    TMR = 2


class UFlag(IntFlag):
    """``TCMU_UFLAG_*``: bits userspace sets in ``hdr.uflags``."""

    #: The kernel fails the command with CHECK CONDITION (``tcmu_handle_completion``).
    UNKNOWN_OP = 0x1
    #: ``rsp.read_len`` holds the Data-In length (shorter than the iovecs).
    READ_LEN = 0x2
    #: Keep the data buffer after completion (zero-copy extra; lio.md 3.6 says do not use).
    KEEP_BUF = 0x4


#: ``TCMU_OP_MASK``: ``len_op & ~OP_MASK`` is the entry length.
OP_MASK = 0x7
#: ``TCMU_OP_ALIGN_SIZE`` (sizeof(__u64)): every entry length is a multiple of it.
OP_ALIGN = 8

#: len_op u32, cmd_id u16, kflags u8, uflags u8.
HDR = (0, "<IHBB")
HDR_SIZE = 8
HDR_CMD_ID = (4, "<H")
HDR_UFLAGS = (7, "<B")

# ---------------------------------------------------------------- tcmu_cmd_entry.req

#: iov_cnt, iov_bidi_cnt, iov_dif_cnt (u32 each); a 4-byte hole follows (lio.md 3.2).
REQ_COUNTS = (8, "<III")
#: u64, an offset from the start of the mapping.
REQ_CDB_OFF = (24, "<Q")
#: offsetof(struct tcmu_cmd_entry, req.iov[0]); __pad1 and __pad2 (u64) sit at 32 and 40.
REQ_IOV_OFFSET = 48
#: struct iovec: iov_base (an offset from the start of the mapping), iov_len.
IOV = (0, "<QQ")
IOV_SIZE = 16
REQ_IOV = (REQ_IOV_OFFSET, "<QQ")

# ---------------------------------------------------------------- tcmu_cmd_entry.rsp (overlays req!)

RSP_STATUS = (8, "<B")
RSP_READ_LEN = (12, "<I")
#: ``TCMU_SENSE_BUFFERSIZE`` bytes at this offset.
RSP_SENSE = 16
SENSE_SIZE = 96
#: sizeof(struct tcmu_cmd_entry): header plus the larger arm of the union (rsp).
ENTRY_SIZE = RSP_SENSE + SENSE_SIZE

# ---------------------------------------------------------------- struct tcmu_tmr_entry (32 + 2n)

#: tmr_type u8, (pad 3), cmd_cnt u32.
TMR_HEAD = (8, "<B3xI")
#: cmd_ids[] (u16 each) start here.
TMR_CMD_IDS = 32
TMR_SIZE = 32


class TmrType(IntEnum):
    """``TCMU_TMR_*``: the task management function a TMR entry reports."""

    UNKNOWN = 0
    ABORT_TASK = 1
    ABORT_TASK_SET = 2
    CLEAR_ACA = 3
    CLEAR_TASK_SET = 4
    LUN_RESET = 5
    TARGET_WARM_RESET = 6
    TARGET_COLD_RESET = 7
    #: A pseudo reset because of a PERSISTENT RESERVE OUT.
    LUN_RESET_PRO = 128


def base_command_size(iov_count: int) -> int:
    """``tcmu_cmd_get_base_cmd_size``: max(offsetof(req.iov[n]), sizeof(entry)) = max(48 + 16n, 112)."""
    return max(REQ_IOV_OFFSET + IOV_SIZE * iov_count, ENTRY_SIZE)


#: ``scsi_command_size_tbl`` (include/scsi/scsi_common.h), by the opcode's group code.
_GROUP_LENGTH = (6, 10, 10, 12, 16, 12, 10, 10)
#: ``VARIABLE_LENGTH_CMD``: the length is 8 + ADDITIONAL CDB LENGTH (byte 7).
VARIABLE_LENGTH_OPCODE = 0x7F


def cdb_length(first_bytes: bytes) -> int:
    """``scsi_command_size``: how many CDB bytes the kernel copies into the entry.

    Only a variable-length CDB (opcode 7Fh) needs more than its first byte:
    its ADDITIONAL CDB LENGTH is byte 7, so ``first_bytes`` holds 8 bytes then.
    """
    opcode = first_bytes[0]
    if opcode == VARIABLE_LENGTH_OPCODE:
        return 8 + first_bytes[7]
    return _GROUP_LENGTH[opcode >> 5]
