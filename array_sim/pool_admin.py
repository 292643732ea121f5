"""Pool operations of the group: create, delete, and what a pool holds and has free.

PS Series rules enforced here (research/ps-cli.md 2.4, Config Guide v11.3 3.1-3.2; the numbers are
confirmed by public sources, the error wording is inferred):

1. A group has at most ``MAX_POOLS`` pools and ``MAX_MEMBERS`` members; a pool holds at most
   ``MAX_POOL_MEMBERS``. Members of every state count, unconfigured ones included: an array
   belongs to its pool from the moment it joins the group.
2. The pool ``default`` always exists and cannot be deleted. Another pool can be deleted only when
   it is empty: no member and no volume (the array moves them first, ``pool merge``).
3. Every refusal changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InvalidRequest
from .naming import valid_object_name
from .pool import DEFAULT_POOL, pool_named

if TYPE_CHECKING:
    from .catalog import Catalog
    from .pool import Placement
    from .records import Snapshot, Volume
    from .space import SpaceAccounting

__all__ = ["PoolAdmin", "MAX_POOLS", "MAX_MEMBERS", "MAX_POOL_MEMBERS", "check_member_room"]

#: Rule 1.
MAX_POOLS = 4
MAX_MEMBERS = 16
MAX_POOL_MEMBERS = 8


def check_member_room(catalog: Catalog, pool_id: int, pool: str) -> None:
    """Refuse one more member in the group, or in ``pool``, past the limits (rule 1)."""
    (members,) = catalog.db.execute("SELECT COUNT(*) FROM members").fetchone()
    if members >= MAX_MEMBERS:
        raise InvalidRequest(f"The group already has {MAX_MEMBERS} members, the most a group can have.")
    (in_pool,) = catalog.db.execute("SELECT COUNT(*) FROM members WHERE pool_id = ?", (pool_id,)).fetchone()
    if in_pool >= MAX_POOL_MEMBERS:
        raise InvalidRequest(f"Pool {pool} already has {MAX_POOL_MEMBERS} members, the most a pool can have.")


class PoolAdmin:
    """The pool half of ``Group`` (a mixin: it works on the group's catalog and pools)."""

    catalog: Catalog
    pools: dict[int, str]
    placement: Placement
    space: SpaceAccounting
    volumes: dict[int, Volume]

    if TYPE_CHECKING:

        def snapshots_of(self, volume: Volume) -> list[Snapshot]: ...
        def pages_leaving(self, pool_id: int) -> int: ...

    def pool_volumes(self, pool_id: int) -> list[Volume]:
        return [v for v in self.volumes.values() if v.pool_id == pool_id]

    def pool_free(self, pool_id: int) -> int:
        """Free pages of a pool: capacity less every reserve in it, and less the pages of volumes moving
        out of it that are still there (their reserve is already the new pool's)."""
        reserved = sum(self.space.reserved(v, self.snapshots_of(v)) for v in self.pool_volumes(pool_id))
        return self.placement.pool_capacity(pool_id) - reserved - self.pages_leaving(pool_id)

    def create_pool(self, name: str) -> None:
        if not valid_object_name(name):
            raise InvalidRequest(f"Invalid pool name '{name}'; use up to 63 letters, digits, '.', '-' or ':'.")
        if name in self.pools.values():
            raise InvalidRequest(f"Pool {name} already exists.")
        if len(self.pools) >= MAX_POOLS:
            raise InvalidRequest(f"The group already has {MAX_POOLS} pools, the most a group can have.")
        with self.catalog.transaction() as db:
            pool_id = int(db.execute("INSERT INTO pools (name) VALUES (?)", (name,)).lastrowid or 0)
        self.pools[pool_id] = name

    def delete_pool(self, name: str) -> None:
        """``pool delete P`` (rule 2)."""
        pool_id = pool_named(self.pools, name)
        if name == DEFAULT_POOL:
            raise InvalidRequest("The default pool cannot be deleted.")
        if self.pool_volumes(pool_id):
            raise InvalidRequest(f"Pool {name} still has volumes; move them to another pool first.")
        (members,) = self.catalog.db.execute("SELECT COUNT(*) FROM members WHERE pool_id = ?", (pool_id,)).fetchone()
        if members:
            raise InvalidRequest(f"Pool {name} still has members; move them to another pool first.")
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM pools WHERE id = ?", (pool_id,))
        del self.pools[pool_id]
