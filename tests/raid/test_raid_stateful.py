"""A hypothesis state machine: RaidStore against a plain bytearray, with faults, rebuilds and reopens.

Every read must equal the model, or raise: ``MemberOffline`` once the member is beyond its
tolerance, ``UnrecoverableRead`` where a latent error met a stripe without redundancy. A write that
raises may have written some of its stripes: the model then forgets those bytes (``unknown``)
until they are written again. Nothing wrong is ever read.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from array_sim.member_store import MemberOffline
from array_sim.raid.errors import UnrecoverableRead
from array_sim.raid.layout import STRIP
from array_sim.raid.store import RaidStore
from array_sim.units import PAGE_SIZE

from .test_raid_store import DISKS

PAGES = 2
SIZE = PAGES * PAGE_SIZE
positions = st.one_of(
    st.integers(0, SIZE - 1),
    st.integers(0, SIZE // STRIP - 1).map(lambda s: s * STRIP),
    st.integers(1, SIZE // STRIP - 1).map(lambda s: s * STRIP - 3),
)
lengths = st.one_of(st.integers(1, 600), st.integers(1, 3 * STRIP), st.sampled_from([STRIP, 2 * STRIP, 5 * STRIP + 17]))


class RaidMachine(RuleBasedStateMachine):
    @initialize(policy=st.sampled_from(sorted(DISKS)))
    def create(self, policy: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="raid-stateful-"))
        disks = DISKS[policy]
        self.store = RaidStore.create(self.tmp / "m", policy, disks, RaidStore.disk_size_for(policy, disks, SIZE))
        self.disks = disks
        self.model = np.zeros(SIZE, np.uint8)
        self.unknown = np.zeros(SIZE, bool)
        #: Where the next ``stream`` write begins (whole strips, ascending: what ``held`` holds).
        self.cursor = 0

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _clip(self, pos: int, length: int) -> tuple[int, int]:
        length = min(length, SIZE - pos, PAGE_SIZE - pos % PAGE_SIZE)
        return pos, length

    @rule(pos=positions, length=lengths, seed=st.integers(0, 2**32))
    def write(self, pos: int, length: int, seed: int) -> None:
        pos, length = self._clip(pos, length)
        data = random.Random(seed).randbytes(length)
        online = self.store.health().online
        try:
            self.store.write(pos // PAGE_SIZE, pos % PAGE_SIZE, data)
        except MemberOffline:
            assert not online
            return
        except UnrecoverableRead:
            self.unknown[pos : pos + length] = True
            return
        assert online
        self.model[pos : pos + length] = np.frombuffer(data, np.uint8)
        self.unknown[pos : pos + length] = False

    @rule(chunks=st.lists(st.integers(1, 5), min_size=1, max_size=4), restart=st.integers(0, 3),
          seed=st.integers(0, 2**32))
    def stream(self, chunks: list[int], restart: int, seed: int) -> None:
        """Writes of whole strips, each right after the one before (what ``held`` holds and completes),
        going on from the last stream or, now and then, from the start of a stripe further on."""
        if restart == 0 or self.cursor >= SIZE:
            self.cursor = (seed % (SIZE // STRIP // 12)) * 12 * STRIP  # 12 strips: whole stripes of every k
        for n, strips in enumerate(chunks):
            if self.cursor >= SIZE:
                return
            pos, length = self._clip(self.cursor, strips * STRIP)
            self.write(pos, length, seed + n)
            self.cursor = pos + length

    @rule()
    def settle(self) -> None:
        self.store.settle()

    @rule(pos=positions, length=lengths)
    def read(self, pos: int, length: int) -> None:
        pos, length = self._clip(pos, length)
        online = self.store.health().online
        try:
            got = np.frombuffer(self.store.read(pos // PAGE_SIZE, pos % PAGE_SIZE, length), np.uint8)
        except MemberOffline:
            assert not online
            return
        except UnrecoverableRead:
            assert self.store.lost_blocks or any(self.store._disks[d].bad for d in range(self.disks))
            return
        assert online
        known = ~self.unknown[pos : pos + length]
        assert np.array_equal(got[known], self.model[pos : pos + length][known])

    @rule(n=st.integers(0, 15))
    def fail_disk(self, n: int) -> None:
        self.store.fail_disk(n % self.disks)

    @rule(n=st.integers(0, 15))
    def replace_disk(self, n: int) -> None:
        failed = [d.slot for d in self.store.disks() if d.status == "failed"]
        if failed:
            self.store.replace_disk(failed[n % len(failed)])

    @rule(n=st.integers(0, 15), offset=st.integers(0, 40 * STRIP), length=st.integers(1, 3 * STRIP))
    def add_bad_sectors(self, n: int, offset: int, length: int) -> None:
        offset = min(offset, self.store.disk_size - 1)
        self.store.add_bad_sectors(n % self.disks, offset, min(length, self.store.disk_size - offset))

    @rule(budget=st.sampled_from([STRIP, 7 * STRIP, 1 << 22]))
    def background(self, budget: int) -> None:
        self.store.background_step(budget)

    @rule()
    def verify(self) -> None:
        online = self.store.health().online
        try:
            self.store.start_verify()
        except MemberOffline:
            assert not online

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = RaidStore.open(self.tmp / "m")

    @rule()
    def crash(self) -> None:
        """``kill -9``: the files as they are, nothing settled or saved, then a fresh open."""
        for disk in self.store._disks:
            disk.close()
        self.store._dirty.close()
        self.store = RaidStore.open(self.tmp / "m")

    @precondition(lambda self: hasattr(self, "store"))
    @invariant()
    def health_consistent(self) -> None:
        h = self.store.health()
        assert h.online == (h.raid_status != "failed")


# The fast loop's run; the whole suite also runs test_raid_machine_long (300 programs of 50 steps).
TestRaidMachine = RaidMachine.TestCase
TestRaidMachine.settings = settings(
    max_examples=15, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.slow
def test_raid_machine_long() -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        RaidMachine, settings=settings(max_examples=300, stateful_step_count=50, deadline=None)
    )


@pytest.mark.slow
def test_raid_machine_without_aio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same programs with the disks written by ``pwritev`` (``aio`` rule 3: the fallback)."""
    from hypothesis.stateful import run_state_machine_as_test

    monkeypatch.setenv("ARRAY_SIM_AIO", "off")
    run_state_machine_as_test(
        RaidMachine, settings=settings(max_examples=60, stateful_step_count=40, deadline=None)
    )
