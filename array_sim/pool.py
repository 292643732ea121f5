"""Pools and member placement: which member's slot holds a physical page.

A PS Series group has pools; each pool holds members; a volume lives in one
pool and its pages spread over that pool's members. Placement here puts a new
page on the member of the pool with the most free slots, which spreads pages
the way the array's capacity load balancer does over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .block import SpaceExhausted
from .errors import NotFound
from .member_store import SlotStore

__all__ = ["Member", "Placement", "PageAddress", "pool_named", "DEFAULT_POOL"]

#: The pool every group has and new members join (research/ps-cli.md 2.4).
DEFAULT_POOL = "default"

#: (member id, slot) of one physical page.
PageAddress = tuple[int, int]


def pool_named(pools: dict[int, str], name: str) -> int:
    """The id of the pool called ``name`` among ``pools`` (id -> name)."""
    for pool_id, pool_name in pools.items():
        if pool_name == name:
            return pool_id
    raise NotFound(f"Pool {name} does not exist.")


@dataclass
class Member:
    """One array of the group and its slot allocator."""

    id: int
    name: str
    pool_id: int
    store: SlotStore
    #: Slots at or above this have never been used.
    high_water: int = 0
    #: Slots below ``high_water`` that are free again, used before new ones.
    freed: list[int] = field(default_factory=list)

    @property
    def capacity_pages(self) -> int:
        return self.store.capacity_pages

    @property
    def free_pages(self) -> int:
        return self.capacity_pages - self.high_water + len(self.freed)

    def take_slot(self) -> int:
        if self.freed:
            return self.freed.pop()
        if self.high_water >= self.capacity_pages:
            raise SpaceExhausted(f"member {self.name} is full")
        self.high_water += 1
        return self.high_water - 1


class Placement:
    """The members of all pools, with allocation of page slots."""

    def __init__(self) -> None:
        self.members: dict[int, Member] = {}

    def add_member(self, member_id: int, name: str, pool_id: int, store: SlotStore) -> None:
        self.members[member_id] = Member(member_id, name, pool_id, store)

    def mark_used(self, slots_by_member: dict[int, set[int]]) -> None:
        """Rebuild every member's allocator from the slots the catalog says are in use."""
        for member in self.members.values():
            used = slots_by_member.get(member.id, set())
            member.high_water = max(used) + 1 if used else 0
            member.freed = sorted((s for s in range(member.high_water) if s not in used), reverse=True)

    def allocate(self, pool_id: int) -> PageAddress:
        """Take a free slot on the pool member with the most free pages.

        Raises:
            SpaceExhausted: no member of the pool has a free slot.
        """
        candidates = [m for m in self.members.values() if m.pool_id == pool_id and m.free_pages > 0]
        if not candidates:
            raise SpaceExhausted("the pool has no free pages")
        member = max(candidates, key=lambda m: (m.free_pages, -m.id))
        return member.id, member.take_slot()

    def release(self, address: PageAddress) -> None:
        member_id, slot = address
        self.members[member_id].freed.append(slot)

    def store(self, member_id: int) -> SlotStore:
        return self.members[member_id].store

    def pool_capacity(self, pool_id: int) -> int:
        """Pages of all members of the pool."""
        return sum(m.capacity_pages for m in self.members.values() if m.pool_id == pool_id)

    def flush(self) -> None:
        for member in self.members.values():
            member.store.flush()

    def close(self) -> None:
        for member in self.members.values():
            member.store.close()
