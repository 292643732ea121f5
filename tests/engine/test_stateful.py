"""A model test of the block engine: random management and I/O sequences against plain bytes.

The model is a dict of volume name -> sparse disk and (volume, snapshot) ->
sparse disk, where a sparse disk is a dict of 4 KiB chunk -> bytes (missing
chunks read zeros). Each rule does one thing to the group and the same thing
to the model; after each I/O every volume and snapshot is read back over the
touched range (a write that leaks into a snapshot or a clone shows there), and
now and then every byte of every object is compared. Failing requests are
checked to change nothing, in the data or in the catalog.

Two tests run the same machine: ``TestEngineModel`` in the fast loop (profile
``quick``: a few short runs, seconds) and ``test_engine_model_full``, marked slow,
in the whole suite (profile ``ci``: under a minute and a half). Both report
failures unshrunk. ``HYPOTHESIS_PROFILE`` overrides both: ``thorough`` (more and
longer runs, shrinks failures; run it to get a short reproduction of a failure
the default run found, since the failing example is replayed first).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from datetime import datetime
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

from array_sim import DeviceOffline, Group, InvalidRequest, OutOfRange, WriteProtected
from array_sim.space import SpaceAccounting
from array_sim.units import CHUNK_SIZE, PAGE_SIZE, SECTOR_SIZE, GiB, MiB, pages_for

from .helpers import catalog_rows

SECTORS_PER_PAGE = PAGE_SIZE // SECTOR_SIZE
SECTORS_PER_CHUNK = CHUNK_SIZE // SECTOR_SIZE
ZERO_CHUNK = bytes(CHUNK_SIZE)
MAX_PAGES = 4
MAX_VOLUMES = 5
MAX_SNAPSHOTS = 10
FIXED_TIME = datetime(2024, 5, 6, 7, 8, 9)
#: 1 to 3 pages, as whole pages or as a size in MiB that the group rounds up.
VOLUME_SIZES = st.one_of(
    st.integers(1, 3).map(lambda p: p * PAGE_SIZE), st.integers(1, 3 * PAGE_SIZE // MiB).map(lambda m: m * MiB)
)


def _without_shrinking(examples: int, steps: int) -> settings:
    """No shrinking: a failure here costs minutes of shrinking; the saved example replays at once
    under "thorough", which shrinks."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


_PROFILES = {
    # The fast loop's run: the same machine, fewer and shorter programs.
    "quick": _without_shrinking(4, 25),
    # The whole suite's run.
    "ci": _without_shrinking(40, 50),
    "thorough": settings(
        max_examples=200,
        stateful_step_count=80,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    ),
}


def _profile(default: str) -> settings:
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    return _PROFILES[name] if name in _PROFILES else settings.get_profile(name)


