"""RaidStore unit tests: policies, every failure set up to the tolerance, beyond it, latent errors, spares."""

from __future__ import annotations

import functools
import itertools
import random
from pathlib import Path

import pytest

from array_sim.errors import InvalidRequest
from array_sim.member_store import MemberOffline
from array_sim.raid.errors import UnrecoverableRead
from array_sim.raid.layout import STRIP
from array_sim.raid.policy import POLICIES, geometry
from array_sim.raid.store import RaidStore, disk_size_for
from array_sim.units import PAGE_SIZE

from .test_raid_store import DISKS, make, policies

pytestmark = pytest.mark.usefixtures("disk_writes")  # conftest: aio, and pwritev in the whole suite

SPAN = 3 * PAGE_SIZE  # bytes written in slots 0..2


@functools.lru_cache(maxsize=2)  # the same seeded bytes for every test (made once: 45 MiB of randbytes)
def _fill_plan(seed: int) -> tuple[bytes, tuple[tuple[int, bytes], ...], bytes]:
    """What ``_fill`` writes: three whole pages, then (position, bytes) writes; and the result."""
    rng = random.Random(seed)
    data = rng.randbytes(SPAN)
    model = bytearray(data)
    writes = []
    for _ in range(30):
        pos = rng.randrange(SPAN - 1)
        n = min(rng.randint(1, 300_000), SPAN - pos, PAGE_SIZE - pos % PAGE_SIZE)
        chunk = rng.randbytes(n)
        writes.append((pos, chunk))
        model[pos : pos + n] = chunk
    return data, tuple(writes), bytes(model)


def _fill(store: RaidStore, seed: int = 1) -> bytes:
    data, writes, model = _fill_plan(seed)
    for slot in range(3):
        store.write(slot, 0, data[slot * PAGE_SIZE : (slot + 1) * PAGE_SIZE])
    # unaligned partial writes on top (read-modify-write and reconstruct-write paths)
    for pos, chunk in writes:
        store.write(pos // PAGE_SIZE, pos % PAGE_SIZE, chunk)
    return model


def _read_all(store: RaidStore) -> bytes:
    return b"".join(store.read(slot, 0, PAGE_SIZE) for slot in range(3))


def _role_disks(store: RaidStore) -> list[int]:
    return [d.slot for d in store.disks() if d.role.startswith("set")]


def _sets(store: RaidStore) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for d in store.disks():
        if d.role.startswith("set"):
            out.setdefault(d.role.split(" position")[0], []).append(d.slot)
    return out


def test_policy_table_layouts() -> None:
    g = geometry("raid50", 16)
    assert (g.sets, g.width, g.spares) == (2, 7, 2)
    assert geometry("raid10", 12).sets == 5 and geometry("raid10", 12).spares == 2
    assert geometry("raid10-nospares", 12).sets == 6
    g6 = geometry("raid6", 12)
    assert (g6.sets, g6.width, g6.parity, g6.spares) == (1, 11, 2, 1)
    assert geometry("raid5", 8).width == 7
    assert POLICIES["raid50"].source == "inferred"


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_too_few_disks_refused(policy: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="at least"):
        RaidStore.create(tmp_path / "m", policy, POLICIES[policy].min_disks - 1, 16 * STRIP)


def test_odd_disks_for_raid10_nospares_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="even"):
        RaidStore.create(tmp_path / "m", "raid10-nospares", 7, 16 * STRIP)


@pytest.mark.parametrize(("policy", "disks"), [("raid6", 12), ("raid10", 12), ("raid50", 16), ("raid5", 7)])
def test_disk_size_for_gives_usable_capacity(policy: str, disks: int, tmp_path: Path) -> None:
    want = 7 * PAGE_SIZE + 1
    size = disk_size_for(policy, disks, want)
    assert size % STRIP == 0
    store = RaidStore.create(tmp_path / "m", policy, disks, size)
    assert store.capacity_pages * PAGE_SIZE >= 7 * PAGE_SIZE
    smaller = RaidStore.create(tmp_path / "n", policy, disks, size - STRIP)
    assert smaller._layout.capacity < want
    store.close()
    smaller.close()


