"""RAID stripe writes (``store`` rules 2, 5 and 6): plan every disk write of a transfer, then issue them.

Rules of this module:

1. **Plan, then write.** ``write`` cuts the transfer into stripes, marks every one dirty in the
   dirty-stripe map, plans each stripe's disk writes (reading what a partial stripe needs first),
   issues them, and clears the marks. A read that fails while planning (``UnrecoverableRead``)
   leaves every disk as it was.
2. **A full stripe is encoded from the initiator's buffer itself** (no copy); a partial one is
   read-modify-write or reconstruct-write, whichever reads less (``store`` rule 2), the new
   parity of a read-modify-write computed for every rewritten strip at once (``rewritten_parity``).
3. **One system call per write**: every disk write a write plans goes to the kernel in one
   ``io_submit`` (``aio``: each system call gives the GIL away and may wait to get it back);
   without AIO, the planned writes of a disk that follow each other on it (the same position of
   consecutive stripes) go out in one ``pwritev``.
4. **A small write takes the short way**: inside one strip of a set that is whole (every position
   on-line and rebuilt, nothing lost) it writes both copies of a mirror, or read-modify-writes its
   columns and the parity's, with no plan at all, falling back to the plan when a read meets a
   latent error.
5. **So do whole stripes in bulk**: on a whole parity member of one set (RAID 5, RAID 6), the
   stripes a write covers entirely are encoded straight from the buffer (``parity_rows``, into one
   parity array for them all) and go out as one run of the disk together with the partial
   stripes at either end (planned), with no per-strip plan for them (which cost about a third of
   a 1 MiB write's time) and one system call per disk (each call gives the GIL away and may wait
   to get it back).
6. **A stripe begun in whole strips is held** (``held``): its strips are written, its parity waits
   for the write that brings the rest, or for ``settle``. Every other write settles the held
   stripes it touches before planning them, since planning reads their parity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..member_store import check_range
from .disks import ONLINE, DiskIO, LatentError, runs
from .errors import UnrecoverableRead
from .held import MAX_HELD, HeldStripes
from .layout import STRIP, Piece
from .parity import parity_rows, pq_parity, pq_update, rewritten_parity, xor_parity, xor_update

if TYPE_CHECKING:
    from .store import RaidStore

__all__ = ["CLEAN", "DIRTY", "StripeWrites"]

#: The two values of a stripe's byte in the dirty-stripe map (``store`` rule 5).
CLEAN, DIRTY = 0, 1


def _u8(data: bytes | bytearray | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


class StripeWrites(HeldStripes):
    """The write half of ``RaidStore`` (a mixin: it works on the store's own state)."""

    def write(self: RaidStore, slot: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        position = check_range(self.capacity_pages, slot, offset, len(view))
        self._check_online()
        lay = self._layout
        span = lay.k * STRIP
        first, last = -(-position // span), (position + len(view)) // span
        bulk = self._whole and lay.sets == 1 and not lay.mirror
        if last > first and bulk:  # rule 5
            head, stop = first * span - position, last * span - position
            edges = [(position, view[:head]), (last * span, view[stop:])]
        else:
            first = last = head = stop = 0
            edges = [(position, view)]
        groups: dict[tuple[int, int], tuple[list[Piece], memoryview]] = {}
        for start, part in edges:
            for pc in lay.pieces(start, len(part)):
                groups.setdefault((pc.set, pc.stripe), ([], part))[0].append(pc)
        held = self._hold_groups(groups) if bulk else {}  # rule 6
        if self._held:
            self.settle([stripe for _set, stripe in groups])  # planned from disk: their parity first
        if last == first and not held and len(groups) == 1 and self._whole:
            ((pieces, part),) = groups.values()
            if len(pieces) == 1 and self._small_write(pieces[0], part):
                return
        marks = [set_ * lay.stripes + stripe for set_, stripe in groups] + list(range(first, last))
        for mark in marks:
            self._dirty[mark] = DIRTY
        try:
            writes = [w for (set_, stripe), (pcs, part) in groups.items() for w in self._plan(set_, stripe, pcs, part)]
        except UnrecoverableRead:
            for mark in marks:
                self._dirty[mark] = CLEAN  # raised by the reads, before any disk was written
            raise
        if last > first:
            writes += self._whole_stripes(first, view[head:stop])
        completed: list[int] = []
        if held:
            held_writes, completed = self._hold(held)
            writes += held_writes
        self._apply(writes)
        for mark in marks + completed:
            self._dirty[mark] = CLEAN
        if self._held:
            self._release_held(completed + list(range(first, last)))  # parity written whole
        if len(self._held) > MAX_HELD:
            self.settle()
        if self._lost:
            self._forget_lost(groups)

    def _whole_stripes(self: RaidStore, first: int, view: memoryview) -> list[DiskIO]:
        """The disk writes of whole stripes ``first`` on of a whole one-set parity member (rule 5)."""
        lay = self._layout
        count = len(view) // (lay.k * STRIP)
        data = _u8(view).reshape(count, lay.k, STRIP)
        parity = np.empty((count, lay.parity, STRIP), np.uint8)
        out: list[DiskIO] = []
        for n, stripe in enumerate(data):
            parity_rows(stripe, parity[n])
            at = (first + n) * STRIP
            for disk, (role, index) in zip(self._roles[0], lay.roles(first + n)):
                column = stripe[index] if role == "data" else parity[n, 0 if role == "p" else 1]
                out.append((disk, at, column))  # type: ignore[arg-type]
        return out

    def _small_write(self: RaidStore, pc: Piece, view: memoryview) -> bool:
        """A write inside one strip of a whole set, with nothing planned (rule 4): both copies of a
        mirror, or read-modify-write of the columns of the strip and the parity.

        False, with nothing written, when a read meets a latent error: the caller then plans it.
        """
        lay = self._layout
        roles = self._roles[pc.set]
        mark = pc.set * lay.stripes + pc.stripe
        chunk = view[pc.buffer_offset : pc.buffer_offset + pc.length]
        if lay.mirror:  # both copies, nothing to read
            self._dirty[mark] = DIRTY
            for d in roles:
                self._disks[d].write(pc.stripe * STRIP + pc.start, chunk)  # type: ignore[index]
            self._dirty[mark] = CLEAN
            return True
        data_d = roles[lay.data_position(pc.stripe, pc.index)]
        parity_ds = [roles[p] for p in lay.parity_positions(pc.stripe)]
        data_disk = self._disks[data_d]  # type: ignore[index]
        parity_disks = [self._disks[d] for d in parity_ds]  # type: ignore[index]
        lo, hi = pc.start & ~7, (pc.start + pc.length + 7) & ~7
        at = pc.stripe * STRIP + lo
        old, *parity = (np.empty(hi - lo, np.uint8) for _ in range(1 + len(parity_disks)))
        try:
            data_disk.read_into(at, memoryview(old))
            for disk, col in zip(parity_disks, parity):
                disk.read_into(at, memoryview(col))
        except LatentError:
            return False
        if pc.start == lo and pc.length == hi - lo:
            new = _u8(chunk)
        else:
            new = old.copy()
            new[pc.start - lo : pc.start - lo + pc.length] = _u8(chunk)
        if lay.parity == 1:
            xor_update(parity[0], old, new)
        else:
            pq_update(parity[0], parity[1], pc.index, old, new)
        self._dirty[mark] = DIRTY
        writes: list[DiskIO] = [(data_d, pc.stripe * STRIP + pc.start, chunk)]  # type: ignore[list-item]
        self._apply(writes + [(d, at, col) for d, col in zip(parity_ds, parity)])  # type: ignore[misc]
        self._dirty[mark] = CLEAN
        return True

    def _forget_lost(self: RaidStore, groups: dict[tuple[int, int], tuple[list[Piece], memoryview]]) -> None:
        """A data strip marked lost (rule 6) is whole again once a write covered all of it."""
        changed = False
        for (set_, stripe), (pieces, _part) in groups.items():
            for pc in pieces:
                key = (set_, stripe, self._layout.data_position(stripe, pc.index))
                if pc.length == STRIP and key in self._lost:
                    self._lost.discard(key)
                    changed = True
        if changed:
            self._save()

    def _apply(self: RaidStore, writes: list[DiskIO]) -> None:
        """Issue the planned writes: one ``io_submit``, or one ``pwritev`` per run of adjacent strips of a disk
        (rule 3)."""
        if self._aio is not None:
            disks = self._disks
            self._aio.write([(disks[d].will_write(at, len(data)), at, data) for d, at, data in writes])
            return
        if len(writes) <= self._layout.width:  # one stripe, so at most one write per disk
            for disk, offset, data in writes:
                self._disks[disk].write(offset, data)
            return
        for disk, offset, buffers in runs(writes):
            if len(buffers) == 1:
                self._disks[disk].write(offset, buffers[0])
            else:
                self._disks[disk].write_many(offset, buffers)

    def _plan(self: RaidStore, set_: int, stripe: int, pieces: list[Piece], view: memoryview) -> list[DiskIO]:
        """The disk writes that put ``pieces`` of ``view`` into one stripe, its redundancy included."""
        lay = self._layout
        out: list[DiskIO] = []
        roles, status, base = self._roles[set_], self._status, stripe * STRIP

        def put(pos: int, disk_offset: int, data: memoryview | np.ndarray) -> None:
            d = roles[pos]
            if d is not None and status[d] == ONLINE:
                out.append((d, base + disk_offset, data))

        if lay.mirror:
            (pc,) = pieces
            for pos in (0, 1):
                put(pos, pc.start, view[pc.buffer_offset : pc.buffer_offset + pc.length])
            return out
        if len(pieces) == lay.k and all(pc.length == STRIP for pc in pieces):
            strips = [_u8(view[pc.buffer_offset : pc.buffer_offset + STRIP]) for pc in pieces]
            parity = [xor_parity(strips)] if lay.parity == 1 else list(pq_parity(strips))
            for pc, strip in zip(pieces, strips):
                put(lay.data_position(stripe, pc.index), 0, strip)
            for p, col in zip(lay.parity_positions(stripe), parity):
                put(p, 0, col)
            return out
        lo, parity = self._partial_parity(set_, stripe, pieces, view)
        for pc in pieces:
            put(lay.data_position(stripe, pc.index), pc.start, view[pc.buffer_offset : pc.buffer_offset + pc.length])
        for p, col in zip(lay.parity_positions(stripe), parity):
            put(p, lo, col)
        return out

    def _partial_parity(
        self: RaidStore, set_: int, stripe: int, pieces: list[Piece], view: memoryview
    ) -> tuple[int, list[np.ndarray]]:
        """New parity columns ``[lo, hi)`` of a stripe a write covers only in part (rule 2), and ``lo``."""
        lay = self._layout
        lo = min(pc.start for pc in pieces) & ~7
        hi = (max(pc.start + pc.length for pc in pieces) + 7) & ~7
        width = hi - lo
        touched = {pc.index: pc for pc in pieces}
        covering = {j for j, pc in touched.items() if pc.start <= lo and pc.start + pc.length >= hi}
        ppos = lay.parity_positions(stripe)
        healthy = all(self._readable(set_, p, stripe) for p in range(lay.width)) and not any(
            (set_, stripe, p) in self._lost for p in range(lay.width)
        )
        rmw = healthy and (len(touched) + lay.parity) * width < (lay.k - len(covering)) * width

        def new_column(j: int, old: np.ndarray | None) -> np.ndarray:
            pc = touched[j]
            new = _u8(view[pc.buffer_offset : pc.buffer_offset + pc.length])
            if pc.start == lo and pc.length == width:
                return new
            col = np.zeros(width, np.uint8) if old is None else old.copy()
            col[pc.start - lo : pc.start - lo + pc.length] = new
            return col

        if rmw:
            need = [lay.data_position(stripe, j) for j in touched] + ppos
            cols = self._columns(set_, stripe, lo, hi, need)
            olds = {j: cols[lay.data_position(stripe, j)] for j in touched}
            changes = [(j, old, new_column(j, old)) for j, old in olds.items()]
            return lo, list(rewritten_parity([cols[p] for p in ppos], changes))
        need = [lay.data_position(stripe, j) for j in range(lay.k) if j not in covering]
        cols = self._columns(set_, stripe, lo, hi, need) if need else {}
        strips = []
        for j in range(lay.k):
            old = cols.get(lay.data_position(stripe, j))
            strips.append(new_column(j, old) if j in touched else old)
        return lo, [xor_parity(strips)] if lay.parity == 1 else list(pq_parity(strips))
