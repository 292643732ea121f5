"""Which members each volume's pages may go to (``pool`` rules 1-3), kept in the catalog.

Rules of this module:

1. Every volume has one ``Spread`` object for its life in this process: devices hold it, and a
   reload from the catalog (after a rolled-back transaction) updates it in place.
2. A new volume starts on the ``MAX_SPREAD`` members of its pool with the highest free percentage
   (the capacity load balancer's measure); a member that gets its RAID policy (its capacity joins
   the pool) joins every spread of its pool that has room, so it receives new data at once, and
   pages move onto it as the balancer moves them.
3. The catalog (``volume_members``) and the objects change in the same transaction.
"""

from __future__ import annotations

from .catalog import Catalog
from .pool import MAX_SPREAD, Placement, Spread

__all__ = ["Spreads"]


class Spreads:
    """The spread of every volume (rule 1)."""

    def __init__(self, catalog: Catalog, placement: Placement) -> None:
        self.catalog = catalog
        self.placement = placement
        self._by_volume: dict[int, Spread] = {}

    def load(self, volume_pools: dict[int, int]) -> None:
        """(Re)read every spread; ``volume_pools`` maps each volume id to its pool id."""
        members: dict[int, list[int]] = {v: [] for v in volume_pools}
        for volume_id, member_id in self.catalog.db.execute(
            "SELECT volume_id, member_id FROM volume_members ORDER BY volume_id, position"
        ):
            members.setdefault(volume_id, []).append(member_id)
        for volume_id in list(self._by_volume):
            if volume_id not in volume_pools:
                del self._by_volume[volume_id]
        for volume_id, pool_id in volume_pools.items():
            spread = self._by_volume.get(volume_id)
            if spread is None:
                spread = self._by_volume[volume_id] = Spread(pool_id)
                spread.on_join = lambda member_id, v=volume_id: self._record(v, member_id)
            spread.pool_id = pool_id
            spread.members[:] = members[volume_id]

    def of(self, volume_id: int) -> Spread:
        return self._by_volume[volume_id]

    def start(self, volume_id: int, pool_id: int) -> Spread:
        """A new volume's spread (rule 2), inside the transaction that makes the volume."""
        spread = Spread(pool_id, on_join=lambda member_id: self._record(volume_id, member_id))
        self._by_volume[volume_id] = spread
        self.set(volume_id, pool_id, self.placement.choose_spread(pool_id))
        return spread

    def set(self, volume_id: int, pool_id: int, members: list[int]) -> None:
        """Replace a volume's spread (a pool move, a vacate)."""
        spread = self._by_volume[volume_id]
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM volume_members WHERE volume_id = ?", (volume_id,))
            spread.pool_id = pool_id
            spread.members[:] = []
            for member_id in members[:MAX_SPREAD]:
                self._record(volume_id, member_id)
                spread.members.append(member_id)

    def forget(self, volume_id: int) -> None:
        """A deleted volume (inside its deletion's transaction)."""
        self.catalog.db.execute("DELETE FROM volume_members WHERE volume_id = ?", (volume_id,))
        self._by_volume.pop(volume_id, None)

    def member_joined(self, member_id: int, pool_id: int) -> None:
        """A member's capacity joined ``pool_id``: it joins every spread there with room (rule 2)."""
        with self.catalog.transaction():
            for volume_id, spread in self._by_volume.items():
                if spread.pool_id == pool_id and len(spread.members) < MAX_SPREAD and member_id not in spread.members:
                    spread.members.append(member_id)
                    self._record(volume_id, member_id)

    def member_left(self, member_id: int) -> None:
        """A member left the pool of its spreads (vacated or moved): they lose it and, where the
        pool has another member that takes pages, gain the best of those instead."""
        with self.catalog.transaction():
            for volume_id, spread in self._by_volume.items():
                if member_id in spread.members:
                    rest = [m for m in spread.members if m != member_id]
                    others = [m for m in self.placement.pool_members(spread.pool_id, exclude=[*rest, member_id])]
                    best = self.placement.best(others)
                    self.set(volume_id, spread.pool_id, rest + ([best.id] if best is not None else []))

    def _record(self, volume_id: int, member_id: int) -> None:
        (position,) = self.catalog.db.execute(
            "SELECT COUNT(*) FROM volume_members WHERE volume_id = ?", (volume_id,)
        ).fetchone()
        self.catalog.db.execute(
            "INSERT INTO volume_members (volume_id, member_id, position) VALUES (?, ?, ?)",
            (volume_id, member_id, position),
        )