def _fast_only(fast: set[str], names: list[str]) -> list[object]:
    """``names`` as parameters; those not in ``fast`` are marked slow (the whole suite runs them)."""
    return [pytest.param(n, marks=() if n in fast else pytest.mark.slow) for n in names]


# raid10 in the fast loop; raid6 (16 failure sets, each rebuilt: several seconds) and the
# other policies in the whole suite. The fast loop still reads raid6 with two disks failed
# (test_replace_makes_a_spare_... and test_reopen_mid_reconstruction_... below, the state machine).
@pytest.mark.parametrize("policy", _fast_only({"raid10"}, sorted(POLICIES)))
def test_every_tolerated_failure_set_reads_right(policy: str, tmp_path: Path) -> None:
    base = make(tmp_path / "m", policy)
    model = _fill(base)
    sets = _sets(base)
    base.close()
    tolerance = 2 if POLICIES[policy].level == 6 else 1
    # one set's disks, every combination up to the tolerance; plus one disk in every set at once
    first = next(iter(sets.values()))
    combos = [c for n in range(1, tolerance + 1) for c in itertools.combinations(first, n)]
    combos.append(tuple(s[0] for s in sets.values()))
    for combo in combos:
        store = RaidStore.open(tmp_path / "m")
        try:
            for spare in [d.slot for d in store.disks() if d.status == "spare"]:
                store.fail_disk(spare)  # so no reconstruction hides the degraded read path
            for d in combo:
                store.fail_disk(d)
            assert store.health().online, combo
            assert _read_all(store) == model, combo
        finally:
            store.close()
        # put the disks back for the next combination: rebuild on fresh disks
        store = RaidStore.open(tmp_path / "m")
        for info in store.disks():
            if info.status == "failed":
                store.replace_disk(info.slot)
        while store.background_step(1 << 22):
            pass
        assert store.health().raid_status == "ok"
        assert _read_all(store) == model
        store.close()


NOSPARES = ["raid6-nospares", "raid5-nospares", "raid10-nospares", "raid50-nospares"]


@pytest.mark.parametrize("policy", _fast_only({"raid6-nospares", "raid10-nospares"}, NOSPARES))
def test_beyond_tolerance_is_offline_for_good(policy: str, tmp_path: Path) -> None:
    events: list[tuple[str, str]] = []
    store = make(tmp_path / "m", policy)
    store.events = lambda level, message: events.append((level, message))
    _fill(store)
    first = next(iter(_sets(store).values()))
    tolerance = 2 if POLICIES[policy].level == 6 else 1
    for d in first[: tolerance + 1]:
        store.fail_disk(d)
    assert not store.health().online and store.health().raid_status == "failed"
    assert store.lost_blocks
    assert any(level == "ERROR" and "offline" in message for level, message in events)
    with pytest.raises(MemberOffline):
        store.read(0, 0, 4096)
    with pytest.raises(MemberOffline):
        store.write(0, 0, bytes(4096))
    store.close()
    store = RaidStore.open(tmp_path / "m")
    assert not store.health().online
    with pytest.raises(MemberOffline):
        store.read(1, 0, 1)
    store.close()


@pytest.mark.parametrize("policy", policies(["raid6", "raid5", "raid10", "raid50"]))  # raid6 and raid10 fast
def test_latent_error_corrected_and_counted(policy: str, tmp_path: Path) -> None:
    events: list[tuple[str, str]] = []
    store = make(tmp_path / "m", policy)
    store.events = lambda level, message: events.append((level, message))
    model = _fill(store)
    for i, d in enumerate(_role_disks(store)):
        store.add_bad_sectors(d, (2 * i + 1) * STRIP + 1000, 5000)
    assert _read_all(store) == model
    errors = {d.slot: d.errors for d in store.disks()}
    assert sum(errors.values()) >= 1
    assert any("Latent sector error corrected" in m for _, m in events)
    for i, d in enumerate(_role_disks(store)):
        assert bool(errors[d]) != store._disks[d].bad_in((2 * i + 1) * STRIP + 1000, 5000)
    assert _read_all(store) == model
    store.close()


