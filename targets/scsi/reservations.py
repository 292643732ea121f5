"""Reservation state of a logical unit, the conflict check, and SPC-2 RESERVE/RELEASE.

Two kinds of reservation live side by side, with the compatible reservation
handling of SPC-5 5.14.3 (CRH=1 in REPORT CAPABILITIES):

* SPC-2 RESERVE(6)/RELEASE(6): one I_T nexus holds the whole logical unit;
  every other nexus gets RESERVATION CONFLICT except for the few commands
  marked ``spc2_allowed`` in the table. Released by RELEASE, I_T nexus loss
  and any reset (SAM-5 6.3).
* Persistent reservations (SPC-5 5.14): registrations per I_T nexus (or per
  initiator port on all target ports, ALL_TG_PT=1) and at most one
  reservation. They survive I_T nexus loss and resets; they do not survive
  the process (PTPL_C=0: APTPL is refused).

What conflicts with a persistent reservation is data in the opcode table
(``CommandSpec.pr_conflict``); ``Reservations.conflicts`` only reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import Nexus
from .opcodes import PrType
from .sense import ReservationConflict
from .spec import CommandSpec, PrConflict, Request

__all__ = ["Reservations", "RegistrationId", "transport_id", "reserve_6", "release_6"]

#: A registration belongs to an initiator port on one target port, or on all of them (None).
RegistrationId = tuple[str, str | None]

#: SPC-5 7.6.1, table 443: the protocol identifier of iSCSI TransportIDs.
PROTOCOL_ISCSI = 0x5


@dataclass
class Reservations:
    """The reservations of one logical unit."""

    MAX_REGISTRATIONS = 128

    #: I_T nexus holding an SPC-2 reservation.
    spc2_holder: Nexus | None = None
    #: Registered reservation keys, in the order they were registered.
    registrations: dict[RegistrationId, int] = field(default_factory=dict)
    #: PRGENERATION: 32-bit wrapping counter (SPC-5 6.16.2).
    generation: int = 0
    #: The persistent reservation's type; None when there is none.
    type: PrType | None = None
    #: The registration holding it (for all-registrants types: the one that reserved).
    holder: RegistrationId | None = None

    # ------------------------------------------------------------- queries

    def registration(self, nexus: Nexus) -> RegistrationId | None:
        for key in ((nexus.initiator_port, nexus.target_port), (nexus.initiator_port, None)):
            if key in self.registrations:
                return key
        return None

    def is_holder(self, nexus: Nexus) -> bool:
        """SPC-5 5.14.10: every registrant holds an all-registrants reservation."""
        reg = self.registration(nexus)
        if self.type is None or reg is None:
            return False
        return self.type.all_registrants or reg == self.holder

    def conflicts(self, nexus: Nexus, spec: CommandSpec, cdb: bytes) -> bool:
        """Whether ``spec`` from ``nexus`` meets RESERVATION CONFLICT before it runs."""
        if self.spc2_holder is not None and self.spc2_holder != nexus and not spec.spc2_allowed:
            return True
        if self.type is None or self.is_holder(nexus):
            return False
        flags = spec.conflict_flags(cdb)
        if self.type is PrType.WRITE_EXCLUSIVE:
            return PrConflict.WE in flags
        if self.type is PrType.EXCLUSIVE_ACCESS:
            return PrConflict.EA in flags
        if self.registration(nexus) is not None:
            return False
        return (PrConflict.WE_UNREGISTERED if self.type.write_exclusive else PrConflict.EA_UNREGISTERED) in flags

    @staticmethod
    def nexuses_of(regs: Iterable[RegistrationId], known: Iterable[Nexus]) -> set[Nexus]:
        """The I_T nexuses (among those seen) that the registrations cover."""
        wanted = set(regs)
        return {n for n in known if (n.initiator_port, n.target_port) in wanted or (n.initiator_port, None) in wanted}

    # ------------------------------------------------------------- changes

    def bump(self) -> None:
        self.generation = (self.generation + 1) & 0xFFFFFFFF

    def release(self) -> None:
        self.type = None
        self.holder = None


def transport_id(initiator_port: str) -> bytes:
    """The iSCSI TransportID of an initiator port (SPC-5 7.6.4.6).

    ``"name,i,0xISID"`` gives FORMAT CODE 01b (initiator port name);
    a bare name gives 00b. The text is null-terminated and padded to a multiple
    of four bytes, at least 20.
    """
    fmt = 0x40 if ",i," in initiator_port else 0x00
    text = initiator_port.encode("utf-8") + b"\x00"
    text += bytes(-len(text) % 4)
    text += bytes(max(0, 20 - len(text)))
    return bytes([fmt | PROTOCOL_ISCSI, 0]) + len(text).to_bytes(2, "big") + text


# ---------------------------------------------------------------- SPC-2 RESERVE / RELEASE


def _crh_exception(req: Request) -> bool:
    """SPC-5 5.14.3: RESERVE/RELEASE while persistent registrations exist.

    Returns True when the command completes with GOOD and no effect (from the
    persistent reservation holder, or a registrant under a registrants-only or
    all-registrants reservation); raises RESERVATION CONFLICT for anyone else.
    Returns False when there are no registrations, so SPC-2 rules apply.
    """
    state = req.unit.reservations
    if not state.registrations:
        return False
    if state.is_holder(req.nexus):
        return True
    if (
        state.registration(req.nexus) is not None
        and state.type is not None
        and (state.type.registrants_only or state.type.all_registrants)
    ):
        return True
    raise ReservationConflict()


def reserve_6(req: Request) -> None:
    """SPC-2 7.21: reserve the whole logical unit for this I_T nexus (again is fine)."""
    if _crh_exception(req):
        return
    state = req.unit.reservations
    if state.spc2_holder is not None and state.spc2_holder != req.nexus:
        raise ReservationConflict()
    state.spc2_holder = req.nexus


def release_6(req: Request) -> None:
    """SPC-2 7.16: release it; from a nexus that does not hold it, GOOD and no effect."""
    if _crh_exception(req):
        return
    state = req.unit.reservations
    if state.spc2_holder == req.nexus:
        state.spc2_holder = None
