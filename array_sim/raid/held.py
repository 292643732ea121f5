"""Held stripes: the parity of a stripe written in whole strips but not all of them waits, within a
batch of writes, for the write that brings the rest (``writes`` rule 6).

A sequential stream of 1 MiB writes over 9 data strips (a 12-disk RAID 6 member) splits a stripe
between every two writes. Encoding each part on its own reads what the part lacks, encodes the whole
stripe and writes P and Q, twice per stripe; holding the first part's strips lets the second write
encode the stripe once from memory, with nothing read (md's stripe cache gathers a stripe's writes
the same way).

Rules of this module:

1. **What is held.** On a whole one-set parity member with no latent sector error on any disk, a
   write's whole strips in a stripe it does not cover entirely, when they are the stripe's first
   strips (an ascending stream begins the stripe) or the ones right after the strips already held
   (it goes on), are written to their data disks at once and copied into the stripe's held buffer;
   only its parity waits. (A random write, which no later write completes, is held only when it
   begins a stripe: settling it reads more than a read-modify-write would.) The stripe is marked
   dirty before its data disks are written and stays marked while held, so ``kill -9`` leaves
   nothing the dirty-stripe map does not resync (``store`` rule 5).
2. **A held stripe is completed** by the write that brings its last strips (encoded from the buffer,
   P and Q written with that write's data, nothing read), or **settled** by ``settle``: the strips
   it lacks are read from their disks (page cache), the parity encoded and written, the mark cleared.
3. **Held only between writes.** Everything else settles first: a read, a write that is not whole
   strips of the stripe, ``flush``, ``close``, every fault, every background step, so no read,
   read-modify-write, reconstruction or verification ever uses a held stripe's stale parity. The
   engine owner settles after every batch of calls, before any of their completions reaches an
   initiator (``targets.engine_owner`` rule 7): an acknowledged write is redundant on disk, as
   without holding. At most ``MAX_HELD`` stripes are held; a write that holds more settles them all.
4. Holding needs no latent errors anywhere (so settling never meets one: ``add_bad_sectors``
   settles first); a store that is not whole (a disk failed, being rebuilt, lost blocks) holds
   nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .disks import DiskIO
from .layout import STRIP, Piece
from .parity import parity_rows

if TYPE_CHECKING:
    from .store import RaidStore

__all__ = ["HeldStripe", "HeldStripes", "MAX_HELD"]

#: The most stripes held at once (rule 3); buffers of this many are kept for reuse.
MAX_HELD = 8


@dataclass
class HeldStripe:
    """A stripe's data strips as written (rows of ``data``): the first ``filled`` of them."""

    data: np.ndarray
    parity: np.ndarray
    filled: int = 0


class HeldStripes:
    """The held-stripe half of ``RaidStore``'s writes (a mixin on the store's state)."""

    def _hold_groups(
        self: RaidStore, groups: dict[tuple[int, int], tuple[list[Piece], memoryview]]
    ) -> dict[int, tuple[list[Piece], memoryview]]:
        """Take out of ``groups`` the stripes a write holds (rule 1), keyed by stripe."""
        if any(disk.bad for disk in self._disks):
            return {}
        k = self._layout.k
        held = {}
        for key, (pieces, part) in list(groups.items()):
            entry = self._held.get(key[1])
            filled = 0 if entry is None else entry.filled
            if (
                pieces[0].index == filled
                and filled + len(pieces) < k + (entry is not None)
                and all(pc.start == 0 and pc.length == STRIP for pc in pieces)
            ):
                held[key[1]] = groups.pop(key)
        return held

    def _hold(self: RaidStore, held: dict[int, tuple[list[Piece], memoryview]]) -> tuple[list[DiskIO], list[int]]:
        """The disk writes of ``held`` stripes' strips, and of the parity of those now complete
        (rule 2), with the stripes completed; the others stay held, marked dirty."""
        lay = self._layout
        roles = self._roles[0]
        out: list[DiskIO] = []
        completed: list[int] = []
        for stripe, (pieces, part) in held.items():
            entry = self._held.get(stripe)
            if entry is None:
                entry = self._spare_held.pop() if self._spare_held else HeldStripe(
                    np.empty((lay.k, STRIP), np.uint8), np.empty((lay.parity, STRIP), np.uint8))
                entry.filled = 0
                self._held[stripe] = entry
            self._dirty[stripe] = 1  # writes.DIRTY, before any of its disks is written (rule 1)
            base = stripe * STRIP
            for pc in pieces:
                strip = part[pc.buffer_offset : pc.buffer_offset + STRIP]
                entry.data[pc.index] = np.frombuffer(strip, np.uint8)
                out.append((roles[lay.data_position(stripe, pc.index)], base, strip))  # type: ignore[arg-type]
            entry.filled += len(pieces)
            if entry.filled == lay.k:
                parity_rows(entry.data, entry.parity)
                for i, pos in enumerate(lay.parity_positions(stripe)):
                    out.append((roles[pos], base, entry.parity[i]))  # type: ignore[arg-type]
                completed.append(stripe)
        return out, completed

    def _release_held(self: RaidStore, stripes: list[int]) -> None:
        """Forget held ``stripes`` (their parity written or rewritten whole), keeping the buffers."""
        for stripe in stripes:
            entry = self._held.pop(stripe, None)
            if entry is not None and len(self._spare_held) < MAX_HELD:
                self._spare_held.append(entry)

    def settle(self: RaidStore, stripes: list[int] | None = None) -> None:
        """Bring the parity of every held stripe (or of ``stripes``, those held) up to date (rule 2)."""
        if not self._held:
            return
        lay = self._layout
        roles = self._roles[0]
        todo = list(self._held) if stripes is None else [s for s in stripes if s in self._held]
        for stripe in todo:
            entry = self._held[stripe]
            base = stripe * STRIP
            for j in range(entry.filled, lay.k):
                self._disks[roles[lay.data_position(stripe, j)]].read_into(  # type: ignore[index]
                    base, memoryview(entry.data[j]))
            parity_rows(entry.data, entry.parity)
            self._apply([(roles[pos], base, entry.parity[i]) for i, pos in enumerate(lay.parity_positions(stripe))])
            self._dirty[stripe] = 0  # writes.CLEAN
            self._release_held([stripe])
