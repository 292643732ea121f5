"""Pools and member placement: which member's slot holds a physical page.

A PS Series group has pools; each pool holds members; a volume lives in one
pool and its pages spread over at most ``MAX_SPREAD`` of that pool's members
(research/next-capabilities.md 2: "a volume spans at most 3 members", the
capacity load balancer measures "on a percentage basis of each member's
capacity").

Rules of this module:

1. A volume's *spread* is the list of members its pages may go to. A new page
   goes to the member of the spread with the highest free percentage that
   takes pages (on-line, powered on, not being vacated, not full).
2. When no member of the spread can take it and the spread has fewer than
   ``MAX_SPREAD`` members, the pool member with the highest free percentage
   that takes pages joins the spread (``Spread.on_join`` records it). When
   the spread is full and all its members are, the page goes to the pool's
   best member all the same, outside the spread: a volume's reserve is the
   pool's promise, so a write it covers is never refused while the pool has
   room (the volume then has data on more than ``MAX_SPREAD`` members).
3. Ties go to the member with the lowest id, so placement is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .block import SpaceExhausted
from .errors import NotFound
from .member_store import MemberOffline, SlotStore

__all__ = ["Member", "Placement", "PageAddress", "Spread", "pool_named", "DEFAULT_POOL", "MAX_SPREAD"]

#: The pool every group has and new members join (research/ps-cli.md 2.4).
DEFAULT_POOL = "default"

#: (member id, slot) of one physical page.
PageAddress = tuple[int, int]

#: The most members one volume's pages spread over (rule 1).
MAX_SPREAD = 3


@dataclass
class Spread:
    """The members a volume's pages may go to, in its pool (rule 1)."""

    pool_id: int
    members: list[int] = field(default_factory=list)
    #: Called with a member that joined (rule 2), inside the allocation's transaction.
    on_join: Callable[[int], None] = lambda member_id: None


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
    #: False while the simulator has the member powered off.
    powered: bool = True
    #: True while its data moves off it (vacate): it takes no new pages and its capacity leaves the pool.
    vacating: bool = False

    @property
    def capacity_pages(self) -> int:
        return self.store.capacity_pages

    @property
    def free_pages(self) -> int:
        return self.capacity_pages - self.high_water + len(self.freed)

    @property
    def free_fraction(self) -> float:
        return self.free_pages / self.capacity_pages if self.capacity_pages else 0.0

    @property
    def online(self) -> bool:
        """Powered on and its RAID not failed (eqlMemberState on-line)."""
        return self.powered and self.store.health().online

    @property
    def counts(self) -> bool:
        """Its capacity is the pool's: on-line and not being vacated."""
        return self.online and not self.vacating

    @property
    def takes_pages(self) -> bool:
        return self.counts and self.free_pages > 0

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

    def allocate(self, spread: Spread) -> PageAddress:
        """Take a free slot for a page of a volume with ``spread`` (rules 1-3).

        Raises:
            SpaceExhausted: no member the volume may use has a free slot.
        """
        member = self.best([self.members[m] for m in spread.members if m in self.members])
        if member is None:
            member = self.best(self.pool_members(spread.pool_id, exclude=spread.members))
            if member is not None and len(spread.members) < MAX_SPREAD:
                spread.members.append(member.id)
                spread.on_join(member.id)
        if member is None:
            raise SpaceExhausted("the pool has no free pages")
        return member.id, member.take_slot()

    @staticmethod
    def best(members: list[Member]) -> Member | None:
        """The member with the highest free percentage that takes pages, if any (rules 1, 3)."""
        takers = [m for m in members if m.takes_pages]
        return max(takers, key=lambda m: (m.free_fraction, -m.id)) if takers else None

    def pool_members(self, pool_id: int, exclude: list[int] | tuple[int, ...] = ()) -> list[Member]:
        return [m for m in self.members.values() if m.pool_id == pool_id and m.id not in exclude]

    def choose_spread(self, pool_id: int) -> list[int]:
        """The members a new volume of ``pool_id`` starts on: the ``MAX_SPREAD`` with most free percentage."""
        takers = [m for m in self.pool_members(pool_id) if m.takes_pages]
        takers.sort(key=lambda m: (-m.free_fraction, m.id))
        return [m.id for m in takers[:MAX_SPREAD]]

    def release(self, address: PageAddress) -> None:
        member_id, slot = address
        self.members[member_id].freed.append(slot)

    def store(self, member_id: int) -> SlotStore:
        """The member's store; a powered-off member's data cannot be reached (MemberOffline)."""
        member = self.members[member_id]
        if not member.powered:
            raise MemberOffline(f"member {member.name} is powered off")
        return member.store

    def pool_capacity(self, pool_id: int) -> int:
        """Pages of the pool's members that count (on-line, not being vacated)."""
        return sum(m.capacity_pages for m in self.pool_members(pool_id) if m.counts)

    def flush(self) -> None:
        for member in self.members.values():
            member.store.flush()

    def settle(self) -> None:
        for member in self.members.values():
            member.store.settle()

    def close(self) -> None:
        for member in self.members.values():
            member.store.close()
