"""RaidStore against the shared SlotStore contract, for every policy, healthy, degraded and mid-reconstruction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from array_sim.raid.policy import POLICIES
from array_sim.raid.store import RaidStore
from array_sim.units import PAGE_SIZE
from tests.engine.store_contract import SlotStoreContract

pytestmark = pytest.mark.usefixtures("disk_writes")  # conftest: aio, and pwritev in the whole suite

#: Smallest sensible disk count of each policy for the contract (raid50 needs two sets).
DISKS = {"raid6": 6, "raid6-nospares": 5, "raid10": 6, "raid10-nospares": 4, "raid50": 8,
         "raid50-nospares": 6, "raid5": 5, "raid5-nospares": 4}


def make(directory: Path, policy: str, pages: int = 5) -> RaidStore:
    disks = DISKS[policy]
    return RaidStore.create(directory, policy, disks, RaidStore.disk_size_for(policy, disks, pages * PAGE_SIZE))


#: Policies the fast loop (-m "not slow") runs the contract for; the others run in the whole suite.
FAST = {"raid6", "raid10"}


def policies(names: list[str]) -> list[object]:
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in names]


class _Reopen(SlotStoreContract):
    def reopen(self, store: RaidStore) -> RaidStore:  # type: ignore[override]
        store.close()
        return RaidStore.open(store.directory)


class TestHealthy(_Reopen):
    @pytest.fixture(params=policies(sorted(POLICIES)))
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RaidStore]:
        s = make(tmp_path / "m", request.param)
        yield s
        s.close()


class TestDegraded(_Reopen):
    """One disk failed and no spare taken (the spares failed first where the policy has them)."""

    @pytest.fixture(params=policies(sorted(POLICIES)))
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RaidStore]:
        s = make(tmp_path / "m", request.param)
        for info in s.disks():
            if info.status == "spare":
                s.fail_disk(info.slot)
        s.fail_disk(1)
        assert s.health().raid_status == "degraded"
        yield s
        s.close()


class TestReconstructing(_Reopen):
    """A disk failed, a spare took its place and is part-way rebuilt."""

    @pytest.fixture(params=policies(["raid6", "raid10", "raid50", "raid5"]))
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RaidStore]:
        s = make(tmp_path / "m", request.param)
        s.fail_disk(0)
        s.background_step(s.disk_size // 2)
        assert s.health().raid_status == "reconstructing"
        yield s
        s.close()
