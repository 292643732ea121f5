"""The TCMU command ring, consumed sans-IO over any writable buffer.

In production the buffer is the ``mmap`` of ``/dev/uioN`` (mailbox, command
ring, data area; lio.md 3.1); in the tests it is an anonymous mmap that a
fake kernel fills. ``Ring(buffer)`` checks the mailbox, ``take()`` returns the
commands queued since the last call, and ``complete(command, ...)`` (or
``command.complete(...)``) hands one back, in any order. This module never
reads or writes a file descriptor: after completions ``notify_due`` says the
kernel must be told (the I/O shell writes 4 bytes to the uio fd, which runs
``tcmu_irqcontrol`` -> ``tcmu_handle_completions``) and ``notified()`` clears it.

Rules of this module (Linux 6.1 ``drivers/target/target_core_user.c``,
``include/uapi/linux/target_core_user.h``; lio.md 3.2, 3.3, 3.5):

1. The mailbox must say version 2 with out-of-order completion
   (``MailboxFlag.OOOC``) and a ring that lies inside the buffer; anything
   else is a ``MailboxError`` at once, before any entry is read.
2. ``take()`` walks from a private *consume* pointer (it starts at
   ``mailbox.cmd_tail``) to ``mailbox.cmd_head``. PAD and TMR entries are
   skipped; an entry with any other opcode gets ``UFlag.UNKNOWN_OP``
   and is handed back as it is, so the kernel fails that command itself.
3. A CMD entry's CDB and iovec list are copied out of the entry when it is
   taken: the response overlays the request (``rsp`` and ``req`` are one
   union), and with out-of-order completion another command's response may
   land in this entry first. The data stays in the data area, which belongs
   to the command until it completes.
4. Nothing read from the ring is trusted. Every length, iovec and
   ``cdb_off`` is checked against the ring, the entry and the data area
   before it is used; one that falls outside is ``CorruptEntry``, fatal for
   the device (the kernel never queues one, so the mapping cannot be
   trusted any more): every later call raises it again, and the I/O shell
   reopens the device (lio.md rule 3: block_dev, reset_ring).
5. Completion follows libtcmu's out-of-order scheme (lio.md 3.5): the
   response goes into the oldest CMD entry at ``mailbox.cmd_tail`` (PAD, TMR
   and UNKNOWN_OP entries before it are passed over), whose ``cmd_id`` is set
   to the completed command's; ``cmd_tail`` then advances past that entry.
   The kernel reaps entries in ring order and finds each command by
   ``cmd_id`` (``tcmu_handle_completions``), so every command is reported
   exactly once. Where each entry sits is remembered from ``take()``, never
   read back from the ring.
6. Data-In is scattered into the command's Data-In iovecs and cut to them;
   when it is shorter, ``rsp.read_len`` is set with ``UFlag.READ_LEN`` so the
   kernel reports the residual. (The kernel ignores a ``read_len`` of 0,
   ``tcmu_handle_completion``: a read that returns nothing cannot say so.)
   Sense data is at most 96 bytes (``TCMU_SENSE_BUFFERSIZE``) and is
   zero-padded to that size, over whatever the request left there.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING, NamedTuple

from . import abi
from .abi import MailboxFlag, Op, UFlag

if TYPE_CHECKING:
    import mmap

__all__ = ["Ring", "RingCommand", "RingError", "MailboxError", "CorruptEntry"]


class RingError(Exception):
    """This mapping cannot be served any more; close it and reopen the device."""


class MailboxError(RingError):
    """The mailbox is not one this consumer understands (rule 1)."""


class CorruptEntry(RingError):
    """An entry the kernel would never queue: out of bounds or malformed (rule 4).

    ``offset`` is the entry's offset in the command ring (or of ``cmd_head``).
    """

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"command ring entry at {offset}: {problem}")
        self.offset = offset
        self.problem = problem


Iovecs = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class RingCommand:
    """One CMD entry, copied out of the ring when it was taken (rule 3).

    ``iovecs`` are the entry's first ``iov_cnt`` iovecs, as (offset in the
    mapping, length): the Data-Out of a write or BIDI command, or the buffer a
    read's Data-In goes to. ``bidi_iovecs`` are the ``iov_bidi_cnt`` after
    them, the Data-In of a BIDI command (``queue_cmd_ring``).
    """

    cmd_id: int
    cdb: bytes
    iovecs: Iovecs
    bidi_iovecs: Iovecs = ()
    _ring: Ring | None = field(default=None, repr=False, compare=False)
    _serial: int = field(default=-1, repr=False, compare=False)

    @property
    def bidi(self) -> bool:
        return bool(self.bidi_iovecs)

    @property
    def data_in_iovecs(self) -> Iovecs:
        return self.bidi_iovecs if self.bidi else self.iovecs

    @property
    def data_out_length(self) -> int:
        """Bytes in ``iovecs``: the initiator's expected transfer length (Data-Out for a BIDI command)."""
        return sum(length for _, length in self.iovecs)

    @property
    def data_in_length(self) -> int:
        """Bytes of Data-In the kernel can take back."""
        return sum(length for _, length in self.data_in_iovecs)

    def data_out(self, limit: int | None = None) -> bytes:
        """The bytes of ``iovecs``, gathered in order (at most ``limit`` of them)."""
        assert self._ring is not None, "a command made outside a Ring has no data"
        return self._ring._gather(self, self.iovecs, self.data_out_length if limit is None else limit)

    def complete(self, status: int, data_in: bytes | bytearray | memoryview = b"", sense: bytes = b"") -> None:
        """``Ring.complete`` for this command."""
        assert self._ring is not None, "a command made outside a Ring cannot complete"
        self._ring.complete(self, status, data_in, sense)


