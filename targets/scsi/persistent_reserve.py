"""PERSISTENT RESERVE IN and OUT (SPC-5 6.16, 6.17, 5.14).

Each service action is one handler; the opcode table routes to it by the
SERVICE ACTION field. Unit attentions go to the I_T nexuses a change takes a
registration or a reservation away from, as SPC-5 5.14.11 lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cdb import be
from .opcodes import PrType
from .reservations import RegistrationId, Reservations, transport_id
from .sense import CheckCondition, ReservationConflict, SenseReason, invalid_cdb, invalid_param
from .spec import Request

__all__ = [
    "read_keys",
    "read_reservation",
    "report_capabilities",
    "read_full_status",
    "register",
    "register_and_ignore",
    "reserve",
    "release",
    "clear",
    "preempt",
    "preempt_and_abort",
]

#: REPORT CAPABILITIES: the PERSISTENT RESERVATION TYPE MASK bit of each type (SPC-5 table 170).
_TYPE_MASK = {
    PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: 0x8000,
    PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 0x4000,
    PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 0x2000,
    PrType.EXCLUSIVE_ACCESS: 0x0800,
    PrType.WRITE_EXCLUSIVE: 0x0200,
    PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 0x0001,
}


def _state(req: Request) -> Reservations:
    return req.unit.reservations


def _header(state: Reservations, body: bytes) -> bytes:
    return state.generation.to_bytes(4, "big") + len(body).to_bytes(4, "big") + body


# --------------------------------------------------------------------- PR IN


def read_keys(req: Request) -> bytes:
    state = _state(req)
    return _header(state, b"".join(key.to_bytes(8, "big") for key in state.registrations.values()))


def read_reservation(req: Request) -> bytes:
    state = _state(req)
    if state.type is None or state.holder is None:
        return _header(state, b"")
    # SPC-5 6.16.3.2: an all-registrants reservation reports a key of zero.
    key = 0 if state.type.all_registrants else state.registrations[state.holder]
    return _header(state, key.to_bytes(8, "big") + bytes(5) + bytes([state.type]) + bytes(2))


def report_capabilities(req: Request) -> bytes:
    """SPC-5 6.16.4: CRH=1, ATP_C=1 (ALL_TG_PT honoured), SIP_C=0, PTPL_C=0."""
    mask = 0
    for bit in _TYPE_MASK.values():
        mask |= bit
    # TMV=1 with ALLOW COMMANDS 001b: TEST UNIT READY is allowed through
    # Write Exclusive and Exclusive Access reservations.
    return bytes([0, 8, 0x10 | 0x04, 0x80 | 0x10]) + mask.to_bytes(2, "big") + bytes(2)


def read_full_status(req: Request) -> bytes:
    state, lu = _state(req), req.unit
    body = b""
    for (initiator, target), key in state.registrations.items():
        holder = state.type is not None and (state.type.all_registrants or state.holder == (initiator, target))
        flags = (0x02 if target is None else 0) | (0x01 if holder else 0)
        tid = transport_id(initiator)
        body += (
            key.to_bytes(8, "big")
            + bytes(4)
            + bytes([flags, int(state.type) if holder and state.type else 0])
            + bytes(4)
            + lu.relative_port.to_bytes(2, "big")
            + len(tid).to_bytes(4, "big")
            + tid
        )
    return _header(state, body)


# -------------------------------------------------------------------- PR OUT


@dataclass(frozen=True)
class _Params:
    key: int
    sa_key: int
    spec_i_pt: bool
    all_tg_pt: bool
    aptpl: bool


def _params(req: Request) -> _Params:
    """The basic PERSISTENT RESERVE OUT parameter list (SPC-5 6.17.3): exactly 24 bytes."""
    data = req.data_out
    if be(req.cdb, 5, 4) != 24 or len(data) < 24:
        # Also when less arrived than the CDB announced (a short Expected Data Transfer Length).
        raise CheckCondition(SenseReason.PARAMETER_LIST_LENGTH_ERROR)
    flags = data[20]
    params = _Params(be(data, 0, 8), be(data, 8, 8), bool(flags & 0x08), bool(flags & 0x04), bool(flags & 0x01))
    if params.spec_i_pt:
        # SIP_C=0: TransportIDs in the parameter list are not supported.
        raise invalid_param(20, 3)
    return params


def _type(req: Request) -> PrType:
    """SCOPE must be LU_SCOPE (0h) and TYPE a defined type (SPC-5 6.17.2)."""
    if req.cdb[2] >> 4:
        raise invalid_cdb(2, 7)
    try:
        return PrType(req.cdb[2] & 0x0F)
    except ValueError:
        raise invalid_cdb(2, 3) from None


def _registered(req: Request, params: _Params) -> RegistrationId:
    """The caller's registration, whose key the RESERVATION KEY field must match."""
    state = _state(req)
    reg = state.registration(req.nexus)
    if reg is None or state.registrations[reg] != params.key:
        raise ReservationConflict()
    return reg


