"""One iSCSI connection, from its first Login PDU to its Logout, sans-IO (RFC 7143).

The asyncio edge feeds received bytes in (``get_buffer``/``buffer_updated``
or ``receive``) and sends what ``data_to_send()`` returns; ``closing`` says
the connection must be closed once that is sent. What must run on the
engine (SCSI commands, resets) comes out of ``work_to_run()``; the edge runs
each ``Work`` on the engine owner and calls ``completed(work, result)``
with what it returned. Nothing here touches a socket or a thread. A
session has exactly one connection (MaxConnections=1), so the
session's sequence numbers live here too.

Rules of this module:

1. Until login completes only Login Requests are accepted; anything else
   drops the connection (section 6.3).
2. Non-immediate commands are delivered in CmdSN order; a CmdSN outside the
   window [ExpCmdSN, MaxCmdSN] is discarded silently (section 4.2.2.1).
3. A malformed or out-of-place PDU gets a Reject carrying its header
   (section 11.17) and changes nothing; a PDU whose length cannot be trusted
   (header digest error, oversized segment) drops the connection.
4. SCSI never runs here: ``scsi_tasks`` (mixed in) gathers a command's
   Data-Out, hands the command out as ``Work`` in CmdSN order, and sends its
   Data-In and status when it completes, with residuals and the StatSN of
   that moment. Responses to different tasks may go in any order (section
   4.2.2.2); a TMF response follows the tasks it aborted (``task_management``
   rule 2), and a Logout response follows every command before it (section
   11.14: the connection's commands are done before it closes).
5. Flow control: input is taken one PDU at a time and no more once
   ``OUTPUT_BUDGET`` bytes wait to be sent or are promised by reads handed
   to the engine, or while the edge says the peer is not reading
   (``paused``); ``resume()`` goes on. Unread responses stop the reading of
   requests, so output never piles up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..scsi import Nexus, ScsiTarget
from .framing import DigestError, Frame, Framer, FramingError, encode_pdu
from .keys import KEYS, NegotiationError, encode_text, parse_text
from .login import LoginMachine, LoginResult, Portal
from .pdu import (
    BHS_LENGTH,
    FINAL,
    AsyncMessage,
    LoginRequest,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Opcode,
    Pdu,
    Reject,
    RejectReason,
    ScsiCommand,
    TaskManagementRequest,
    TaskManagementResponse,
    TextRequest,
    TextResponse,
)
from .scsi_tasks import ScsiTasks
from .sequence import sn_add, sn_in_window
from .task_management import Plan, plan
from .tasks import Work, WriteTask

__all__ = ["Connection", "Host", "OUTPUT_BUDGET", "Work"]

#: Bytes of queued output after which no further PDU is taken in until it is sent (rule 5).
OUTPUT_BUDGET = 4 << 20


class Host(Portal, Protocol):
    """What a connection needs of the server beyond login: targets, discovery, session bookkeeping."""

    def scsi_target(self, name: str) -> ScsiTarget | None: ...
    def send_targets(
        self, initiator: str, ip: str, scope: str, current: str | None, local_ip: str = ""
    ) -> list[tuple[str, str]]: ...
    def session_started(self, connection: Connection) -> None: ...


class Connection(ScsiTasks):
    """The target side of one connection (and its session)."""

    def __init__(self, host: Host, peer_ip: str, tsih: int, queue_depth: int = 128, local_ip: str = "") -> None:
        self.host = host
        self.peer_ip = peer_ip
        #: The address the initiator connected to: the group IP or a member port.
        self.local_ip = local_ip
        self.tsih = tsih
        self.queue_depth = queue_depth
        self.framer = Framer()
        # Until the initiator hears ours, the RFC's default holds (section 13.12), for login PDUs too.
        self.framer.max_data_segment = int(KEYS["MaxRecvDataSegmentLength"].default)
        self.login = LoginMachine(host, peer_ip, tsih, queue_depth=queue_depth, local_ip=local_ip)
        self.session: LoginResult | None = None
        self.scsi: ScsiTarget | None = None
        self.nexus: Nexus | None = None
        self.closing = False
        self.close_reason = ""
        self.stat_sn = 0
        self.exp_cmd_sn = 0
        self.writes: dict[int, WriteTask] = {}
        #: Commands handed to the engine and not completed yet, by ITT (rule 4).
        self.running: dict[int, Work] = {}
        self._work: list[Work] = []
        #: Data-In bytes the reads in ``running`` will send (rule 5).
        self._promised = 0
        #: TMFs waiting for the tasks they aborted (rule 4).
        self._tmfs: list[Plan] = []
        self._logout_waiting: LogoutRequest | None = None
        #: Set once the initiator has been asked to log out (``request_logout``).
        self.logout_requested = False
        self._held: dict[int, Pdu] = {}
        #: CmdSNs aborted before they arrived: consumed and dropped when they come.
        self._aborted: set[int] = set()
        self._out: list[bytes | memoryview] = []
        #: Bytes in ``_out`` (rule 5).
        self._queued = 0
        #: Set by the edge while the peer does not take our output (rule 5).
        self.paused = False
        self._next_ttt = 0
        self._ping_ttt: int | None = None
        self._text_reply: bytes = b""
        self._text_ttt = 0xFFFFFFFF
        # Negotiated at login (RFC 7143 defaults until then).
        self._send_segment = self._max_burst = self._first_burst = 8192
        self._max_r2t = 1
        self._initial_r2t = self._immediate_data = True

    # ------------------------------------------------------------- edge API

    def get_buffer(self, size_hint: int = -1) -> memoryview:
        return self.framer.get_buffer(size_hint)

    def buffer_updated(self, count: int) -> None:
        self.framer.buffer_updated(count)
        self._process()

    def receive(self, data: bytes) -> None:
        self.framer.feed(data)
        self._process()

    def data_to_send(self) -> list[bytes | memoryview]:
        out, self._out = self._out, []
        self._queued = 0
        return out

    def work_to_run(self) -> list[Work]:
        """Engine work handed out since the last call, in the order it must run (rule 4)."""
        work, self._work = self._work, []
        return work

    def completed(self, work: Work, result: object) -> None:
        """``work`` ran on the engine and returned ``result``: answer it, and what waited for it."""
        if work.command:
            self._command_done(work, result)  # type: ignore[arg-type]
        for waiting in [p for p in self._tmfs if work in p.waits]:
            waiting.waits.remove(work)
            if not waiting.waits:
                self._tmfs.remove(waiting)
                self._tmf_response(waiting)
        pdu = self._logout_waiting
        if pdu is not None and not self.running and not self._tmfs:
            self._logout_waiting = None
            self._logout(pdu)

    def resume(self) -> bool:
        """Take in input left waiting once the output queued so far was sent (rule 5); False if none was."""
        taken = self.framer.start
        self._process()
        return self.framer.start != taken

    def drop(self, reason: str, warn_initiator: bool = True) -> None:
        """Close from our side: announce it (Async Message, event 2) when in full feature phase."""
        if self.session is not None and warn_initiator and not self.closing:
            self._send(AsyncMessage(async_event=2, parameter2=0, parameter3=0, **self._sns()))
        self._close(reason)

    def request_logout(self, seconds: int) -> bool:
        """Ask the initiator to log out within ``seconds`` (Async Message event 1, RFC 7143 11.9.1);
        once per connection. False if there is no session to ask, or it was asked already."""
        if self.session is None or self.closing or self.logout_requested:
            return False
        self.logout_requested = True
        self._send(AsyncMessage(async_event=1, parameter3=seconds, **self._sns()))
        return True

    def ping(self) -> None:
        """A NOP-In that asks for a NOP-Out back (section 11.19), to see the initiator is alive."""
        if self.session is None or self.closing:
            return
        self._ping_ttt = self._new_ttt()
        self._send(NopIn(lun=0, itt=0xFFFFFFFF, ttt=self._ping_ttt, **self._sns()))

    # ------------------------------------------------------------ receiving

    def _process(self) -> None:
        if self._full():
            return
        try:
            for frame in self.framer.frames():
                if self.closing:
                    return
                self._frame(frame)
                if self._full():
                    return  # before the next frame is taken: it waits in the framer
        except FramingError as error:
            self._close(f"protocol error: {error}")
        except DigestError as error:
            self._reject(RejectReason.DATA_DIGEST, error.bhs)

    def _full(self) -> bool:
        return self.paused or self._queued + self._promised >= OUTPUT_BUDGET

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if self.session is None:
            if opcode != Opcode.LOGIN_REQUEST:
                self._close(f"opcode {opcode:#x} before login completed")
                return
            self._login(LoginRequest.decode(frame.bhs, frame.ahs, frame.data))  # type: ignore[arg-type]
            return
        handler = self._HANDLERS.get(opcode)
        if handler is None or (self.session.discovery and opcode in (Opcode.SCSI_COMMAND, Opcode.DATA_OUT)):
            reason = RejectReason.PROTOCOL_ERROR if handler is None else RejectReason.NOT_SUPPORTED
            self._reject(reason, bytes(frame.bhs))
            return
        handler(self, frame)

    def _login(self, request: LoginRequest) -> None:
        response = self.login.handle(request)
        self._send(response)
        if self.login.failed:
            self._close(self.login.failed)
            return
        if not self.login.done:
            return
        session = self.session = self.login.result
        self.stat_sn = self.login.stat_sn
        self.exp_cmd_sn = request.cmd_sn
        values = session.values
        self.framer.header_digest = values["HeaderDigest"] == "CRC32C"
        self.framer.data_digest = values["DataDigest"] == "CRC32C"
        self.framer.max_data_segment = int(values["MaxRecvDataSegmentLength"])
        # What the data path asks for on every command, as plain values.
        self._send_segment = int(values["InitiatorMaxRecvDataSegmentLength"])
        self._max_burst = int(values["MaxBurstLength"])
        self._first_burst = int(values["FirstBurstLength"])
        self._max_r2t = int(values["MaxOutstandingR2T"])
        self._initial_r2t = values["InitialR2T"] == "Yes"
        self._immediate_data = values["ImmediateData"] == "Yes"
        if session.target is not None:
            self.scsi = self.host.scsi_target(session.target)
            self.nexus = Nexus(
                f"{session.initiator},i,0x{session.isid.hex()}", f"{session.target},t,0x{self.host.tpgt:04x}"
            )
        self.host.session_started(self)

    def _ordered(self, pdu: ScsiCommand | NopOut | TextRequest | LogoutRequest | TaskManagementRequest) -> bool:
        """CmdSN rules for a non-immediate request: True to act on it now (section 4.2.2.1)."""
        if pdu.immediate:
            return True
        if pdu.cmd_sn == self.exp_cmd_sn:
            self.exp_cmd_sn = sn_add(self.exp_cmd_sn, 1)
            if pdu.cmd_sn in self._aborted:
                self._aborted.discard(pdu.cmd_sn)
                return False
            return True
        if sn_in_window(pdu.cmd_sn, self.exp_cmd_sn, self._max_cmd_sn()):
            self._held[pdu.cmd_sn] = pdu
        return False

    def _release_held(self) -> None:
        while (self.exp_cmd_sn in self._held or self.exp_cmd_sn in self._aborted) and not self.closing:
            pdu = self._held.pop(self.exp_cmd_sn, None)
            self._aborted.discard(self.exp_cmd_sn)
            self.exp_cmd_sn = sn_add(self.exp_cmd_sn, 1)
            if pdu is not None:
                self._dispatch_ordered(pdu)

    def _dispatch_ordered(self, pdu: Pdu) -> None:
        if isinstance(pdu, ScsiCommand):
            self._command(pdu)
        elif isinstance(pdu, NopOut):
            self._nop_reply(pdu)
        elif isinstance(pdu, TextRequest):
            self._text(pdu)
        elif isinstance(pdu, LogoutRequest):
            self._logout(pdu)
        elif isinstance(pdu, TaskManagementRequest):
            self._task_management(pdu)

    def _on_ordered(self, frame: Frame) -> None:
        pdu = frame.decode()
        data = pdu.data
        if isinstance(data, memoryview) and not isinstance(pdu, ScsiCommand):
            pdu.data = bytes(data)
        if isinstance(pdu, NopOut) and pdu.itt == 0xFFFFFFFF:
            if self._ping_ttt is not None and pdu.ttt == self._ping_ttt:
                self._ping_ttt = None
            return
        if self._ordered(pdu):  # type: ignore[arg-type]
            self._dispatch_ordered(pdu)
        elif isinstance(pdu, ScsiCommand):
            pdu.data = bytes(pdu.data)  # held: copy out of the receive buffer
        self._release_held()

    # ---------------------------------------------------- other requests

    def _nop_reply(self, pdu: NopOut) -> None:
        self._send(NopIn(lun=pdu.lun, itt=pdu.itt, ttt=0xFFFFFFFF, data=pdu.data, **self._sns(advance=True)))

    def _text(self, pdu: TextRequest) -> None:
        """Text negotiation in full feature phase: SendTargets (section 12.3), with continuation."""
        session = self.session
        assert session is not None
        if pdu.ttt != 0xFFFFFFFF and pdu.ttt == self._text_ttt:
            reply = self._text_reply
        else:
            try:
                pairs = parse_text(pdu.data)
            except NegotiationError:
                # Not key=value in UTF-8 (section 6.1): the PDU is rejected and the session goes on.
                self._reject(RejectReason.PROTOCOL_ERROR, pdu.encode())
                return
            answers: list[tuple[str, str]] = []
            for key, value in pairs:
                if key == "SendTargets":
                    if session.discovery and value != "All" and not value:
                        answers.append((key, "Reject"))
                        continue
                    for name, address in self.host.send_targets(
                        session.initiator, self.peer_ip, value, session.target, self.local_ip
                    ):
                        answers += [("TargetName", name), ("TargetAddress", address)]
                else:
                    answers.append((key, "NotUnderstood"))
            reply = encode_text(answers)
        limit = int(session.values["InitiatorMaxRecvDataSegmentLength"])
        chunk, self._text_reply = reply[:limit], reply[limit:]
        more = bool(self._text_reply)
        self._text_ttt = self._new_ttt() if more else 0xFFFFFFFF
        self._send(
            TextResponse(
                flags=0x40 if more else FINAL,
                lun=pdu.lun,
                itt=pdu.itt,
                ttt=self._text_ttt,
                data=chunk,
                **self._sns(advance=True),
            )  # fmt: skip
        )

    def _task_management(self, request: TaskManagementRequest) -> None:
        """Abort now; answer once the aborted tasks and the reset have come back (rule 4)."""
        tmf = plan(self, request)
        if tmf.action is not None:
            reset = Work(request.itt, -1, tmf.action, command=False)
            tmf.waits.append(reset)
            self._submit(reset)
        if tmf.waits:
            self._tmfs.append(tmf)
        else:
            self._tmf_response(tmf)

    def _tmf_response(self, tmf: Plan) -> None:
        if self.closing:
            return
        self._send(TaskManagementResponse(response=tmf.response, itt=tmf.request.itt, **self._sns(advance=True)))
        if tmf.closes:
            self.drop("target cold reset", warn_initiator=False)

    def _logout(self, pdu: LogoutRequest) -> None:
        if self.running or self._tmfs:
            self._logout_waiting = pdu  # answered when they complete (rule 4)
            return
        # Reason 2 (remove the connection for recovery) needs ERL 2: response 2 (section 11.15.1).
        response = 2 if pdu.reason == 2 else 0
        self._send(LogoutResponse(response=response, itt=pdu.itt, **self._sns(advance=True)))
        if response == 0:
            self._close("logout")

    # -------------------------------------------------------------- helpers

    def _max_cmd_sn(self) -> int:
        return sn_add(self.exp_cmd_sn, self.queue_depth - 1)

    def _sns(self, advance: bool = False) -> dict[str, int]:
        values = {"stat_sn": self.stat_sn, "exp_cmd_sn": self.exp_cmd_sn, "max_cmd_sn": self._max_cmd_sn()}
        if advance:
            self.stat_sn = sn_add(self.stat_sn, 1)
        return values

    def _new_ttt(self) -> int:
        self._next_ttt = (self._next_ttt + 1) & 0x7FFFFFFF
        return self._next_ttt

    def _submit(self, work: Work) -> None:
        self._work.append(work)

    def _send(self, pdu: Pdu) -> None:
        self._out.extend(encode_pdu(pdu, self.framer.header_digest, self.framer.data_digest))
        self._queued += BHS_LENGTH + len(pdu.data)

    def _reject(self, reason: int, bhs: bytes) -> None:
        """Reject a PDU, returning its header; a rejected command's CmdSN is used up (section 6.3)."""
        if self.session is None:
            self._close("malformed PDU during login")
            return
        opcode = bhs[0] & 0x3F
        immediate = bool(bhs[0] & 0x40)
        if opcode in (Opcode.SCSI_COMMAND, Opcode.TEXT_REQUEST, Opcode.NOP_OUT) and not immediate:
            cmd_sn = int.from_bytes(bhs[24:28], "big")
            if cmd_sn == self.exp_cmd_sn:
                self.exp_cmd_sn = sn_add(cmd_sn, 1)
        self._send(Reject(reason=reason, data=bytes(bhs[:48]), **self._sns(advance=True)))

    def _close(self, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.close_reason = reason
            self.writes.clear()
            self._held.clear()
            self._tmfs.clear()
            for work in self.running.values():
                work.aborted = True  # SAM-5 6.3.4: the nexus is gone, its tasks with it

    def abort_tasks(self, match: Callable[[WriteTask | Work], bool]) -> tuple[bool, list[Work]]:
        """Drop writes still waiting for data and mark matching commands handed to the engine aborted
        (ABORT TASK and friends): (whether any task matched, the commands to wait for)."""
        doomed = [itt for itt, task in self.writes.items() if match(task)]
        for itt in doomed:
            del self.writes[itt]
        waits = [work for work in self.running.values() if match(work)]
        for work in waits:
            work.aborted = True
        return bool(doomed or waits), waits

    def forget_command(self, cmd_sn: int) -> bool:
        """Treat a command not yet received as received and aborted; False if ``cmd_sn`` is outside the window."""
        if not sn_in_window(cmd_sn, self.exp_cmd_sn, self._max_cmd_sn()):
            return False
        self._aborted.add(cmd_sn)
        self._held.pop(cmd_sn, None)
        return True

    _HANDLERS: dict[int, Callable[[Connection, Frame], None]] = {
        Opcode.NOP_OUT: _on_ordered,
        Opcode.SCSI_COMMAND: _on_ordered,
        Opcode.TASK_MANAGEMENT_REQUEST: _on_ordered,
        Opcode.TEXT_REQUEST: _on_ordered,
        Opcode.LOGOUT_REQUEST: _on_ordered,
        Opcode.DATA_OUT: ScsiTasks._on_data_out,
    }