def test_latent_error_without_redundancy_is_unrecoverable(tmp_path: Path) -> None:
    store = make(tmp_path / "m", "raid5-nospares")
    model = _fill(store)
    disks = _role_disks(store)
    store.fail_disk(disks[0])
    for d in disks[1:]:
        store.add_bad_sectors(d, 0, STRIP)
    seen_error = False
    for slot in range(3):
        for off in range(0, PAGE_SIZE, STRIP):
            try:
                got = store.read(slot, off, STRIP)
            except UnrecoverableRead:
                seen_error = True
            else:
                assert got == model[slot * PAGE_SIZE + off : slot * PAGE_SIZE + off + STRIP]
    assert seen_error
    store.close()


def test_replace_makes_a_spare_that_is_taken_when_degraded(tmp_path: Path) -> None:
    events: list[tuple[str, str]] = []
    store = make(tmp_path / "m", "raid6")
    store.events = lambda level, message: events.append((level, message))
    model = _fill(store)
    assert store.health().spares == 1
    store.fail_disk(0)
    assert store.health().raid_status == "reconstructing" and store.health().spares == 0
    with pytest.raises(InvalidRequest):
        store.replace_disk(1)
    store.replace_disk(0)
    assert store.disks()[0].status == "spare" and store.health().spares == 1
    while store.background_step(1 << 20):
        pass
    assert store.health().raid_status == "ok"
    messages = [m for _, m in events]
    assert "Disk 0 failed on member member." in messages
    assert any("Spare disk" in m for m in messages) and any("finished" in m for m in messages)
    # after reconstruction, two more failures (raid6) still read right
    store.fail_disk(1)
    store.fail_disk(2)
    assert _read_all(store) == model
    store.close()


def test_replace_when_degraded_without_spare_starts_reconstruction(tmp_path: Path) -> None:
    store = make(tmp_path / "m", "raid5-nospares")
    model = _fill(store)
    store.fail_disk(2)
    assert store.health().raid_status == "degraded"
    store.replace_disk(2)
    assert store.health().raid_status == "reconstructing"
    assert store.disks()[2].role.startswith("set")
    while store.background_step(1 << 20):
        pass
    store.fail_disk(0)
    assert _read_all(store) == model
    store.close()


def test_reopen_mid_reconstruction_resumes_from_cursor(tmp_path: Path) -> None:
    store = make(tmp_path / "m", "raid6", pages=12)
    model = _fill(store)
    store.fail_disk(3)
    steps = 0
    while store.background_step(5 * STRIP) and steps < 40:
        steps += 1
    pct = store.health().percentage
    assert store.health().raid_status == "reconstructing" and 0 < pct < 100
    store.close()
    store = RaidStore.open(tmp_path / "m")
    assert store.health().raid_status == "reconstructing" and store.health().percentage == pct
    assert _read_all(store) == model
    while store.background_step(1 << 20):
        pass
    store.fail_disk(0)
    store.fail_disk(1)
    assert _read_all(store) == model
    store.close()


def test_writes_during_reconstruction(tmp_path: Path) -> None:
    store = make(tmp_path / "m", "raid5")
    model = bytearray(_fill(store))
    store.fail_disk(1)
    rng = random.Random(5)
    while True:
        pos = rng.randrange(SPAN - 1)
        n = min(rng.randint(1, 200_000), SPAN - pos, PAGE_SIZE - pos % PAGE_SIZE)
        chunk = rng.randbytes(n)
        store.write(pos // PAGE_SIZE, pos % PAGE_SIZE, chunk)
        model[pos : pos + n] = chunk
        if not store.background_step(3 * STRIP):
            break
    store.fail_disk(0)
    assert _read_all(store) == bytes(model)
    store.close()


def test_disks_introspection(tmp_path: Path) -> None:
    store = make(tmp_path / "m", "raid10")
    infos = store.disks()
    assert [d.status for d in infos].count("spare") == 2
    assert infos[0].role == "set 1 position 1" and infos[1].role == "set 1 position 2"
    store.fail_disk(0)
    assert store.disks()[0].status == "failed" and store.disks()[0].role == ""
    assert store.disks()[4].reconstructing == 0
    store.close()
