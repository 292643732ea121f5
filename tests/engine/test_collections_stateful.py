"""A model test of collections: random writes, collections, snapshot collections, restores and deletes
against plain bytes.

The model keeps each volume's bytes (two windows where writes land), each collection's volumes,
and each snapshot collection as {volume: (snapshot name, bytes at the time it was taken)}. A
snapshot collection taken is checked at once to hold, in every snapshot, exactly what its volume
held at that moment; restores, deletes and reopens are checked against the model after each step.
``TestCollectionModel`` runs in the fast loop (a few short programs); ``test_collection_model_full``,
marked slow, runs more and longer ones (``HYPOTHESIS_PROFILE`` as in test_stateful).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
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

from array_sim import Group, InvalidRequest
from array_sim.member_admin import FILE_LAYOUT
from array_sim.units import PAGE_SIZE, SECTOR_SIZE, GiB

from .helpers import state

WHEN = datetime(2024, 5, 6, 7, 8, 9)
VOLUMES = ("a", "b", "c", "d")
#: Writes land in one of two windows of a two-page volume: its start, and across its page boundary.
SPANS = (0, PAGE_SIZE - 8 * SECTOR_SIZE)
WINDOW = 48 * SECTOR_SIZE


class Model:
    """What a volume holds in the two windows (the rest is never written: zeros)."""

    def __init__(self) -> None:
        self.windows = {span: bytearray(WINDOW) for span in SPANS}

    def copy(self) -> Model:
        model = Model()
        model.windows = {span: bytearray(data) for span, data in self.windows.items()}
        return model

    def write(self, offset: int, data: bytes) -> None:
        span = max(s for s in SPANS if s <= offset)
        self.windows[span][offset - span : offset - span + len(data)] = data


def _settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples, stateful_step_count=steps, deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip


_PROFILES = {"quick": _settings(3, 25), "ci": _settings(30, 40), "thorough": settings(max_examples=200, deadline=None)}


def _profile(default: str) -> settings:
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    return _PROFILES[name] if name in _PROFILES else settings.get_profile(name)


class CollectionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="array-sim-collections-"))
        self.group = Group.init(self.directory, member_size=64 * GiB, clock=lambda: WHEN, raid_policy=FILE_LAYOUT)
        self.group.set_volume_default("snap_reserve", 10000)  # delete-oldest never fires behind the model
        self.volumes: dict[str, Model] = {}
        self.collections: dict[str, list[str]] = {}
        #: (collection, snapshot collection) -> {volume: (snapshot name, its bytes)}
        self.snapcols: dict[tuple[str, str], dict[str, tuple[str, Model]]] = {}
        self.made_with: dict[tuple[str, str], int] = {}

    def teardown(self) -> None:
        try:
            self.check_data()
        finally:
            self.group.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    # --------------------------------------------------------------- helpers

    def _bytes(self, volume: str, snapshot: str | None = None) -> dict[int, bytes]:
        """The two windows of a volume or snapshot, read through its page table."""
        record = self.group.volume(volume) if snapshot is None else self.group.snapshot(volume, snapshot)
        windows = {}
        for span in SPANS:
            pieces, at = [], span
            while at < span + WINDOW:
                page, in_page = divmod(at, PAGE_SIZE)
                size = min(PAGE_SIZE - in_page, span + WINDOW - at)
                pieces.append(self.group.tables.read(record.map_id, page, in_page, size))
                at += size
            windows[span] = b"".join(pieces)
        return windows

    def _taken(self, collection: str, name: str) -> None:
        """A snapshot collection the group just made: one snapshot per volume, each as its volume is now."""
        snapcol = self.group.snapshot_collection(collection, name)
        snaps = self.group.snapcol_snapshots(snapcol)
        assert sorted(self.group.volumes[s.volume_id].name for s in snaps) == sorted(self.collections[collection])
        assert len({s.created for s in snaps}) == 1
        members = {}
        for snap in snaps:
            volume = self.group.volumes[snap.volume_id].name
            members[volume] = (snap.name, self.volumes[volume].copy())
            assert self._bytes(volume, snap.name) == self._bytes(volume)
        self.snapcols[(collection, name)] = members
        self.made_with[(collection, name)] = len(members)

    def check_data(self) -> None:
        for volume, model in self.volumes.items():
            assert self._bytes(volume) == model.windows, volume
        for members in self.snapcols.values():
            for volume, (snapshot, model) in members.items():
                assert self._bytes(volume, snapshot) == model.windows, (volume, snapshot)

    def _forget_snapshot(self, volume: str, snapshot: str) -> None:
        for key, members in list(self.snapcols.items()):
            if members.get(volume, ("",))[0] == snapshot:
                del members[volume]
                if not members:
                    del self.snapcols[key], self.made_with[key]

    # ------------------------------------------------------------- invariants

    @invariant()
    def collections_match(self) -> None:
        group = self.group
        assert {c.name: [group.volumes[i].name for i in c.volume_ids] for c in group.collections()} == self.collections
        held = {}
        for collection in self.collections:
            for snapcol in group.snapshot_collections(collection):
                snaps = {group.volumes[s.volume_id].name: s.name for s in group.snapcol_snapshots(snapcol)}
                held[(collection, snapcol.name)] = snaps
                assert snapcol.complete == (len(snaps) == self.made_with[(collection, snapcol.name)])
        assert held == {key: {v: s for v, (s, _) in members.items()} for key, members in self.snapcols.items()}

    # ------------------------------------------------------------------ rules

    @initialize()
    def volumes_made(self) -> None:
        for name in VOLUMES:
            self.group.create_volume(name, 2 * PAGE_SIZE, thin=True)
            self.volumes[name] = Model()

    @precondition(lambda self: self.volumes)
    @rule(data=st.data(), seed=st.integers(0, 2**32), span=st.sampled_from(SPANS), blocks=st.integers(1, 24))
    def write(self, data: st.DataObject, seed: int, span: int, blocks: int) -> None:
        volume = data.draw(st.sampled_from(sorted(self.volumes)))
        offset = span + data.draw(st.integers(0, 16)) * SECTOR_SIZE
        payload = random.Random(seed).randbytes(blocks * SECTOR_SIZE)
        self.group.device(volume).write(offset // SECTOR_SIZE, payload)
        self.volumes[volume].write(offset, payload)

    @precondition(lambda self: self.volumes and len(self.collections) < 3)
    @rule(data=st.data())
    def create_collection(self, data: st.DataObject) -> None:
        members = data.draw(st.lists(st.sampled_from(sorted(self.volumes)), min_size=1, max_size=3, unique=True))
        name = f"c{len(self.collections)}-{data.draw(st.integers(0, 999))}"
        if name in self.collections:
            return
        self.group.create_collection(name, members)
        self.collections[name] = members

    @precondition(lambda self: self.collections)
    @rule(data=st.data())
    def add_or_remove(self, data: st.DataObject) -> None:
        collection = data.draw(st.sampled_from(sorted(self.collections)))
        volume = data.draw(st.sampled_from(sorted(self.volumes)))
        members = self.collections[collection]
        if volume not in members:
            self.group.add_to_collection(collection, volume)
            members.append(volume)
        elif len(members) > 1:
            self.group.remove_from_collection(collection, volume)
            members.remove(volume)

    @precondition(lambda self: any(self.collections.values()))
    @rule(data=st.data(), named=st.booleans())
    def snapshot_collection(self, data: st.DataObject, named: bool) -> None:
        collection = data.draw(st.sampled_from(sorted(c for c, m in self.collections.items() if m)))
        name = f"s{len(self.snapcols)}-{data.draw(st.integers(0, 999))}" if named else None
        if (collection, name) in self.snapcols:
            return
        self._taken(collection, self.group.create_snapshot_collection(collection, name).name)

    @precondition(lambda self: any(self.collections.values()))
    @rule(data=st.data())
    def refused_snapshot_collection(self, data: st.DataObject) -> None:
        """A member volume without snapshot reserve: nothing at all is taken."""
        collection = data.draw(st.sampled_from(sorted(c for c, m in self.collections.items() if m)))
        volume = self.group.volume(data.draw(st.sampled_from(self.collections[collection])))
        reserve = volume.snap_reserve
        volume.snap_reserve = 0  # as configure_volume would set it (it refuses 0% on a volume with snapshots)
        before = state(self.group)
        with pytest.raises(InvalidRequest, match="no snapshot reserve"):
            self.group.create_snapshot_collection(collection)
        assert state(self.group) == before
        volume.snap_reserve = reserve

    @precondition(lambda self: self.snapcols)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.snapcols)))
        collection, name = key
        members = self.snapcols[key]
        for volume in members:
            self.group.set_volume_online(volume, False)
        if len(members) < self.made_with[key]:
            with pytest.raises(InvalidRequest, match="incomplete"):
                self.group.restore_snapshot_collection(collection, name)
        else:
            saved = self.group.restore_snapshot_collection(collection, name)
            kept = {v: (s.name, self.volumes[v].copy()) for v in members
                    for s in self.group.snapcol_snapshots(saved) if self.group.volumes[s.volume_id].name == v}
            assert set(kept) == set(members)
            self.snapcols[(collection, saved.name)] = kept
            self.made_with[(collection, saved.name)] = len(kept)
            for volume, (_, model) in members.items():
                self.volumes[volume] = model.copy()
        for volume in members:
            self.group.set_volume_online(volume, True)

    @precondition(lambda self: self.snapcols)
    @rule(data=st.data(), online=st.booleans())
    def set_online(self, data: st.DataObject, online: bool) -> None:
        collection, name = data.draw(st.sampled_from(sorted(self.snapcols)))
        self.group.set_snapshot_collection_online(collection, name, online)
        snapcol = self.group.snapshot_collection(collection, name)
        assert {s.online for s in self.group.snapcol_snapshots(snapcol)} == {online}
        self.group.set_snapshot_collection_online(collection, name, False)

    @precondition(lambda self: self.snapcols)
    @rule(data=st.data(), whole=st.booleans())
    def delete(self, data: st.DataObject, whole: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.snapcols)))
        if whole:
            self.group.delete_snapshot_collection(*key)
            del self.snapcols[key], self.made_with[key]
            return
        volume = data.draw(st.sampled_from(sorted(self.snapcols[key])))
        snapshot = self.snapcols[key][volume][0]
        self.group.delete_snapshot(volume, snapshot)
        self._forget_snapshot(volume, snapshot)

    @precondition(lambda self: len(self.volumes) > 1)
    @rule(data=st.data())
    def delete_volume(self, data: st.DataObject) -> None:
        volume = data.draw(st.sampled_from(sorted(self.volumes)))
        self.group.set_volume_online(volume, False)
        self.group.delete_volume(volume)
        del self.volumes[volume]
        for members in self.collections.values():
            if volume in members:
                members.remove(volume)
        for key in list(self.snapcols):
            if volume in self.snapcols[key]:
                self._forget_snapshot(volume, self.snapcols[key][volume][0])

    @precondition(lambda self: self.collections)
    @rule(data=st.data())
    def delete_collection(self, data: st.DataObject) -> None:
        collection = data.draw(st.sampled_from(sorted(self.collections)))
        self.group.delete_collection(collection)
        del self.collections[collection]
        for key in [k for k in self.snapcols if k[0] == collection]:
            del self.snapcols[key], self.made_with[key]  # the snapshots stay, as ordinary ones

    @rule()
    def reopen(self) -> None:
        self.group.close()
        self.group = Group.open(self.directory, clock=lambda: WHEN)
        self.check_data()


CollectionMachine.TestCase.settings = _profile("quick")
TestCollectionModel = CollectionMachine.TestCase


@pytest.mark.slow
def test_collection_model_full() -> None:
    run_state_machine_as_test(CollectionMachine, settings=_profile("ci"))
