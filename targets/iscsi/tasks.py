"""One SCSI task's data transfer: gathering Data-Out, soliciting with R2T, splitting Data-In;
and ``Work``, what a connection hands its edge to run on the engine owner.

RFC 7143 sections 4.2.5 (R2T, immediate and unsolicited data), 11.7 and 11.8
(Data-In/Data-Out) and 13.13-13.15 (burst lengths).

Rules of this module:

1. A write keeps at most ``gather`` bytes: what its CDB asks for, bounded by
   the device's MAXIMUM TRANSFER LENGTH and the Expected Data Transfer Length
   (SAM-5 5.4.3: the target transfers what the command needs, the residual
   reports the rest). Only that much is solicited with R2T.
2. A command that claims a large transfer and sends nothing holds nothing:
   the buffer is taken when the first byte arrives. Up to
   ``gather_pool.SMALLEST`` bytes it is a bytearray that grows with the data
   (DataSequenceInOrder and DataPDUInOrder are Yes); above, a memory map of
   the whole transfer from ``gather_pool`` (fresh, its pages come as the data
   lands; recycled, they are there already), which never moves while it
   fills. (A bytearray grown to 32 MiB is reallocated on the way, and one
   such copy held the loop for 20 ms; growing one to 1 MiB cost 0.77 ms of
   copies and page faults, a recycled map 0.08 ms.) Data-Out that leaves a
   gap is answered with zeros there, never with a recycled buffer's old
   bytes.
3. Unsolicited data the initiator must send anyway (FirstBurstLength, section
   13.14) is awaited and counted, and what lies past ``gather`` is dropped.
4. A ``Work`` owns everything its call needs (Data-Out copied out of the
   receive buffer), since it runs later on another thread; one whose
   Data-Out is a pooled map (rule 2) lets go of its call on that thread as
   soon as it has run and gives the map back to the pool there (``release``).
   (Letting go of every call there cost each 1 MiB read about 80 more page
   faults and a fifth more CPU, measured.) An aborted one that has not
   started yet does nothing (SAM-5 7.2), and still gives its map back.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from dataclasses import dataclass, field

from . import gather_pool

__all__ = ["WriteTask", "TransferError", "Work", "data_in_bursts"]


class TransferError(Exception):
    """A Data-Out that breaks the rules (answered with a Reject, reason protocol error)."""


@dataclass(eq=False)
class Work:
    """A call for the engine owner (a SCSI command, a reset): ``run()`` there, then
    ``Connection.completed(work, result)`` back on the connection's side (rule 4)."""

    itt: int
    lun: int
    #: None once one with a ``release`` has run (rule 4).
    call: Callable[[], object] | None
    #: A SCSI command (its result is answered with status); False for a task management action.
    command: bool = True
    #: (expected length, reading, writing, R2T count, residual flags, residual) of a command's response.
    response: tuple[int, bool, bool, int, int, int] = (0, False, False, 0, 0, 0)
    #: Set when a task management function or the connection's end aborts it (rule 4).
    aborted: bool = False
    #: Costs less than a thread hop (a small READ, or WRITE without FUA): may run inline (engine_owner rule 6).
    quick: bool = False
    #: Gives its Data-Out's pooled map back, once the call that saw it is gone (rules 2 and 4).
    release: Callable[[], None] | None = None

    def run(self) -> object:
        call, release = self.call, self.release
        assert call is not None, "a Work with a release runs once"
        if release is None:
            return None if self.aborted else call()
        self.call = self.release = None
        try:
            return None if self.aborted else call()
        finally:
            del call
            release()


@dataclass
class R2tRange:
    offset: int
    length: int
    received: int = 0
    #: DataSN expected next: each R2T's Data-Out sequence counts from 0 (section 11.7.4).
    data_sn: int = 0


