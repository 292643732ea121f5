"""SCSI tasks over iSCSI: a command's Data-Out gathered (R2T, immediate and unsolicited data),
the command run through ``targets.scsi``, and its Data-In and status sent back with residuals.

RFC 7143 sections 4.2.5 (data transfer), 11.3-11.8 (SCSI Command and Response,
Data-In, Data-Out, R2T); a mixin of ``Connection``, whose sequence numbers and
negotiated values it uses.

Rules of this module:

1. A write gathers what its CDB asks for (``ScsiTarget.data_out_to_gather``:
   transfer length, block size, parameter list length, MAXIMUM TRANSFER
   LENGTH) up to the Expected Data Transfer Length, never the EDTL alone;
   a CDB asking for more than any command may transfer runs at once and is
   refused on its fields.
2. EDTL and CDB disagreeing is reported in the residual (SAM-5 5.4.3, RFC
   7143 11.4.5.2): overflow or underflow, at most FFFFFFFFh.
3. At most ``queue_depth`` writes wait for data; another gets TASK SET FULL
   (SAM-5 5.3.1): immediate commands are outside the CmdSN window.
4. A command whose data is in is not run here: it becomes a ``Work`` (in
   CmdSN order, so the engine owner runs commands in the order the initiator
   numbered them) and its status goes out when the edge calls
   ``completed``; StatSN is assigned then (RFC 7143 section 4.2.2.2). An
   aborted command's status is never sent (section 4.2.3.3). Small READs and
   WRITEs without FUA (SBC-4 5.11, 5.32: no forced media access) are marked
   ``quick``: the edge may run them without a thread hop when the owner idles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..scsi import Command, Result, SenseReason, Status
from ..scsi.sense import build_sense
from .framing import Frame
from .pdu import (
    FINAL,
    OVERFLOW,
    STATUS,
    UNDERFLOW,
    WRITE,
    DataIn,
    DataOut,
    Pdu,
    ReadyToTransfer,
    RejectReason,
    ScsiCommand,
    ScsiResponse,
)
from .task_management import lun_number
from .tasks import TransferError, Work, WriteTask, data_in_bursts

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..scsi import Nexus, ScsiTarget

__all__ = ["ScsiTasks"]

#: READ(10) and READ(16) of at most this many bytes are ``Work.quick`` (rule 4): a pread.
QUICK_READ = 1 << 20
#: WRITE(10) and WRITE(16) without FUA of at most this many bytes are ``Work.quick``: a pwrite to the page cache.
QUICK_WRITE = 64 << 10
_READS, _WRITES = (0x28, 0x88), (0x2A, 0x8A)


class ScsiTasks:
    """The SCSI data path of a connection."""

    if TYPE_CHECKING:
        scsi: ScsiTarget | None
        nexus: Nexus | None
        writes: dict[int, WriteTask]
        running: dict[int, Work]
        _promised: int
        queue_depth: int
        stat_sn: int
        exp_cmd_sn: int
        _send_segment: int
        _max_burst: int
        _first_burst: int
        _max_r2t: int
        _initial_r2t: bool
        _immediate_data: bool

        def _send(self, pdu: Pdu) -> None: ...
        def _sns(self, advance: bool = False) -> dict[str, int]: ...
        def _max_cmd_sn(self) -> int: ...
        def _new_ttt(self) -> int: ...
        def _reject(self, reason: int, bhs: bytes) -> None: ...
        def _submit(self, work: Work) -> None: ...

    def _command(self, pdu: ScsiCommand) -> None:
        if self.scsi is None:
            self._respond(pdu.itt, Result(Status.CHECK_CONDITION), b"", pdu.expected_length, False, 0)
            return
        cdb = pdu.cdb + pdu.ahs[4:] if pdu.ahs[2:3] == b"\x01" else pdu.cdb
        data = pdu.data
        expected = pdu.expected_length
        if data and (not self._immediate_data or len(data) > expected or not pdu.flags & WRITE):
            self._reject(RejectReason.PROTOCOL_ERROR, pdu.encode())
            return
        lun = lun_number(pdu.lun)
        writing = bool(pdu.flags & WRITE)
        if writing:
            # The buffer is sized by the CDB and the device's limits, never by the EDTL alone.
            gather = min(expected, self.scsi.data_out_to_gather(cdb, lun)[1])
            unsolicited = WriteTask.unsolicited(expected, len(data), self._initial_r2t, self._first_burst)
            if len(data) < max(gather, unsolicited):
                if len(self.writes) >= self.queue_depth and pdu.itt not in self.writes:
                    # As many writes wait for data as the queue is deep; one more finds the task set full.
                    self._respond(pdu.itt, Result(Status.TASK_SET_FULL), b"", expected, True, 0)
                    return
                task = WriteTask.start(pdu.itt, lun, cdb, expected, pdu.cmd_sn, data, gather, unsolicited)
                self.writes[pdu.itt] = task
                self._solicit(task)
                return
        # Immediate data is copied out of the receive buffer, which is reused: the command runs later.
        self._execute(pdu.itt, lun, cdb, bytes(data), expected, reading=bool(pdu.flags & 0x40), writing=writing)

    def _on_data_out(self, frame: Frame) -> None:
        pdu = DataOut.decode(frame.bhs, frame.ahs, frame.data)
        task = self.writes.get(pdu.itt)  # type: ignore[attr-defined]
        if task is None:
            self._reject(RejectReason.PROTOCOL_ERROR, bytes(frame.bhs))
            return
        try:
            finished_r2t = task.accept(pdu.ttt, pdu.data_sn, pdu.buffer_offset, frame.data)  # type: ignore[attr-defined]
        except TransferError:
            # ErrorRecoveryLevel 0 cannot recover the sequence (section 7.1.5): the task ends
            # with ABORTED COMMAND / DATA PHASE ERROR, nothing written, and the session goes on.
            del self.writes[task.itt]
            sense = build_sense(SenseReason.DATA_PHASE_ERROR, descriptor=False)
            self._respond(task.itt, Result(Status.CHECK_CONDITION, sense=sense), b"", task.expected_length, True,
                          task.r2t_sn)  # fmt: skip
            return
        if task.complete:
            del self.writes[task.itt]
            self._execute(task.itt, task.lun, task.cdb, task.data, task.expected_length, False, True, task.r2t_sn,
                          release=task.release())  # fmt: skip
        elif finished_r2t:
            self._solicit(task)

    def _solicit(self, task: WriteTask) -> None:
        r2ts = task.next_r2ts(self._max_burst, self._max_r2t, self._new_ttt)
        for ttt, r2t_sn, offset, length in r2ts:
            self._send(
                ReadyToTransfer(
                    lun=0,
                    itt=task.itt,
                    ttt=ttt,
                    stat_sn=self.stat_sn,
                    exp_cmd_sn=self.exp_cmd_sn,
                    max_cmd_sn=self._max_cmd_sn(),
                    r2t_sn=r2t_sn,
                    buffer_offset=offset,
                    desired_length=length,
                )  # fmt: skip
            )

    def _execute(
        self, itt: int, lun: int, cdb: bytes, data_out: bytes | memoryview, expected: int, reading: bool,
        writing: bool, r2t_count: int = 0, release: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """Hand the command to the engine owner (rule 4); its residual is known from the CDB now.

        ``data_out`` is the command's own (``tasks`` rule 4): never a view of the receive buffer;
        ``release`` gives a write's pooled buffer back once the command has run (``tasks`` rules 2 and 4).
        """
        scsi, nexus = self.scsi, self.nexus
        assert scsi is not None and nexus is not None
        residual = 0
        flags = 0
        if writing:
            needed = scsi.data_out_to_gather(cdb, lun)[0]
            if expected < needed:
                flags, residual = OVERFLOW, needed - expected
            elif expected > needed:
                flags, residual = UNDERFLOW, expected - needed
        command = Command(cdb=cdb, data_out=data_out, nexus=nexus, lun=lun)
        opcode = cdb[0]
        quick = (opcode in _READS and expected <= QUICK_READ) or (
            opcode in _WRITES and not cdb[1] & 0x08 and len(data_out) <= QUICK_WRITE
        )
        response = (expected, reading, writing, r2t_count, flags, residual)
        work = Work(itt, lun, lambda: scsi.execute(command), response=response, quick=quick, release=release)
        self.running[itt] = work
        self._promised += expected if reading else 0
        self._submit(work)

    def _command_done(self, work: Work, result: Result) -> None:
        """The status of a command the engine owner ran (rule 4)."""
        if self.running.get(work.itt) is work:
            del self.running[work.itt]
        expected, reading, writing, r2t_count, flags, residual = work.response
        self._promised -= expected if reading else 0
        if work.aborted:
            return
        self._respond(work.itt, result, result.data_in if reading else b"", expected, writing, r2t_count, flags,
                      residual)  # fmt: skip

    def _respond(
        self, itt: int, result: Result, data_in: bytes, expected: int, writing: bool, r2t_count: int,
        flags: int = 0, residual: int = 0,
    ) -> None:  # fmt: skip
        """Data-In (with the status in the last one when it is GOOD) and, otherwise, a SCSI Response.

        A residual past 32 bits (a CDB asking for terabytes) is reported as FFFFFFFFh: the
        Residual Count field has 32 bits (section 11.4.5), and the O bit says the rest.
        """
        if not writing:
            if len(data_in) < expected:
                flags, residual = UNDERFLOW, expected - len(data_in)
            elif len(data_in) > expected:
                flags, residual = OVERFLOW, len(data_in) - expected
        residual = min(residual, 0xFFFFFFFF)
        payload = memoryview(data_in)[:expected]
        pieces = data_in_bursts(len(payload), self._send_segment, self._max_burst)
        collapse = result.status == Status.GOOD and not result.sense and bool(pieces)
        for n, (offset, size, burst_end) in enumerate(pieces):
            last = n == len(pieces) - 1
            with_status = collapse and last
            pdu_flags = (FINAL if burst_end else 0) | ((STATUS | flags) if with_status else 0)
            self._send(
                DataIn(
                    flags=pdu_flags,
                    status=result.status if with_status else 0,
                    lun=0,
                    itt=itt,
                    data_sn=n,
                    buffer_offset=offset,
                    residual=residual if with_status else 0,
                    data=payload[offset : offset + size],
                    **self._sns(advance=with_status),
                )  # fmt: skip
            )
        if collapse:
            return
        sense = len(result.sense).to_bytes(2, "big") + result.sense if result.sense else b""
        self._send(
            ScsiResponse(
                flags=FINAL | flags,
                response=0,
                status=result.status,
                itt=itt,
                exp_data_sn=len(pieces) + r2t_count,
                residual=residual,
                data=sense,
                **self._sns(advance=True),
            )  # fmt: skip
        )