class _Entry(NamedTuple):
    """An entry taken and not yet passed by ``cmd_tail``; ``serial`` is None unless it is a CMD."""

    at: int
    length: int
    serial: int | None


_unpack_from, _pack_into = struct.unpack_from, struct.pack_into


class Ring:
    """A sans-IO consumer of one TCMU device's command ring.

    Not thread-safe: one loop calls ``take`` and ``complete`` (the commands
    themselves may run elsewhere and come back in any order). A new ``Ring``
    starts at ``mailbox.cmd_tail``, so it is made after every (re)open of the
    device, once ``reset_ring`` has emptied the ring (lio.md rule 3).

    Args:
        buffer: the whole mapping, writable (an ``mmap``, a ``bytearray`` or a
            ``memoryview``); it is used in place and never copied.

    Raises:
        MailboxError: rule 1.
    """

    def __init__(self, buffer: mmap.mmap | bytearray | memoryview) -> None:
        view = memoryview(buffer)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        try:
            tail = self._check_mailbox(view)
        except BaseException:
            view.release()  # an mmap cannot close while a view of it exists
            raise
        self._view = view
        #: The data area: everything after the ring (``udev->data_off``).
        self.data_off = self.cmdr_off + self.cmdr_size
        self.data_size = len(view) - self.data_off
        self._tail = self._consume = tail
        self._taken: deque[_Entry] = deque()
        self._pending: set[int] = set()
        self._serials = count()
        self._failure: RingError | None = None
        self._notify = False

    def _check_mailbox(self, view: memoryview) -> int:
        """Rule 1; sets ``flags``, ``cmdr_off`` and ``cmdr_size`` and returns ``cmd_tail``."""
        if view.readonly:
            raise MailboxError("the mapping must be writable (mmap PROT_READ|PROT_WRITE, MAP_SHARED)")
        if len(view) < abi.MAILBOX_SIZE:
            raise MailboxError(f"a mapping of {len(view)} bytes cannot hold the {abi.MAILBOX_SIZE}-byte mailbox")
        (version,) = _unpack_from(abi.MAILBOX_VERSION_FIELD[1], view, abi.MAILBOX_VERSION_FIELD[0])
        if version != abi.MAILBOX_VERSION:
            raise MailboxError(f"mailbox version {version}; only version {abi.MAILBOX_VERSION} is understood")
        (flags,) = _unpack_from(abi.MAILBOX_FLAGS[1], view, abi.MAILBOX_FLAGS[0])
        self.flags = MailboxFlag(flags)
        if not self.flags & MailboxFlag.OOOC:
            raise MailboxError("the kernel does not offer out-of-order completion (TCMU_MAILBOX_FLAG_CAP_OOOC)")
        cmdr_off, cmdr_size = _unpack_from(abi.MAILBOX_GEOMETRY[1], view, abi.MAILBOX_GEOMETRY[0])
        if cmdr_off != abi.CMDR_OFF or cmdr_size % abi.OP_ALIGN or cmdr_size < 2 * abi.ENTRY_SIZE:
            raise MailboxError(f"unexpected ring geometry cmdr_off={cmdr_off} cmdr_size={cmdr_size}")
        if cmdr_off + cmdr_size > len(view):
            raise MailboxError(f"a ring of {cmdr_size} bytes at {cmdr_off} passes the {len(view)}-byte mapping")
        (tail,) = _unpack_from(abi.MAILBOX_CMD_TAIL[1], view, abi.MAILBOX_CMD_TAIL[0])
        if tail >= cmdr_size or tail % abi.OP_ALIGN:
            raise MailboxError(f"cmd_tail {tail} is not an entry boundary of a {cmdr_size}-byte ring")
        self.cmdr_off, self.cmdr_size = cmdr_off, cmdr_size
        return tail

    # ------------------------------------------------------------ public API

    @property
    def in_flight(self) -> int:
        """Commands taken and not yet completed."""
        return len(self._pending)

    @property
    def notify_due(self) -> bool:
        """``cmd_tail`` moved since the last ``notified()``: write to the uio fd."""
        return self._notify

    def notified(self) -> None:
        self._notify = False

    def take(self) -> list[RingCommand]:
        """The commands the kernel queued since the last call, in ring order (rules 2-4).

        Raises:
            CorruptEntry: rule 4; the device is lost.
        """
        self._usable()
        size = self.cmdr_size
        (head,) = _unpack_from(abi.MAILBOX_CMD_HEAD[1], self._view, abi.MAILBOX_CMD_HEAD[0])
        if head >= size or head % abi.OP_ALIGN:
            self._fail(CorruptEntry(head, f"cmd_head {head} is not an entry boundary of a {size}-byte ring"))
        taken: list[RingCommand] = []
        while self._consume != head:
            at = self._consume
            len_op, cmd_id, _, uflags = _unpack_from(abi.HDR[1], self._view, self.cmdr_off + at)
            op, length = len_op & abi.OP_MASK, len_op & ~abi.OP_MASK
            # Entries are never split at the end of the ring (``ring_insert_padding``).
            if length == 0 or at + length > size or length > (head - at) % size:
                self._fail(CorruptEntry(at, f"length {length} does not fit between it and cmd_head {head}"))
            serial = None
            if op == Op.CMD:
                command = self._parse(at, length, cmd_id)
                taken.append(command)
                serial = command._serial
            elif op not in (Op.PAD, Op.TMR):
                _pack_into(abi.HDR_UFLAGS[1], self._view, self.cmdr_off + at + abi.HDR_UFLAGS[0],
                           uflags | UFlag.UNKNOWN_OP)  # fmt: skip
            self._taken.append(_Entry(at, length, serial))
            self._consume = (at + length) % size
        for command in taken:
            self._pending.add(command._serial)
        self._pass_finished()
        return taken

    def complete(
        self, command: RingCommand, status: int, data_in: bytes | bytearray | memoryview = b"", sense: bytes = b""
    ) -> None:
        """Hand one taken command back to the kernel, in any order (rules 5 and 6).

        Args:
            command: from this ring's ``take()``, not completed yet.
            status: the SAM status byte (GOOD 00h, CHECK CONDITION 02h, ...).
            data_in: Data-In; cut to the command's Data-In iovecs.
            sense: sense data (with CHECK CONDITION), at most 96 bytes.

        Raises:
            ValueError: a command that is not in flight here, a status outside
                0..255, or sense data longer than 96 bytes.
            RingError: the device was lost earlier (rule 4).
        """
        self._usable()
        if command._ring is not self or command._serial not in self._pending:
            raise ValueError(f"command {command.cmd_id} is not in flight on this ring")
        if not 0 <= status <= 0xFF:
            raise ValueError(f"status {status} is not a SAM status byte")
        if len(sense) > abi.SENSE_SIZE:
            raise ValueError(f"{len(sense)} bytes of sense data; the entry holds {abi.SENSE_SIZE}")
        data = memoryview(data_in)
        if data.ndim != 1 or data.format != "B":
            data = data.cast("B")
        capacity = command.data_in_length
        written = self._scatter(command.data_in_iovecs, data[:capacity])
        slot = self._taken.popleft()
        assert slot.serial is not None, "a CMD entry is always at the tail while a command is in flight"
        entry = self.cmdr_off + slot.at
        view = self._view
        short = 0 < written < capacity
        _pack_into(abi.HDR_CMD_ID[1], view, entry + abi.HDR_CMD_ID[0], command.cmd_id)
        _pack_into(abi.HDR_UFLAGS[1], view, entry + abi.HDR_UFLAGS[0], UFlag.READ_LEN if short else 0)
        _pack_into(abi.RSP_STATUS[1], view, entry + abi.RSP_STATUS[0], status)
        _pack_into(abi.RSP_READ_LEN[1], view, entry + abi.RSP_READ_LEN[0], written if short else 0)
        view[entry + abi.RSP_SENSE : entry + abi.RSP_SENSE + abi.SENSE_SIZE] = bytes(sense).ljust(abi.SENSE_SIZE, b"\0")
        self._pending.discard(command._serial)
        self._tail = (slot.at + slot.length) % self.cmdr_size
        self._pass_finished(moved=True)

    def release(self) -> None:
        """Let go of the buffer (an ``mmap`` cannot close while a view of it exists)."""
        if self._failure is None:
            self._failure = RingError("the ring was released")
        self._view.release()

    # ------------------------------------------------------------ internals

    def _usable(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, error: RingError) -> None:
        self._failure = error
        raise error

    def _parse(self, at: int, length: int, cmd_id: int) -> RingCommand:
        """Copy a CMD entry's CDB and iovecs out, checking each against the mapping (rules 3, 4)."""
        view, entry = self._view, self.cmdr_off + at
        if length < abi.ENTRY_SIZE:
            self._fail(CorruptEntry(at, f"a CMD entry of {length} bytes cannot hold the response"))
        iov_cnt, bidi_cnt, _dif_cnt = _unpack_from(abi.REQ_COUNTS[1], view, entry + abi.REQ_COUNTS[0])
        iov_end = abi.REQ_IOV_OFFSET + abi.IOV_SIZE * (iov_cnt + bidi_cnt)
        if iov_end > length:
            self._fail(CorruptEntry(at, f"{iov_cnt}+{bidi_cnt} iovecs do not fit in {length} bytes"))
        (cdb_off,) = _unpack_from(abi.REQ_CDB_OFF[1], view, entry + abi.REQ_CDB_OFF[0])
        # The kernel puts the CDB right after the iovecs, inside the entry (``queue_cmd_ring``).
        start = cdb_off - entry
        if start < iov_end or start >= length:
            self._fail(CorruptEntry(at, f"cdb_off {cdb_off} is outside the entry's CDB space"))
        head = 8 if view[cdb_off] == abi.VARIABLE_LENGTH_OPCODE else 1
        cdb_len = abi.cdb_length(view[cdb_off : cdb_off + head]) if start + head <= length else head
        if start + cdb_len > length:
            self._fail(CorruptEntry(at, f"a {cdb_len}-byte CDB at {cdb_off} passes the end of the entry"))
        iovecs: list[tuple[int, int]] = []
        total = 0
        for n in range(iov_cnt + bidi_cnt):
            base, size = _unpack_from(abi.IOV[1], view, entry + abi.REQ_IOV_OFFSET + abi.IOV_SIZE * n)
            if base < self.data_off or base + size > len(view):
                self._fail(CorruptEntry(at, f"iovec {n} ({base}, {size}) is outside the data area"))
            total += size
            iovecs.append((base, size))
        if total > self.data_size:
            self._fail(CorruptEntry(at, f"{total} bytes of iovecs exceed the {self.data_size}-byte data area"))
        return RingCommand(
            cmd_id,
            bytes(view[cdb_off : cdb_off + cdb_len]),
            tuple(iovecs[:iov_cnt]),
            tuple(iovecs[iov_cnt:]),
            _ring=self,
            _serial=next(self._serials),
        )

    def _pass_finished(self, moved: bool = False) -> None:
        """Advance ``cmd_tail`` over the PAD, TMR and UNKNOWN_OP entries at its head, then publish it."""
        while self._taken and self._taken[0].serial is None:
            entry = self._taken.popleft()
            self._tail = (entry.at + entry.length) % self.cmdr_size
            moved = True
        if moved:
            _pack_into(abi.MAILBOX_CMD_TAIL[1], self._view, abi.MAILBOX_CMD_TAIL[0], self._tail)
            self._notify = True

    def _gather(self, command: RingCommand, iovecs: Iovecs, limit: int) -> bytes:
        self._usable()
        if command._serial not in self._pending:
            raise ValueError(f"command {command.cmd_id} is not in flight: its data area is gone")
        parts = []
        for base, length in iovecs:
            if limit <= 0:
                break
            size = min(length, limit)
            parts.append(self._view[base : base + size])
            limit -= size
        return b"".join(parts)

    def _scatter(self, iovecs: Iovecs, data: memoryview) -> int:
        done = 0
        for base, length in iovecs:
            size = min(length, len(data) - done)
            if size <= 0:
                break
            self._view[base : base + size] = data[done : done + size]
            done += size
        return done