@dataclass
class WriteTask:
    """A write waiting for its data."""

    itt: int
    lun: int
    cdb: bytes
    expected_length: int
    cmd_sn: int
    #: Bytes kept for the command (rule 1); the buffer never grows past it.
    gather: int
    #: Where the kept bytes go (rule 2): a bytearray that grows, or a pooled map; None until data comes.
    buffer: bytearray | mmap.mmap | None
    #: Bytes of ``buffer`` the data reached: the Data-Out the command gets.
    filled: int = 0
    received: int = 0
    #: Where the next R2T will start asking from.
    next_offset: int = 0
    #: Where solicited data starts: unsolicited data may come below it.
    unsolicited_end: int = 0
    r2t_sn: int = 0
    outstanding: dict[int, R2tRange] = field(default_factory=dict)
    #: DataSN expected next in the unsolicited Data-Out sequence.
    unsolicited_data_sn: int = 0

    @staticmethod
    def unsolicited(expected_length: int, immediate: int, initial_r2t: bool, first_burst: int) -> int:
        """Bytes the initiator sends unasked: immediate data, and with InitialR2T=No the
        first burst up to FirstBurstLength or the EDTL (sections 4.2.5.2, 13.10)."""
        return immediate if initial_r2t else max(immediate, min(first_burst, expected_length))

    @classmethod
    def start(
        cls, itt: int, lun: int, cdb: bytes, expected_length: int, cmd_sn: int, immediate: memoryview | bytes,
        gather: int, unsolicited: int,
    ) -> WriteTask:  # fmt: skip
        """A write whose immediate data (if any) is already in; the rest comes by R2T or unsolicited."""
        task = cls(itt, lun, cdb, expected_length, cmd_sn, gather, None)
        task._place(0, memoryview(immediate))
        task.received = len(immediate)
        task.unsolicited_end = task.next_offset = unsolicited
        return task

    @property
    def data(self) -> memoryview:
        """The Data-Out gathered, where it lies (no copy)."""
        return memoryview(b"" if self.buffer is None else self.buffer)[: self.filled]

    def release(self) -> Callable[[], None] | None:
        """What gives a pooled buffer back once nothing sees it any more (rule 4); None for a bytearray."""
        buffer = self.buffer
        if not isinstance(buffer, mmap.mmap):
            return None
        self.buffer = None
        return lambda: gather_pool.POOL.release(buffer)

    @property
    def awaited(self) -> int:
        """Bytes to receive before the command runs: what is kept, or all of the unsolicited data."""
        return max(self.gather, self.unsolicited_end)

    @property
    def complete(self) -> bool:
        return self.received >= self.awaited

    def next_r2ts(
        self, max_burst: int, max_outstanding: int, new_ttt: Callable[[], int]
    ) -> list[tuple[int, int, int, int]]:
        """(ttt, r2t_sn, offset, length) of R2Ts to send now, up to MaxOutstandingR2T in flight."""
        r2ts = []
        while len(self.outstanding) < max_outstanding and self.next_offset < self.gather:
            length = min(max_burst, self.gather - self.next_offset)
            ttt = new_ttt()
            self.outstanding[ttt] = R2tRange(self.next_offset, length)
            r2ts.append((ttt, self.r2t_sn, self.next_offset, length))
            self.r2t_sn += 1
            self.next_offset += length
        return r2ts

    def accept(self, ttt: int, data_sn: int, offset: int, data: memoryview) -> bool:
        """Place one Data-Out payload; True when it finished an R2T's range.

        Raises:
            TransferError: unknown TTT, a DataSN out of sequence, or data outside the
                command or the R2T's range.
        """
        end = offset + len(data)
        if end > self.expected_length:
            raise TransferError(f"Data-Out past the expected data transfer length ({end} > {self.expected_length})")
        if ttt == 0xFFFFFFFF:
            if end > self.unsolicited_end:
                raise TransferError("unsolicited Data-Out beyond FirstBurstLength")
            if data_sn != self.unsolicited_data_sn:
                raise TransferError(f"DataSN {data_sn}, expected {self.unsolicited_data_sn}")
            self.unsolicited_data_sn += 1
            done = False
        else:
            solicited = self.outstanding.get(ttt)
            if solicited is None:
                raise TransferError(f"Data-Out with unknown target transfer tag {ttt:#x}")
            if offset < solicited.offset or end > solicited.offset + solicited.length:
                raise TransferError("Data-Out outside the range its R2T asked for")
            if data_sn != solicited.data_sn:
                raise TransferError(f"DataSN {data_sn}, expected {solicited.data_sn}")
            solicited.data_sn += 1
            solicited.received += len(data)
            done = solicited.received >= solicited.length
            if done:
                del self.outstanding[ttt]
        self._place(offset, data)
        self.received += len(data)
        return done

    def _place(self, offset: int, data: memoryview) -> None:
        """Copy what falls below ``gather`` into the buffer, taken with the first byte (rules 1 and 2)."""
        stop = min(offset + len(data), self.gather)
        if stop <= offset:
            return
        buffer = self.buffer
        if buffer is None:
            small = self.gather <= gather_pool.SMALLEST
            buffer = self.buffer = bytearray() if small else gather_pool.POOL.acquire(self.gather)
        if offset > self.filled:  # a gap: zeros, not a recycled buffer's old bytes (a bytearray grows by it)
            buffer[self.filled : offset] = bytes(offset - self.filled)
        buffer[offset:stop] = data[: stop - offset]
        self.filled = max(self.filled, stop)


def data_in_bursts(length: int, max_segment: int, max_burst: int) -> list[tuple[int, int, bool]]:
    """(offset, size, ends a burst) of the Data-In PDUs for ``length`` bytes.

    Each PDU carries at most the initiator's MaxRecvDataSegmentLength; the F
    bit marks the last PDU of each MaxBurstLength sequence (section 11.7.1).
    """
    pieces = []
    offset = 0
    while offset < length:
        burst_end = min(length, (offset // max_burst + 1) * max_burst)
        size = min(max_segment, burst_end - offset)
        pieces.append((offset, size, offset + size == burst_end))
        offset += size
    return pieces