class SparseDisk:
    """The model of one volume or snapshot: 4 KiB chunks that are not all zeros."""

    def __init__(self, size: int, chunks: dict[int, bytes] | None = None) -> None:
        self.size = size
        self.chunks = dict(chunks or {})

    def copy(self) -> SparseDisk:
        return SparseDisk(self.size, self.chunks)

    def _put(self, index: int, lo: int, piece: bytes) -> None:
        if lo == 0 and len(piece) == CHUNK_SIZE:
            new = bytes(piece)
        else:
            buffer = bytearray(self.chunks.get(index, ZERO_CHUNK))
            buffer[lo : lo + len(piece)] = piece
            new = bytes(buffer)
        if new == ZERO_CHUNK:
            self.chunks.pop(index, None)
        else:
            self.chunks[index] = new

    def write(self, offset: int, data: bytes) -> None:
        end, position = offset + len(data), offset
        while position < end:
            index, lo = divmod(position, CHUNK_SIZE)
            span = min(CHUNK_SIZE - lo, end - position)
            self._put(index, lo, data[position - offset : position - offset + span])
            position += span

    def fill(self, offset: int, length: int, block: bytes) -> None:
        """Every 512-byte block of the range becomes ``block`` (WRITE SAME)."""
        whole = block * SECTORS_PER_CHUNK
        end, position = offset + length, offset
        while position < end:
            index, lo = divmod(position, CHUNK_SIZE)
            span = min(CHUNK_SIZE - lo, end - position)
            if span == CHUNK_SIZE:
                if whole == ZERO_CHUNK:
                    self.chunks.pop(index, None)
                else:
                    self.chunks[index] = whole
            else:
                self._put(index, lo, whole[lo : lo + span])
            position += span

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        first, last = offset // CHUNK_SIZE, -(-(offset + length) // CHUNK_SIZE)
        for index in range(first, last):
            chunk = self.chunks.get(index)
            if chunk is None:
                continue
            lo = max(offset, index * CHUNK_SIZE)
            hi = min(offset + length, (index + 1) * CHUNK_SIZE)
            out[lo - offset : hi - offset] = chunk[lo - index * CHUNK_SIZE : hi - index * CHUNK_SIZE]
        return bytes(out)

    def page_is_zero(self, page: int) -> bool:
        first = page * PAGE_SIZE // CHUNK_SIZE
        return not any(i in self.chunks for i in range(first, first + PAGE_SIZE // CHUNK_SIZE))

    def resize(self, size: int) -> None:
        self.size = size
        limit = size // CHUNK_SIZE
        self.chunks = {i: c for i, c in self.chunks.items() if i < limit}


def _payload(seed: int | None, length: int) -> bytes:
    """Write data: zeros when ``seed`` is None, else bytes from a seeded generator."""
    return bytes(length) if seed is None else random.Random(seed).randbytes(length)


def sector_ranges(num_blocks: int) -> st.SearchStrategy[tuple[int, int]]:
    """(lba, count) inside the device, weighted to chunk and page boundaries."""
    pages = num_blocks // SECTORS_PER_PAGE
    choices = [
        st.tuples(st.integers(0, num_blocks - 1), st.integers(1, 24)),
        st.tuples(
            st.integers(0, num_blocks // SECTORS_PER_CHUNK - 1).map(lambda c: c * SECTORS_PER_CHUNK),
            st.integers(-SECTORS_PER_CHUNK + 1, SECTORS_PER_CHUNK - 1),
            st.integers(1, 3 * SECTORS_PER_CHUNK),
        ).map(lambda t: (t[0] + t[1], t[2])),
        st.tuples(st.integers(0, num_blocks - 1), st.integers(1, 512 * 1024 // SECTOR_SIZE)),
        st.tuples(st.integers(0, pages - 1), st.integers(1, 2)).map(
            lambda t: (t[0] * SECTORS_PER_PAGE, t[1] * SECTORS_PER_PAGE)
        ),
    ]
    if pages > 1:
        choices.append(
            st.tuples(st.integers(1, pages - 1), st.integers(-40, 40), st.integers(1, 80)).map(
                lambda t: (t[0] * SECTORS_PER_PAGE + t[1], t[2])
            )
        )

    def clamp(pair: tuple[int, int]) -> tuple[int, int]:
        lba = min(max(pair[0], 0), num_blocks - 1)
        return lba, max(1, min(pair[1], num_blocks - lba))

    return st.one_of(choices).map(clamp)


def group_state(group: Group) -> tuple[object, ...]:
    """The catalog and what the group holds in memory, for 'nothing changed' checks."""
    volumes = [asdict(v) for v in group.volume_list()]
    snapshots = sorted((asdict(s) for s in group.snapshots.values()), key=lambda s: s["id"])
    pools = {pool_id: group.pool_free(pool_id) for pool_id in group.pools}
    return catalog_rows(group), volumes, snapshots, pools, group.members()


def check_structure(group: Group) -> None:
    """Page tables, reference counts, slots and space figures agree with the catalog and each other."""
    tables, db = group.tables, group.catalog.db
    rows: dict[int, dict[int, int]] = {}
    for map_id, index, pid in db.execute("SELECT map_id, page_index, phys_id FROM page_map"):
        rows.setdefault(map_id, {})[index] = pid
    assert {m: t for m, t in tables.maps.items() if t} == rows
    owners = [v.map_id for v in group.volumes.values()] + [s.map_id for s in group.snapshots.values()]
    assert len(set(owners)) == len(owners)
    assert set(rows) <= set(owners), "page tables that belong to no volume or snapshot"
    phys = {pid: (member, slot, backing) for pid, member, slot, backing in db.execute("SELECT * FROM phys_pages")}
    assert phys == {p.id: (*p.address, p.backing) for p in tables.phys.values()}
    refs: Counter[int] = Counter()
    for table in rows.values():
        refs.update(table.values())
    refs.update(p.backing for p in tables.phys.values() if p.backing is not None)
    assert {pid: p.refs for pid, p in tables.phys.items()} == {pid: refs[pid] for pid in tables.phys}
    assert all(p.refs > 0 for p in tables.phys.values()), "physical pages that nothing references"
    used = Counter(p.address[0] for p in tables.phys.values())
    for member in group.placement.members.values():
        assert member.capacity_pages - member.free_pages == used[member.id]
    fresh = SpaceAccounting(tables)
    for volume in group.volumes.values():
        snaps = group.snapshots_of(volume)
        assert group.space.snapshot_in_use(volume, snaps) == fresh.snapshot_in_use(volume, snaps)
        if volume.thin:
            in_use = group.space.in_use(volume)
            assert group.space.thin_min_reserve(volume) <= volume.reserve_pages <= volume.pages
            assert in_use <= volume.reserve_pages
    for pool_id in group.pools:
        assert group.pool_free(pool_id) >= 0


class EngineMachine(RuleBasedStateMachine):
    """Drives one group; ``self.volumes`` and ``self.snaps`` are the model."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="array-sim-stateful-"))
        self.group = Group.init(self.directory, member_size=64 * GiB, clock=lambda: FIXED_TIME)
        # A reserve so large that delete-oldest never removes a snapshot
        # behind the model's back (the invariant below checks it does not).
        self.group.set_volume_default("snap_reserve", 10000)
        self.volumes: dict[str, SparseDisk] = {}
        self.snaps: dict[tuple[str, str], SparseDisk] = {}
        self.online_snaps: set[tuple[str, str]] = set()
        self.serial = 0

    def teardown(self) -> None:
        try:
            if self.group is not None:
                self.compare_everything()
        finally:
            if self.group is not None:
                self.group.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    # --------------------------------------------------------------- helpers

    def _name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def _targets(self) -> list[tuple[str, str | None]]:
        """Objects that take I/O: every volume and every online snapshot."""
        return [(v, None) for v in sorted(self.volumes)] + sorted(self.online_snaps)

    def _all(self) -> list[tuple[str, str | None]]:
        return [(v, None) for v in sorted(self.volumes)] + sorted(self.snaps)

    def _model(self, key: tuple[str, str | None]) -> SparseDisk:
        return self.volumes[key[0]] if key[1] is None else self.snaps[key]  # type: ignore[index]

    def _read(self, key: tuple[str, str | None], offset: int, length: int) -> bytes:
        """Through the device when online; through the page tables for an offline snapshot."""
        volume, snap = key
        if snap is None or key in self.online_snaps:
            return self.group.device(volume, snap).read(offset // SECTOR_SIZE, length // SECTOR_SIZE)
        map_id = self.group.snapshot(volume, snap).map_id
        parts, done = [], 0
        while done < length:
            index, in_page = divmod(offset + done, PAGE_SIZE)
            size = min(PAGE_SIZE - in_page, length - done)
            parts.append(self.group.tables.read(map_id, index, in_page, size))
            done += size
        return b"".join(parts)

    def check_range(self, offset: int, length: int) -> None:
        """Every object reads as the model over a byte range (widened by a chunk each side)."""
        for key in self._all():
            model = self._model(key)
            lo = max(0, (offset // CHUNK_SIZE - 1) * CHUNK_SIZE)
            hi = min(model.size, (-(-(offset + length) // CHUNK_SIZE) + 1) * CHUNK_SIZE)
            if lo < hi:
                assert self._read(key, lo, hi - lo) == model.read(lo, hi - lo), f"{key} differs in [{lo}, {hi})"

    def compare_everything(self) -> None:
        """Every byte of every volume and snapshot, and the structure under them."""
        for key in self._all():
            model = self._model(key)
            volume, snapshot = key
            record = self.group.volume(volume) if snapshot is None else self.group.snapshot(volume, snapshot)
            assert record.pages * PAGE_SIZE == model.size, key
            for page in range(record.pages):
                if model.page_is_zero(page) and not self.group.tables.is_mapped(record.map_id, page):
                    continue
                got = self._read(key, page * PAGE_SIZE, PAGE_SIZE)
                assert got == model.read(page * PAGE_SIZE, PAGE_SIZE), f"{key} differs in page {page}"
        check_structure(self.group)

    def _volume(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.volumes)), label="volume")

    def _snapshot(self, data: st.DataObject) -> tuple[str, str]:
        return data.draw(st.sampled_from(sorted(self.snaps)), label="snapshot")

    def _take_snapshot(self, volume: str, snapshot_name: str) -> None:
        self.snaps[(volume, snapshot_name)] = self.volumes[volume].copy()

    # ------------------------------------------------------------- invariants

    @invariant()
    def names_and_states_match(self) -> None:
        group = self.group
        assert sorted(v.name for v in group.volume_list()) == sorted(self.volumes)
        held = {(group.volumes[s.volume_id].name, s.name) for s in group.snapshots.values()}
        assert held == set(self.snaps), "a snapshot appeared or vanished behind the model's back"
        online = {(group.volumes[s.volume_id].name, s.name) for s in group.snapshots.values() if s.online}
        assert online == self.online_snaps
        for volume in group.volumes.values():
            assert volume.online and not volume.read_only, volume.name
            assert volume.pages * PAGE_SIZE == self.volumes[volume.name].size

    # ------------------------------------------------------------------ rules

    @initialize(thin=st.booleans(), size=VOLUME_SIZES)
    def first_volume(self, thin: bool, size: int) -> None:
        self.create_volume(thin, size)

    @precondition(lambda self: len(self.volumes) < MAX_VOLUMES)
    @rule(thin=st.booleans(), size=VOLUME_SIZES)
    def create_volume(self, thin: bool, size: int) -> None:
        name = self._name("v")
        volume = self.group.create_volume(name, size, thin=thin)
        assert volume.pages == pages_for(size)
        self.volumes[name] = SparseDisk(volume.pages * PAGE_SIZE)

    @precondition(lambda self: self.volumes)
    @rule(data=st.data(), seeds=st.lists(st.one_of(st.none(), st.integers(0, 2**32)), min_size=1, max_size=4))
    def write(self, data: st.DataObject, seeds: list[int | None]) -> None:
        for seed in seeds:
            key = data.draw(st.sampled_from(self._targets()), label="target")
            model = self._model(key)
            lba, count = data.draw(sector_ranges(model.size // SECTOR_SIZE), label="range")
            payload = _payload(seed, count * SECTOR_SIZE)
            self.group.device(*key).write(lba, payload, fua=bool(seed and seed % 7 == 0))
            model.write(lba * SECTOR_SIZE, payload)
            self.check_range(lba * SECTOR_SIZE, len(payload))

    @precondition(lambda self: self.volumes)
    @rule(data=st.data())
    def unmap(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self._targets()), label="target")
        model = self._model(key)
        lba, count = data.draw(sector_ranges(model.size // SECTOR_SIZE), label="range")
        self.group.device(*key).unmap(lba, count)
        model.fill(lba * SECTOR_SIZE, count * SECTOR_SIZE, bytes(SECTOR_SIZE))
        self.check_range(lba * SECTOR_SIZE, count * SECTOR_SIZE)

    @precondition(lambda self: self.volumes)
    @rule(data=st.data(), seed=st.one_of(st.none(), st.integers(0, 2**32)), deallocate=st.booleans())
    def write_same(self, data: st.DataObject, seed: int | None, deallocate: bool) -> None:
        key = data.draw(st.sampled_from(self._targets()), label="target")
        model = self._model(key)
        lba, count = data.draw(sector_ranges(model.size // SECTOR_SIZE), label="range")
        block = _payload(seed, SECTOR_SIZE)
        self.group.device(*key).write_same(lba, count, block, unmap=deallocate)
        model.fill(lba * SECTOR_SIZE, count * SECTOR_SIZE, block)
        self.check_range(lba * SECTOR_SIZE, count * SECTOR_SIZE)

    @precondition(lambda self: self.volumes and len(self.snaps) < MAX_SNAPSHOTS)
    @rule(data=st.data(), named=st.booleans(), online=st.booleans())
    def create_snapshot(self, data: st.DataObject, named: bool, online: bool) -> None:
        volume = self._volume(data)
        snapshot = self.group.create_snapshot(volume, self._name("s") if named else None)
        assert not snapshot.online and not snapshot.read_only
        self._take_snapshot(volume, snapshot.name)
        if online:
            self.group.set_snapshot_online(volume, snapshot.name, True)
            self.online_snaps.add((volume, snapshot.name))

    @precondition(lambda self: self.snaps)
    @rule(data=st.data())
    def delete_snapshot(self, data: st.DataObject) -> None:
        key = self._snapshot(data)
        self.group.delete_snapshot(*key)
        del self.snaps[key]
        self.online_snaps.discard(key)

    @precondition(lambda self: self.snaps)
    @rule(data=st.data())
    def toggle_snapshot_online(self, data: st.DataObject) -> None:
        key = self._snapshot(data)
        online = key not in self.online_snaps
        self.group.set_snapshot_online(*key, online)
        if online:
            self.online_snaps.add(key)
        else:
            self.online_snaps.discard(key)

    @precondition(lambda self: self.volumes and len(self.volumes) < MAX_VOLUMES)
    @rule(data=st.data(), of_snapshot=st.booleans())
    def clone(self, data: st.DataObject, of_snapshot: bool) -> None:
        name = self._name("c")
        if of_snapshot and self.snaps:
            volume, snap = self._snapshot(data)
            source = self.snaps[(volume, snap)]
            clone = self.group.clone_volume(volume, name, snapshot=snap)
        else:
            volume, snap = self._volume(data), None
            source = self.volumes[volume]
            clone = self.group.clone_volume(volume, name)
        assert clone.online and clone.thin == self.group.volume(volume).thin
        self.volumes[name] = source.copy()
        self.check_range(0, min(source.size, 64 * 1024))

    @precondition(lambda self: self.snaps)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        volume, snap = self._snapshot(data)
        group = self.group
        group.set_volume_online(volume, False)
        if (volume, snap) in self.online_snaps:
            group.set_snapshot_online(volume, snap, False)
            self.online_snaps.discard((volume, snap))
        saved = group.restore_volume(volume, snap)
        group.set_volume_online(volume, True)
        self._take_snapshot(volume, saved.name)
        self.volumes[volume] = self.snaps[(volume, snap)].copy()

    @precondition(lambda self: self.volumes)
    @rule(data=st.data())
    def delete_volume(self, data: st.DataObject) -> None:
        volume = self._volume(data)
        self.group.set_volume_online(volume, False)
        self.group.delete_volume(volume)
        del self.volumes[volume]
        for key in [k for k in self.snaps if k[0] == volume]:
            del self.snaps[key]
            self.online_snaps.discard(key)

    @precondition(lambda self: self.volumes)
    @rule(data=st.data(), snapshot=st.booleans())
    def grow(self, data: st.DataObject, snapshot: bool) -> None:
        volume = self._volume(data)
        pages = self.volumes[volume].size // PAGE_SIZE
        size = data.draw(st.integers(pages * PAGE_SIZE // MiB, MAX_PAGES * PAGE_SIZE // MiB), label="MiB") * MiB
        taken = self.group.resize_volume(volume, size, snapshot=snapshot)
        assert (taken is not None) == snapshot
        if taken is not None:
            self._take_snapshot(volume, taken.name)
        self.volumes[volume].resize(pages_for(size) * PAGE_SIZE)

    @precondition(lambda self: any(m.size > PAGE_SIZE for m in self.volumes.values()))
    @rule(data=st.data(), snapshot=st.booleans())
    def shrink(self, data: st.DataObject, snapshot: bool) -> None:
        volume = data.draw(st.sampled_from(sorted(v for v, m in self.volumes.items() if m.size > PAGE_SIZE)))
        pages = self.volumes[volume].size // PAGE_SIZE
        size = data.draw(st.integers(1, (pages - 1) * PAGE_SIZE // MiB), label="MiB") * MiB
        self.group.set_volume_online(volume, False)
        taken = self.group.resize_volume(volume, size, snapshot=snapshot)
        self.group.set_volume_online(volume, True)
        if taken is not None:
            self._take_snapshot(volume, taken.name)
        self.volumes[volume].resize(pages_for(size) * PAGE_SIZE)

    @precondition(lambda self: self.volumes)
    @rule(data=st.data())
    def rename_volume(self, data: st.DataObject) -> None:
        old = self._volume(data)
        new = self._name("r")
        iqn = self.group.volume(old).iqn
        self.group.rename_volume(old, new)
        assert self.group.volume(new).iqn == iqn
        self.volumes[new] = self.volumes.pop(old)
        for key in [k for k in self.snaps if k[0] == old]:
            self.snaps[(new, key[1])] = self.snaps.pop(key)
            if key in self.online_snaps:
                self.online_snaps.discard(key)
                self.online_snaps.add((new, key[1]))

    @precondition(lambda self: self.volumes)
    @rule(data=st.data(), seed=st.integers(0, 2**32))
    def refused_requests(self, data: st.DataObject, seed: int) -> None:
        """Requests the PS rules refuse change nothing, in the data or the catalog."""
        group = self.group
        volume = self._volume(data)
        model = self.volumes[volume]
        blocks = model.size // SECTOR_SIZE
        lba, count = data.draw(sector_ranges(blocks), label="range")
        count = min(count, 64)
        payload = _payload(seed, count * SECTOR_SIZE)
        before = group_state(group)
        device = group.device(volume)
        with pytest.raises(OutOfRange):
            device.write(blocks - count + 1, payload)
        with pytest.raises(OutOfRange):
            device.read(blocks, 1)
        with pytest.raises(InvalidRequest):
            group.delete_volume(volume)
        if model.size > PAGE_SIZE:
            with pytest.raises(InvalidRequest):
                group.resize_volume(volume, PAGE_SIZE)
        offline = [k for k in self.snaps if k[0] == volume and k not in self.online_snaps]
        if offline:
            with pytest.raises(DeviceOffline):
                group.device(*offline[0]).write(lba, payload)
        snaps = [k for k in self.snaps if k[0] == volume]
        if snaps:
            with pytest.raises(InvalidRequest):
                group.restore_volume(*snaps[0])
        assert group_state(group) == before
        group.set_volume_read_only(volume, True)
        with pytest.raises(WriteProtected):
            device.write(lba, payload)
        with pytest.raises(WriteProtected):
            device.unmap(lba, count)
        with pytest.raises(WriteProtected):
            device.write_same(lba, count, payload[:SECTOR_SIZE])
        group.set_volume_read_only(volume, False)
        assert group_state(group) == before
        self.check_range(lba * SECTOR_SIZE, len(payload))

    @rule()
    def reopen(self) -> None:
        """Close and open the group: the catalog and the data come back as they were."""
        group = self.group
        maps = {m: dict(t) for m, t in group.tables.maps.items() if t}
        phys = {pid: (p.address, p.backing, p.refs) for pid, p in group.tables.phys.items()}
        state = group_state(group)
        group.close()
        self.group = None  # type: ignore[assignment]
        self.group = Group.open(self.directory, clock=lambda: FIXED_TIME)
        assert {m: t for m, t in self.group.tables.maps.items() if t} == maps
        assert {pid: (p.address, p.backing, p.refs) for pid, p in self.group.tables.phys.items()} == phys
        assert group_state(self.group) == state
        for key in self._all():
            model = self._model(key)
            for index in sorted(model.chunks)[:: max(1, len(model.chunks) // 64)]:
                assert self._read(key, index * CHUNK_SIZE, CHUNK_SIZE) == model.chunks[index], (key, index)

    @rule()
    def check_everything(self) -> None:
        self.compare_everything()


EngineMachine.TestCase.settings = _profile("quick")
TestEngineModel = EngineMachine.TestCase


@pytest.mark.slow
def test_engine_model_full() -> None:
    """The whole suite's run of the machine: the ``ci`` profile (40 programs of 50 steps)."""
    run_state_machine_as_test(EngineMachine, settings=_profile("ci"))
