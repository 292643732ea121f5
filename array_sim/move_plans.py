"""Which pages a data move still has to move, and what a move means for the figures meanwhile.

Rules of this module (the planning half of ``data_moves``; its rules 1 to 3 say what moves):

1. **Derived, never stored**: a move's plan is computed from the page tables and the placement each
   time it runs out (``Move.plan``), so it is right after a restart or a ``kill -9`` whatever the
   catalog holds.
2. A member's move takes every page on the member; a page several volumes use goes with the volume
   of the member's own pool first (it stays in that pool).
3. A volume's move takes the pages of the volume and its snapshots outside the new pool; a page it
   reads through that another volume uses too is split (``page_mover.PageSplit``): the family gets
   a private copy, the page stays for the other volume. So only the pages no other volume uses
   count as leaving the old pool (``pages_leaving``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import Snapshot, Volume

if TYPE_CHECKING:
    from .page_mover import PageMove
    from .pages import PageTables
    from .pool import Placement
    from .spreads import Spreads

__all__ = ["Move", "MovePlans"]


class Move:
    """One row of ``moves``."""

    def __init__(self, row: tuple[int, str, int | None, int | None, int, int]) -> None:
        self.id, self.kind, self.member_id, self.volume_id, self.pool_id, self.total = row
        #: Pages left, as of the last plan.
        self.left = self.total
        #: Page id -> a volume that uses it, of the pages still to move (the next one last).
        self.plan: dict[int, int | None] = {}
        #: Those of ``plan`` that the moving volume family gets a private copy of (rule 3).
        self.splits: set[int] = set()
        self.page: PageMove | None = None

    @property
    def percent(self) -> int:
        return 100 if not self.total else max(0, min(100, (self.total - self.left) * 100 // self.total))


class MovePlans:
    """The planning half of ``DataMoves`` (a mixin on the group's state)."""

    placement: Placement
    tables: PageTables
    spreads: Spreads
    volumes: dict[int, Volume]
    moves: dict[int, Move]

    if TYPE_CHECKING:

        def snapshots_of(self, volume: Volume) -> list[Snapshot]: ...

    def _still_to_move(self, move: Move, member_id: int) -> bool:
        if move.member_id is not None:
            return member_id == move.member_id
        return self.placement.members[member_id].pool_id != move.pool_id

    def _plan(self, move: Move) -> dict[int, int | None]:
        """Page id -> a volume that uses it, of every page the move still has to move (the next one last)."""
        phys = self.tables.phys
        if move.volume_id is not None:
            return self._plan_volume(move)
        owner: dict[int, int | None] = {}
        # A page shared by volumes of several pools (one of them moving away) stays in the member's pool.
        member_pool = self._member_pool(move.member_id)
        for volume in sorted(self.volumes.values(), key=lambda v: v.pool_id != member_pool):
            for pid in self._volume_pages(volume):
                owner.setdefault(pid, volume.id)
        return {pid: owner.get(pid) for pid in sorted(phys, reverse=True) if phys[pid].address[0] == move.member_id}

    def _plan_volume(self, move: Move) -> dict[int, int | None]:
        """A volume's move: the pages its family maps that read through a page shared with another
        volume and lie (or read) outside the new pool are split; the other pages it reaches outside the
        new pool are moved (rule 3)."""
        volume_id, family = move.volume_id, self._family(move)
        _, shared = self._family_pages(family)
        tops = {pid for map_id in family for pid in self.tables.table(map_id).values()}
        moving: set[int] = set()
        move.splits = set()
        for pid in tops:
            chain = self._chain(pid)
            if shared.isdisjoint(chain):
                moving.update(p for p in chain if self._still_to_move(move, self.tables.phys[p].address[0]))
            elif self._outside(move, pid):
                move.splits.add(pid)
        return {pid: volume_id for pid in sorted(moving | move.splits, reverse=True)}

    def _family(self, move: Move) -> set[int]:
        return self._maps_of(self.volumes[move.volume_id])  # type: ignore[index]

    def _maps_of(self, volume: Volume) -> set[int]:
        """The page tables of a volume and its snapshots."""
        return {volume.map_id, *(s.map_id for s in self.snapshots_of(volume))}

    def _family_pages(self, family: set[int]) -> tuple[set[int], set[int]]:
        """The pages the page tables ``family`` reach, and those of them another page table reaches too."""
        own = self._reachable(family)
        return own, own & self._reachable(set(self.tables.maps) - family)

    def _chain(self, pid: int | None) -> list[int]:
        """The page and the pages it reads through, top first."""
        chain = []
        while pid is not None:
            chain.append(pid)
            pid = self.tables.phys[pid].backing
        return chain

    def _outside(self, move: Move, pid: int) -> bool:
        """True if the page, or one it reads through, is outside the pool the volume moves to."""
        return any(self._still_to_move(move, self.tables.phys[p].address[0]) for p in self._chain(pid))

    def _member_pool(self, member_id: int | None) -> int:
        return self.placement.members[member_id].pool_id  # type: ignore[index]

    def _reachable(self, map_ids: set[int]) -> set[int]:
        """Every page the page tables ``map_ids`` map or read through to."""
        found: set[int] = set()
        for map_id in map_ids:
            for pid in self.tables.table(map_id).values():
                while pid is not None and pid not in found:
                    found.add(pid)
                    pid = self.tables.phys[pid].backing
        return found

    def _volume_pages(self, volume: Volume) -> set[int]:
        return self._reachable(self._maps_of(volume))

    def pages_leaving(self, pool_id: int) -> int:
        """Pages on ``pool_id``'s members of volumes moving to another pool (rule 3): those of the
        volume and its snapshots only, since a page it shares with another volume stays for that one."""
        leaving = 0
        phys = self.tables.phys
        for move in self.moves.values():
            if move.volume_id is not None and move.pool_id != pool_id:
                own, shared = self._family_pages(self._family(move))
                members = self.placement.members
                leaving += sum(1 for pid in own - shared if members[phys[pid].address[0]].pool_id == pool_id)
        return leaving

    def members_holding(self, volume: Volume) -> list[str]:
        """Names of the members the volume is on: its spread, and any member still holding pages of it or
        its snapshots (during a move) (``ActualMembers``)."""
        held = {self.tables.phys[pid].address[0] for pid in self._volume_pages(volume)}
        held.update(self.spreads.of(volume.id).members)
        return [m.name for m in self.placement.members.values() if m.id in held]
