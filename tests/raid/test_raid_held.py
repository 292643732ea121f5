"""Held stripes (``array_sim.raid.held``): a stripe written in whole strips waits for the rest of its
data before its parity is encoded, and nothing ever reads its stale parity.

Every test checks the data through the store's own reads, with disks failed where it matters, and
the parity through the store's verification (which counts the stripes whose parity disagrees).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from array_sim.raid.held import MAX_HELD
from array_sim.raid.layout import STRIP
from array_sim.raid.store import RaidStore
from array_sim.units import MiB, PAGE_SIZE

pytestmark = pytest.mark.usefixtures("disk_writes")  # conftest: aio, and pwritev in the whole suite

K = 9  # data strips of a 12-disk RAID 6 member (one spare, 9 + P + Q)
SPAN = K * STRIP


class Member:
    """A 12-disk RAID 6 store, a model of its first page, and the events it logged."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.events: list[str] = []
        self.store = RaidStore.create(
            directory, "raid6", 12, RaidStore.disk_size_for("raid6", 12, 2 * PAGE_SIZE), events=self._event
        )
        assert self.store._layout.k == K
        self.model = bytearray(PAGE_SIZE)
        self.rng = random.Random(7)

    def _event(self, level: str, message: str) -> None:
        self.events.append(message)

    def write(self, pos: int, length: int) -> None:
        data = self.rng.randbytes(length)
        self.store.write(0, pos, data)
        self.model[pos : pos + length] = data

    def stream(self, count: int, size: int = MiB, start: int = 0) -> None:
        for i in range(count):
            self.write(start + i * size, size)

    def check(self) -> None:
        assert self.store.read(0, 0, PAGE_SIZE) == bytes(self.model)

    def mismatches(self) -> int:
        """Stripes whose parity disagreed with their data, by a whole verification."""
        self.store.start_verify()
        while self.store.background_step(1 << 24):
            pass
        (done,) = [e for e in self.events if "Verification of the RAID set(s) finished" in e][-1:]
        return int(done.split(": ")[1].split()[0])

    def crash(self) -> None:
        """What ``kill -9`` leaves: the files as they are, nothing settled, then a fresh open."""
        for disk in self.store._disks:
            disk.close()
        self.store._dirty.close()
        self.store = RaidStore.open(self.directory, events=self._event)

    def data_disks_of(self, stripe: int, *strips: int) -> list[int]:
        """The disks holding data strips ``strips`` of ``stripe``."""
        lay, roles = self.store._layout, self.store._roles[0]
        return [roles[lay.data_position(stripe, j)] for j in strips]  # type: ignore[misc]


@pytest.fixture
def member(tmp_path: Path) -> Member:
    m = Member(tmp_path / "m")
    yield m
    m.store.close()


def test_a_sequential_stream_holds_one_stripe_at_a_time(member: Member) -> None:
    for i in range(6):
        member.stream(1, start=i * MiB)
        # 1 MiB is 16 strips: every write ends 7 strips into the next stripe or finishes one.
        assert len(member.store._held) <= 1
    (stripe,) = member.store._held
    assert member.store._dirty[stripe] == 1  # held stripes stay marked (held rule 1)
    member.check()
    assert member.mismatches() == 0
    assert not member.store._held and member.store._dirty[stripe] == 0


def test_sixty_four_kib_stream_completes_stripes_with_nothing_read(member: Member) -> None:
    member.stream(2 * K + 3, STRIP)
    assert list(member.store._held) == [2]
    assert member.store._held[2].filled == 3
    member.check()
    assert member.mismatches() == 0


def test_two_failed_data_disks_of_a_held_stripe(member: Member) -> None:
    member.stream(3)
    (stripe,) = member.store._held
    # One it holds, one it lacks: fail_disk settles first (held rule 3), while every disk is there.
    for disk in member.data_disks_of(stripe, 0, K - 1):
        member.store.fail_disk(disk)
    assert member.store.health().raid_status == "reconstructing"
    member.check()


def test_kill_with_held_stripes_then_two_disks_fail(member: Member) -> None:
    member.stream(3)
    (stripe,) = member.store._held
    failing = member.data_disks_of(stripe, 0, K - 1)
    member.crash()  # the held stripe was marked: open resyncs its parity
    assert not member.store._held and member.store._dirty[stripe] == 0
    for disk in failing:
        member.store.fail_disk(disk)
    member.check()


def test_kill_with_held_stripes_leaves_no_parity_mismatch(member: Member) -> None:
    member.stream(5)
    member.write(12 * SPAN, 2 * STRIP)  # a second held stripe, not in the stream
    assert len(member.store._held) == 2
    member.crash()
    member.check()
    assert member.mismatches() == 0


def test_small_writes_into_a_held_stripe_settle_it_first(member: Member) -> None:
    member.stream(1)
    (stripe,) = member.store._held
    base = stripe * SPAN
    member.write(base + 2 * STRIP + 100, 4096)  # inside a held strip
    member.write(base + 8 * STRIP + 5, 3000)  # inside a strip it lacks
    assert not member.store._held
    member.check()
    assert member.mismatches() == 0


def test_a_whole_strip_that_does_not_begin_a_stripe_is_not_held(member: Member) -> None:
    member.write(3 * STRIP, STRIP)
    member.write(SPAN + 5 * STRIP, 2 * STRIP)
    assert not member.store._held  # read-modify-write reads less than settling would (held rule 1)
    member.check()


def test_a_gap_in_a_held_stripe_settles_it(member: Member) -> None:
    member.write(0, 2 * STRIP)
    member.write(4 * STRIP, 2 * STRIP)  # not right after the held strips: planned from disk
    assert not member.store._held
    member.check()
    assert member.mismatches() == 0


def test_a_rewrite_of_a_whole_held_stripe_drops_its_buffer(member: Member) -> None:
    member.write(SPAN, 4 * STRIP)
    member.write(0, 3 * SPAN)  # covers stripe 1 entirely
    assert not member.store._held
    member.check()
    assert member.mismatches() == 0


def test_no_holding_while_a_disk_has_latent_errors(member: Member) -> None:
    member.store.add_bad_sectors(5, 30 * STRIP, 512)
    member.stream(2)
    assert not member.store._held
    member.check()


def test_latent_errors_added_while_stripes_are_held(member: Member) -> None:
    member.stream(1)
    (stripe,) = member.store._held
    (disk,) = member.data_disks_of(stripe, 0)
    member.store.add_bad_sectors(disk, stripe * STRIP, STRIP)  # settles first (held rule 4)
    assert not member.store._held
    member.check()  # the bad strip is rebuilt from parity that was settled
    assert member.mismatches() == 0


def test_at_most_max_held_stripes(member: Member) -> None:
    for n in range(MAX_HELD + 3):
        member.write(2 * n * SPAN, 2 * STRIP)
        assert len(member.store._held) <= MAX_HELD
    member.check()
    assert member.mismatches() == 0


def test_flush_settles(member: Member) -> None:
    member.stream(1)
    (stripe,) = member.store._held
    member.store.flush()
    assert not member.store._held and member.store._dirty[stripe] == 0