def _attention(req: Request, reason: SenseReason, regs: list[RegistrationId]) -> None:
    lu = req.unit
    targets = Reservations.nexuses_of(regs, lu.unit_attention.nexuses)
    lu.unit_attention.establish(reason, only=targets, exclude=req.nexus)


def _preempt_registrations(req: Request, state: Reservations, removed: list[RegistrationId]) -> None:
    """Drop preempted registrations and tell their nexuses (REGISTRATIONS PREEMPTED)."""
    for r in removed:
        del state.registrations[r]
    _attention(req, SenseReason.UA_REGISTRATIONS_PREEMPTED, removed)


def _others(state: Reservations, reg: RegistrationId) -> list[RegistrationId]:
    return [r for r in state.registrations if r != reg]


def _unregister(req: Request, reg: RegistrationId) -> None:
    """Remove a registration, releasing what it held (SPC-5 5.14.11.2.3)."""
    state = _state(req)
    del state.registrations[reg]
    if state.type is None:
        return
    if state.type.all_registrants:
        if not state.registrations:
            state.release()
        elif state.holder == reg:
            state.holder = next(iter(state.registrations))
    elif state.holder == reg:
        released = state.type
        state.release()
        if released.registrants_only:
            _attention(req, SenseReason.UA_RESERVATIONS_RELEASED, list(state.registrations))


def _register(req: Request, ignore_existing: bool) -> None:
    params, state = _params(req), _state(req)
    if params.aptpl:
        # PTPL_C=0: reservations do not survive power loss here.
        raise invalid_param(20, 0)
    reg = state.registration(req.nexus)
    if reg is None:
        if params.key and not ignore_existing:
            raise ReservationConflict()
        if params.sa_key == 0:
            return
        if len(state.registrations) >= state.MAX_REGISTRATIONS:
            raise CheckCondition(SenseReason.INSUFFICIENT_REGISTRATION_RESOURCES)
        target = None if params.all_tg_pt else req.nexus.target_port
        state.registrations[(req.nexus.initiator_port, target)] = params.sa_key
    else:
        if params.key != state.registrations[reg] and not ignore_existing:
            raise ReservationConflict()
        if params.sa_key == 0:
            _unregister(req, reg)
        else:
            state.registrations[reg] = params.sa_key
    state.bump()


def register(req: Request) -> None:
    _register(req, ignore_existing=False)


def register_and_ignore(req: Request) -> None:
    _register(req, ignore_existing=True)


def reserve(req: Request) -> None:
    params, kind, state = _params(req), _type(req), _state(req)
    reg = _registered(req, params)
    if state.type is None:
        state.type, state.holder = kind, reg
        return
    if state.is_holder(req.nexus) and state.type is kind:
        return
    raise ReservationConflict()


def release(req: Request) -> None:
    params, kind, state = _params(req), _type(req), _state(req)
    _registered(req, params)
    if state.type is None or not state.is_holder(req.nexus):
        return
    if state.type is not kind:
        raise CheckCondition(SenseReason.INVALID_RELEASE_OF_PR)
    released = state.type
    state.release()
    if released.registrants_only or released.all_registrants:
        _attention(req, SenseReason.UA_RESERVATIONS_RELEASED, list(state.registrations))


def clear(req: Request) -> None:
    params, state = _params(req), _state(req)
    reg = _registered(req, params)
    others = _others(state, reg)
    state.registrations.clear()
    state.release()
    state.bump()
    _attention(req, SenseReason.UA_RESERVATIONS_PREEMPTED, others)


def preempt(req: Request) -> None:
    """SPC-5 5.14.11.4: take registrations (and maybe the reservation) from their owners."""
    params, kind, state = _params(req), _type(req), _state(req)
    reg = _registered(req, params)
    if state.type is not None and state.type.all_registrants:
        if params.sa_key == 0:
            removed = _others(state, reg)
            state.type, state.holder = kind, reg
        else:
            removed = [r for r in _others(state, reg) if state.registrations[r] == params.sa_key]
            if not removed:
                raise ReservationConflict()
        _preempt_registrations(req, state, removed)
        state.bump()
        return
    if params.sa_key == 0:
        raise invalid_param(8)
    if state.type is None or state.holder is None or state.registrations[state.holder] != params.sa_key:
        removed = [r for r in state.registrations if state.registrations[r] == params.sa_key]
        if not removed:
            raise ReservationConflict()
        _preempt_registrations(req, state, removed)
        state.bump()
        return
    previous = state.type
    removed = [r for r in _others(state, reg) if state.registrations[r] == params.sa_key]
    _preempt_registrations(req, state, removed)
    state.type, state.holder = kind, reg
    if previous is not kind:
        _attention(req, SenseReason.UA_RESERVATIONS_RELEASED, _others(state, reg))
    state.bump()


def preempt_and_abort(req: Request) -> None:
    """As PREEMPT. Commands run one at a time here, so no task of the preempted
    nexuses is left to abort; a transport that queues commands drops theirs."""
    preempt(req)
