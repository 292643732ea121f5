"""Unit attention conditions, queued per I_T nexus (SAM-5 5.14, SPC-5 5.14).

Rules kept here:

* Conditions are queued for the I_T nexuses that exist when the event happens.
  A nexus formed later starts with nothing pending, and a nexus that is lost
  (logout, connection loss, session reinstatement) is forgotten: its next
  session is a new nexus. Initiators (libiscsi's conformance suite among
  them) expect a fresh login to find the logical unit ready, and iSCSI
  initiators reuse ISIDs, so a condition kept for a lost nexus would land
  on an unrelated later session.
* Conditions are reported oldest first, one per command, and a reported
  condition is cleared (UA_INTLCK_CTRL is 00b in the Control mode page).
* A 29/xx condition replaces everything queued for the nexus (SAM-5 5.14:
  a reset implies every other change) and the same condition is never queued
  twice. At most ``MAX_QUEUED`` conditions wait; the oldest go first.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import Nexus
from .sense import SenseReason

__all__ = ["UnitAttentions", "RESET_REASONS"]

#: Conditions of the 29h family: each one supersedes whatever was queued before it.
RESET_REASONS = frozenset(
    {SenseReason.UA_RESET, SenseReason.UA_POWER_ON, SenseReason.UA_LUN_RESET}
)


class UnitAttentions:
    """Pending unit attention conditions of one logical unit."""

    MAX_QUEUED = 8

    def __init__(self) -> None:
        self._queues: dict[Nexus, list[SenseReason]] = {}

    @property
    def nexuses(self) -> frozenset[Nexus]:
        """Every I_T nexus that has sent this logical unit a command."""
        return frozenset(self._queues)

    def seen(self, nexus: Nexus) -> None:
        """Note the nexus; a new one starts with nothing pending."""
        if nexus not in self._queues:
            self._queues[nexus] = []

    def pending(self, nexus: Nexus) -> SenseReason | None:
        self.seen(nexus)
        queue = self._queues[nexus]
        return queue[0] if queue else None

    def pop(self, nexus: Nexus) -> SenseReason | None:
        """The oldest condition for the nexus, now cleared; None if there is none."""
        self.seen(nexus)
        queue = self._queues[nexus]
        return queue.pop(0) if queue else None

    def establish(
        self,
        reason: SenseReason,
        *,
        only: Iterable[Nexus] | None = None,
        exclude: Nexus | None = None,
    ) -> None:
        """Queue ``reason`` for every known nexus (or those in ``only``) but ``exclude``."""
        targets = self._queues.keys() if only is None else [n for n in only if n in self._queues]
        for nexus in list(targets):
            if nexus != exclude:
                self._queue(nexus, reason)

    def nexus_lost(self, nexus: Nexus) -> None:
        """I_T nexus loss: the nexus is forgotten with whatever it had pending."""
        self._queues.pop(nexus, None)

    def _queue(self, nexus: Nexus, reason: SenseReason) -> None:
        queue = self._queues.setdefault(nexus, [])
        if reason in RESET_REASONS:
            queue.clear()
        if reason in queue:
            return
        queue.append(reason)
        del queue[: -self.MAX_QUEUED]
