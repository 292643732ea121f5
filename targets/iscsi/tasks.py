"""One SCSI task's data transfer: gathering Data-Out, soliciting with R2T, splitting Data-In.

RFC 7143 sections 4.2.5 (R2T, immediate and unsolicited data), 11.7 and 11.8
(Data-In/Data-Out) and 13.13-13.15 (burst lengths). The write buffer is
allocated once at the command's Expected Data Transfer Length and every
Data-Out payload is copied straight into place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["WriteTask", "TransferError", "data_in_bursts"]


class TransferError(Exception):
    """A Data-Out that breaks the rules (answered with a Reject, reason protocol error)."""


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
    buffer: bytearray
    received: int = 0
    #: Where the next R2T will start asking from.
    next_offset: int = 0
    #: Where solicited data starts: unsolicited data may come below it.
    unsolicited_end: int = 0
    r2t_sn: int = 0
    outstanding: dict[int, R2tRange] = field(default_factory=dict)
    #: DataSN expected next in the unsolicited Data-Out sequence.
    unsolicited_data_sn: int = 0

    @classmethod
    def start(
        cls, itt: int, lun: int, cdb: bytes, expected_length: int, cmd_sn: int, immediate: memoryview | bytes,
        initial_r2t: bool, first_burst: int,
    ) -> WriteTask:  # fmt: skip
        """A write whose immediate data (if any) is already in; the rest comes by R2T or unsolicited."""
        task = cls(itt, lun, cdb, expected_length, cmd_sn, bytearray(expected_length))
        task.buffer[: len(immediate)] = immediate
        task.received = len(immediate)
        unsolicited = len(immediate) if initial_r2t else max(len(immediate), min(first_burst, expected_length))
        task.unsolicited_end = task.next_offset = unsolicited
        return task

    @property
    def complete(self) -> bool:
        return self.received >= self.expected_length

    def next_r2ts(
        self, max_burst: int, max_outstanding: int, new_ttt: Callable[[], int]
    ) -> list[tuple[int, int, int, int]]:
        """(ttt, r2t_sn, offset, length) of R2Ts to send now, up to MaxOutstandingR2T in flight."""
        r2ts = []
        while len(self.outstanding) < max_outstanding and self.next_offset < self.expected_length:
            length = min(max_burst, self.expected_length - self.next_offset)
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
        self.buffer[offset:end] = data
        self.received += len(data)
        return done


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
