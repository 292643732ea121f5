"""A model test of members and pools: random placement, moves, merges, power cuts and reopens against
plain bytes.

The model is, per volume and per snapshot, a dict of 4 KiB chunk -> bytes (missing chunks read zeros),
and the set of pools and of the members in each. Rules add members and pools, create volumes,
snapshots and clones (of volumes and of snapshots: they share pages until written or moved), write, start every kind of data move (a member vacated and deleted, a member moved to
another pool, a volume moved to another pool), merge pools, cancel, run background slices of any
size, power members off and on, and close and reopen the group in the middle of it all.

Invariants after every step:

* every online volume and snapshot reads what the model says, everywhere it was written;
* nothing with a page on an off-line member is online, and only such volumes and snapshots are
  held offline for that reason (they come back when the member does);
* a volume's spread has at most three members, all in its pool; a page is never on two slots;
* once no move is left, every page of a volume is on a member of the volume's pool.

``TestPoolsModel`` runs a few short programs in the fast loop; ``test_pools_model_full`` (slow)
runs more and longer ones in the whole suite. ``HYPOTHESIS_PROFILE=thorough`` shrinks failures.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from array_sim import DeviceOffline, Group, InvalidRequest
from array_sim.block import SpaceExhausted
from array_sim.errors import NoSpace
from array_sim.member_admin import MEMBER_OFFLINE
from array_sim.units import CHUNK_SIZE, PAGE_SIZE, SECTOR_SIZE, MiB

#: Members are single sparse files of 6 pages (the mover is the same over every store).
MEMBER_SIZE = 6 * PAGE_SIZE
VOLUME_PAGES = 2
REFUSED = (InvalidRequest, NoSpace, SpaceExhausted, DeviceOffline)


def _settings(examples: int, steps: int, shrink: bool = False) -> settings:
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


_PROFILES = {"quick": _settings(4, 30), "ci": _settings(30, 60), "thorough": _settings(200, 80, shrink=True)}


def _profile(default: str) -> settings:
    return _PROFILES[os.environ.get("HYPOTHESIS_PROFILE", default)]


class PoolsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pools-model-"))
        self.group = Group.init(self.dir / "g", member_size=MEMBER_SIZE, raid_policy="file")
        for name in ("a2", "a3"):
            self.group.add_member(name, MEMBER_SIZE, "default", raid_policy="file")
        self.members = ["member-1", "a2", "a3"]
        self.pools = ["default"]
        #: (volume, snapshot or "") -> chunk -> bytes.
        self.data: dict[tuple[str, str], dict[int, bytes]] = {}
        self.counter = 0

    def teardown(self) -> None:
        self.group.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # ---------------------------------------------------------------- rules

    @initialize(seed=st.integers(1, 255))
    def two_volumes_with_data(self, seed: int) -> None:
        """Moves are only interesting with data, and a volume's move with a pool that can take it: every
        program starts with two written volumes and a second pool of one member."""
        self.create_pool(True)
        for n in range(2):
            self.create_volume(0)
            for page in range(VOLUME_PAGES):
                self.write(n, page, (seed * 97 + page * 1031) % 3800, 24, (seed + n + page) % 255 + 1)

    @precondition(lambda self: len(self.members) < 6)
    @rule(pool=st.integers(0, 3))
    def add_member(self, pool: int) -> None:
        name = self._name("m")
        self.group.add_member(name, MEMBER_SIZE, self.pools[pool % len(self.pools)], raid_policy="file")
        self.members.append(name)

    @precondition(lambda self: len(self.pools) < 3)
    @rule(with_member=st.booleans())
    def create_pool(self, with_member: bool) -> None:
        name = self._name("p")
        self.group.create_pool(name)
        self.pools.append(name)
        if with_member and len(self.members) < 6:
            self.add_member(len(self.pools) - 1)

    @precondition(lambda self: sum(1 for _, s in self.data if not s) < 4)
    @rule(pool=st.integers(0, 3))
    def create_volume(self, pool: int) -> None:
        name = self._name("v")
        try:
            self.group.create_volume(name, VOLUME_PAGES * PAGE_SIZE, self.pools[pool % len(self.pools)],
                                     thin=True, snap_reserve=100)
        except REFUSED:
            return
        self.data[(name, "")] = {}

    @precondition(lambda self: self.data)
    @rule(pick=st.integers(0, 99), page=st.integers(0, VOLUME_PAGES - 1), chunk=st.integers(0, 3839),
          count=st.integers(1, 40), byte=st.integers(1, 255))
    def write(self, pick: int, page: int, chunk: int, count: int, byte: int) -> None:
        volumes = sorted(v for v, s in self.data if not s)
        if not volumes:
            return
        name = volumes[pick % len(volumes)]
        first = page * (PAGE_SIZE // CHUNK_SIZE) + min(chunk, 3840 - count)
        data = bytes([byte]) * (count * CHUNK_SIZE)
        try:
            self.group.device(name).write(first * CHUNK_SIZE // SECTOR_SIZE, data)
        except REFUSED:
            return
        for i in range(count):
            self.data[(name, "")][first + i] = bytes([byte]) * CHUNK_SIZE
        left = {s.name for s in self.group.snapshots_of(self.group.volume(name))}
        for key in [k for k in self.data if k[0] == name and k[1] and k[1] not in left]:
            del self.data[key]  # deleted to make room in the snapshot reserve (delete-oldest)

    @precondition(lambda self: self.data)
    @rule(pick=st.integers(0, 99))
    def snapshot(self, pick: int) -> None:
        volumes = sorted(v for v, s in self.data if not s)
        name = volumes[pick % len(volumes)]
        try:
            snap = self.group.create_snapshot(name)
            self.group.set_snapshot_online(name, snap.name, True)
        except REFUSED:
            return
        self.data[(name, snap.name)] = dict(self.data[(name, "")])

    @precondition(lambda self: self.data and sum(1 for _, s in self.data if not s) < 5)
    @rule(pick=st.integers(0, 99))
    def clone(self, pick: int) -> None:
        """Of a volume or a snapshot: the clone shares its pages until either writes, or either moves pool."""
        volume, snapshot = sorted(self.data)[pick % len(self.data)]
        name = self._name("c")
        try:
            self.group.clone_volume(volume, name, snapshot or None)
        except REFUSED:
            return
        self.data[(name, "")] = dict(self.data[(volume, snapshot)])

    @rule(pick=st.integers(0, 99))
    def delete_member(self, pick: int) -> None:
        self._try(lambda: self.group.delete_member(self.members[pick % len(self.members)]))

    @rule(pick=st.integers(0, 99), pool=st.integers(0, 3))
    def move_member(self, pick: int, pool: int) -> None:
        member, target = self.members[pick % len(self.members)], self.pools[pool % len(self.pools)]
        self._try(lambda: self.group.move_member(member, target))

    @precondition(lambda self: self.data)
    @rule(pick=st.integers(0, 99), pool=st.integers(0, 3))
    def move_volume(self, pick: int, pool: int) -> None:
        volumes = sorted(v for v, s in self.data if not s)
        name = volumes[pick % len(volumes)]
        here = self.group.pools[self.group.volume(name).pool_id]
        others = [p for p in self.pools if p != here] or [here]  # mostly another pool: its own is refused
        target = others[pool % len(others)]
        self._try(lambda: self.group.move_volume(name, target))

    @precondition(lambda self: len(self.pools) > 1)
    @rule(source=st.integers(1, 3), destination=st.integers(0, 3))
    def merge_pools(self, source: int, destination: int) -> None:
        src, dst = self.pools[source % len(self.pools)], self.pools[destination % len(self.pools)]
        if self._try(lambda: self.group.merge_pools(src, dst)):
            self.pools.remove(src)

    @rule(pick=st.integers(0, 99))
    def cancel(self, pick: int) -> None:
        self._try(lambda: self.group.cancel_member_operation(self.members[pick % len(self.members)]))

    @rule(pick=st.integers(0, 99), on=st.booleans())
    def power(self, pick: int, on: bool) -> None:
        self._try(lambda: self.group.power_member(self.members[pick % len(self.members)], on))

    @rule(steps=st.integers(1, 4), budget=st.sampled_from([4096, 16 * 1024, 64 * 1024, MiB]))
    def background(self, steps: int, budget: int) -> None:
        for _ in range(steps):
            self.group.background_step(budget)
        self._forget_deleted_members()

    @rule()
    def reopen(self) -> None:
        self.group.close()
        self.group = Group.open(self.dir / "g")

    def _try(self, call: object) -> bool:
        try:
            call()  # type: ignore[operator]
        except REFUSED:
            return False
        self._forget_deleted_members()
        return True

    def _forget_deleted_members(self) -> None:
        present = {r.name for r in self.group.member_admin.reports()}
        self.members = [m for m in self.members if m in present]

    # ----------------------------------------------------------- invariants

    @invariant()
    def reads_match_the_model(self) -> None:
        for (volume, snapshot), chunks in self.data.items():
            record = self.group.snapshot(volume, snapshot) if snapshot else self.group.volume(volume)
            if not record.online:
                continue
            device = self.group.device(volume, snapshot or None)
            for chunk, data in chunks.items():
                assert device.read(chunk * CHUNK_SIZE // SECTOR_SIZE, CHUNK_SIZE // SECTOR_SIZE) == data, (
                    volume, snapshot, chunk)

    @invariant()
    def offline_is_exactly_what_offline_members_hold(self) -> None:
        group = self.group
        held = group.maps_on(group.offline_members())
        for record in [*group.volumes.values(), *group.snapshots.values()]:
            if record.offline_reason == MEMBER_OFFLINE:
                assert record.map_id in held, record.name  # held for that reason only while it lasts
            if record.map_id in held:
                assert not record.online, record.name  # nothing with data on an off-line member is served

    @invariant()
    def placement_is_sound(self) -> None:
        group = self.group
        addresses = [page.address for page in group.tables.phys.values()]
        assert len(addresses) == len(set(addresses))
        for volume in group.volumes.values():
            spread = group.spreads.of(volume.id)
            assert len(spread.members) <= 3 and spread.pool_id == volume.pool_id
            for member_id in spread.members:
                assert group.placement.members[member_id].pool_id == volume.pool_id
            if not group.moves:
                for pid in group._volume_pages(volume):
                    assert group.placement.members[group.tables.phys[pid].address[0]].pool_id == volume.pool_id


class TestPoolsModel(PoolsMachine.TestCase):  # type: ignore[name-defined]
    settings = _profile("quick")


@pytest.mark.slow
def test_pools_model_full() -> None:
    run_state_machine_as_test(PoolsMachine, settings=_profile("ci"))
