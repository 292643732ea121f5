"""The capacity load balancer: pages move between the members of a pool until their free percentages
are close (research/next-capabilities.md 2: the CLB "measured on a percentage basis of each member's
capacity"), so a member that joins a pool receives data.

Rules of this module:

1. It runs only when no other move can (``data_moves``), one page at a time through the page mover,
   in the same background slices.
2. In each pool, it looks at the member with the lowest free percentage and the one with the highest
   (members that count: on-line, not being vacated). It moves a page from the first to the second
   only when their free percentages differ by more than ``THRESHOLD`` points and the move makes that
   difference smaller in size, so it always stops and never moves a page back and forth.
3. The page must belong to a volume whose spread holds the destination, or has room for it (it
   then joins the spread): a volume never spans more than ``MAX_SPREAD`` members.
4. Nothing is recorded: what to balance is derived from the placement each time, so it needs no
   resuming after a restart, and a page switched is a page in its final place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .page_mover import PageMove
from .pool import MAX_SPREAD, Member

if TYPE_CHECKING:
    from .catalog import Catalog
    from .pages import PageTables
    from .pool import Placement
    from .records import Volume
    from .spreads import Spreads

__all__ = ["CapacityBalancer", "THRESHOLD"]

#: Free-percentage points between the fullest and the emptiest member below which nothing moves.
THRESHOLD = 10.0


class CapacityBalancer:
    """The balancer half of ``Group`` (a mixin on the group's state)."""

    catalog: Catalog
    placement: Placement
    tables: PageTables
    spreads: Spreads
    volumes: dict[int, Volume]
    pools: dict[int, str]
    _balancing: PageMove | None = None

    if TYPE_CHECKING:

        def _volume_pages(self, volume: Volume) -> set[int]: ...

    def balance_step(self, budget: int) -> bool:
        """One slice of balancing; True if a page was being moved (rule 1)."""
        page = self._balancing
        members = self.placement.members
        if page is not None and (page.ended or not members[page.dest[0]].counts or not members[page.source[0]].counts
                                 or members[page.dest[0]].pool_id != members[page.source[0]].pool_id):
            page.cancel()
            page = self._balancing = None
        if page is None:
            page = self._balancing = self._next_balance_page()
            if page is None:
                return False
        if page.step(budget) and not page.ended:
            page.switch()
            self._balancing = None
        return True

    def _next_balance_page(self) -> PageMove | None:
        for pool_id in sorted(self.pools):
            pair = self._unbalanced(pool_id)
            if pair is None:
                continue
            source, dest = pair
            for volume in sorted(self.volumes.values(), key=lambda v: v.id):
                spread = self.spreads.of(volume.id)
                if volume.pool_id != pool_id or (dest.id not in spread.members and len(spread.members) >= MAX_SPREAD):
                    continue
                on_source = [
                    pid for pid in self._volume_pages(volume)
                    if self.tables.phys[pid].address[0] == source.id and pid not in self.tables.watchers
                ]  # fmt: skip
                if not on_source:
                    continue
                if dest.id not in spread.members:  # rule 3
                    with self.catalog.transaction():
                        spread.members.append(dest.id)
                        spread.on_join(dest.id)
                return PageMove(self.tables, self.placement, self.catalog, max(on_source), dest.id)
        return None

    def _unbalanced(self, pool_id: int) -> tuple[Member, Member] | None:
        """(fullest, emptiest) of the pool when moving one page between them is worth it (rule 2)."""
        members = [m for m in self.placement.pool_members(pool_id) if m.counts and m.capacity_pages]
        if len(members) < 2:
            return None
        fullest = min(members, key=lambda m: (m.free_fraction, m.id))
        emptiest = max((m for m in members if m.free_pages > 0), key=lambda m: (m.free_fraction, -m.id), default=None)
        if emptiest is None or emptiest is fullest:
            return None
        gap = (emptiest.free_fraction - fullest.free_fraction) * 100
        after = gap - 100 / fullest.capacity_pages - 100 / emptiest.capacity_pages
        if gap <= THRESHOLD or abs(after) >= gap:
            return None
        return fullest, emptiest
