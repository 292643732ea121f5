"""The store contract run against the plain file store and the in-memory store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from array_sim.member_store import FileStore, MemoryStore, SlotStore

from .store_contract import SlotStoreContract


class TestFileStore(SlotStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SlotStore]:
        store = FileStore.create(tmp_path / "member.store", 4)
        yield store
        store.close()

    def reopen(self, store: SlotStore) -> SlotStore:
        assert isinstance(store, FileStore)
        store.close()
        return FileStore(store.path, store.capacity_pages)

    def test_wrong_size_file_is_refused(self, tmp_path: Path) -> None:
        FileStore.create(tmp_path / "m.store", 2).close()
        with pytest.raises(ValueError, match="does not have 3 pages"):
            FileStore(tmp_path / "m.store", 3)


class TestMemoryStore(SlotStoreContract):
    @pytest.fixture
    def store(self) -> SlotStore:
        return MemoryStore(4)

    def reopen(self, store: SlotStore) -> SlotStore:
        return store
