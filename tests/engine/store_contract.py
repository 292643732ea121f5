"""The shared test suite every member store runs (in the manner of dulwich's object-store tests).

A test module subclasses ``SlotStoreContract`` and provides two things: a
``store`` fixture (a fresh, empty store of at least 4 pages) and
``reopen(store)``, which closes a store and opens it again from whatever it
keeps (for ``MemoryStore``, the same object). Each test then checks one rule
of ``array_sim/member_store.py`` through the ``SlotStore`` protocol only.
"""

from __future__ import annotations

import functools
import random

import pytest

from array_sim.member_store import SlotStore, StoreHealth
from array_sim.units import PAGE_SIZE

__all__ = ["SlotStoreContract"]


@functools.lru_cache(maxsize=16)  # the same 15 MiB patterns serve every store and policy (bytes: immutable)
def _pattern(seed: int, length: int) -> bytes:
    return random.Random(seed).randbytes(length)


class SlotStoreContract:
    """Tests that hold for every ``SlotStore``."""

    def reopen(self, store: SlotStore) -> SlotStore:
        raise NotImplementedError

    def test_unwritten_slots_read_zeros(self, store: SlotStore) -> None:
        assert store.capacity_pages >= 4
        assert store.read(0, 0, 4096) == bytes(4096)
        assert store.read(store.capacity_pages - 1, PAGE_SIZE - 512, 512) == bytes(512)

    def test_write_then_read_back(self, store: SlotStore) -> None:
        data = _pattern(1, 64 * 1024)
        store.write(1, 8192, data)
        assert store.read(1, 8192, len(data)) == data
        assert store.read(1, 0, 8192) == bytes(8192)
        assert store.read(0, 0, 4096) == bytes(4096)

    @pytest.mark.parametrize(
        ("offset", "length"),
        [(0, 1), (511, 3), (4095, 4097), (65536 - 100, 200), (PAGE_SIZE - 1, 1), (0, PAGE_SIZE), (12345, 1 << 20)],
    )
    def test_any_byte_range(self, store: SlotStore, offset: int, length: int) -> None:
        before = _pattern(2, PAGE_SIZE)
        store.write(2, 0, before)
        data = _pattern(offset, length)
        store.write(2, offset, data)
        expected = before[:offset] + data + before[offset + length :]
        assert store.read(2, 0, PAGE_SIZE) == expected

    def test_slots_are_independent(self, store: SlotStore) -> None:
        for slot in range(store.capacity_pages):
            store.write(slot, PAGE_SIZE - 4096, bytes([slot + 1]) * 4096)
        for slot in range(store.capacity_pages):
            assert store.read(slot, PAGE_SIZE - 8192, 8192) == bytes(4096) + bytes([slot + 1]) * 4096

    def test_overwrite_many_times(self, store: SlotStore) -> None:
        rng = random.Random(7)
        model = bytearray(2 * PAGE_SIZE)
        for _ in range(200):
            position = rng.randrange(0, len(model) - 1)
            length = rng.randint(1, min(200_000, len(model) - position))
            slot, offset = divmod(position, PAGE_SIZE)
            length = min(length, PAGE_SIZE - offset)
            data = rng.randbytes(length)
            store.write(slot, offset, data)
            model[position : position + length] = data
        assert store.read(0, 0, PAGE_SIZE) + store.read(1, 0, PAGE_SIZE) == bytes(model)

    def test_memoryview_and_bytearray_data(self, store: SlotStore) -> None:
        data = bytearray(_pattern(3, 8192))
        store.write(0, 0, memoryview(data)[4096:])
        store.write(0, 4096, data)
        assert store.read(0, 0, 4096 + 8192) == bytes(data[4096:]) + bytes(data)

    @pytest.mark.parametrize(("slot", "offset", "length"), [(-1, 0, 1), (None, 0, 1), (0, PAGE_SIZE, 1), (0, -1, 1)])
    def test_out_of_range_is_refused(self, store: SlotStore, slot: int | None, offset: int, length: int) -> None:
        slot = store.capacity_pages if slot is None else slot
        with pytest.raises(ValueError):
            store.read(slot, offset, length)
        with pytest.raises(ValueError):
            store.write(slot, offset, bytes(length))

    def test_data_survives_reopen(self, store: SlotStore) -> None:
        data = _pattern(4, 300_000)
        store.write(3, 1000, data)
        store.flush()
        reopened = self.reopen(store)
        try:
            assert reopened.read(3, 1000, len(data)) == data
            assert reopened.capacity_pages == store.capacity_pages
        finally:
            reopened.close()

    def test_healthy_store_reports_ok(self, store: SlotStore) -> None:
        health = store.health()
        assert isinstance(health, StoreHealth)
        assert health.online

    def test_background_steps_end(self, store: SlotStore) -> None:
        for _ in range(100_000):
            if not store.background_step(1 << 20):
                break
        else:
            pytest.fail("background work never ended")
        assert store.background_step(1 << 20) is False
