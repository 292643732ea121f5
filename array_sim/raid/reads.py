"""RAID reads (``store`` rules 3, 4 and 6): strips as they lie, or rebuilt from the rest of their stripe.

Rules of this module:

1. **One system call per run**: the strips of a read that lie on a readable disk, clear of latent
   errors, are read with one ``preadv`` per run of adjacent strips of a disk into a buffer the store
   keeps (a new megabyte would cost a page fault per 4 KiB), then copied out once.
2. **Rebuilt, never guessed**: a strip whose disk is missing (failed, or a spare not yet rebuilt
   past its stripe) or that meets a latent error is rebuilt from the other positions of its stripe
   (``_columns``): XOR for RAID 5 and mirrors, P+Q recovery for RAID 6. The latent error is then
   corrected by writing the rebuilt bytes back (the disk remaps on write) and counted on the disk.
3. When a strip cannot be rebuilt (more positions missing than the set has parity, or a strip lost
   in a crash on a degraded set) the read raises ``UnrecoverableRead`` or ``MemberOffline``: no
   read ever returns bytes it does not know to be right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..member_store import MemberOffline, check_range
from .disks import DiskIO, LatentError, runs
from .errors import UnrecoverableRead
from .layout import STRIP, Piece
from .parity import recover_pq, recover_xor

if TYPE_CHECKING:
    from .store import RaidStore

__all__ = ["StripeReads"]


def _u8(data: bytes | bytearray | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


class StripeReads:
    """The read half of ``RaidStore`` (a mixin: it works on the store's own state)."""

    def _try_read(
        self: RaidStore, set_: int, stripe: int, pos: int, lo: int, hi: int, latent: list[int]
    ) -> np.ndarray | None:
        if not self._readable(set_, pos, stripe):
            return None
        try:
            return _u8(self._disk_at(set_, pos).read(stripe * STRIP + lo, hi - lo))
        except LatentError:
            latent.append(pos)
            return None

    def _columns(self: RaidStore, set_: int, stripe: int, lo: int, hi: int, need: list[int]) -> dict[int, np.ndarray]:
        """Columns ``[lo, hi)`` of positions ``need`` of a stripe, rebuilt where they cannot be read."""
        latent: list[int] = []
        got: dict[int, np.ndarray] = {}
        for pos in need:
            col = self._try_read(set_, stripe, pos, lo, hi, latent)
            if col is not None:
                got[pos] = col
        if len(got) == len(need):
            return got
        for pos in range(self._layout.width):
            if pos not in need:
                col = self._try_read(set_, stripe, pos, lo, hi, latent)
                if col is not None:
                    got[pos] = col
        missing = [p for p in range(self._layout.width) if p not in got]
        if len(missing) > self._layout.parity:
            if self._failed:
                raise MemberOffline(f"member {self.name} is offline")
            raise UnrecoverableRead(f"set {set_ + 1} stripe {stripe}: no redundancy left to rebuild a latent error")
        if any((set_, stripe, p) in self._lost for p in got):
            raise UnrecoverableRead(f"set {set_ + 1} stripe {stripe}: holds data lost in a crash")
        self._rebuild_into(stripe, got, missing)
        corrected = False
        for pos in latent:
            if self._writable(set_, pos):
                self._disk_at(set_, pos).write(stripe * STRIP + lo, got[pos])
                d = self._roles[set_][pos]
                assert d is not None
                self._errors[d] += 1
                corrected = True
                self.events("INFO", f"Latent sector error corrected on disk {d} of member {self.name}.")
        if corrected:
            self._save()
        return got

    def _rebuild_into(self: RaidStore, stripe: int, got: dict[int, np.ndarray], missing: list[int]) -> None:
        if not missing:
            return
        lay = self._layout
        if lay.mirror or lay.parity == 1:
            (m,) = missing
            got[m] = recover_xor([got.get(p) for p in range(lay.width)])
            return
        roles = lay.roles(stripe)
        data: list[np.ndarray | None] = [None] * lay.k
        p = q = None
        for pos, (kind, j) in enumerate(roles):
            col = got.get(pos)
            if kind == "data":
                data[j] = col
            elif kind == "p":
                p = col
            else:
                q = col
        data2, p2, q2 = recover_pq(data, p, q)
        for pos, (kind, j) in enumerate(roles):
            got[pos] = data2[j] if kind == "data" else p2 if kind == "p" else q2

    # ------------------------------------------------------------------ I/O

    def read(self: RaidStore, slot: int, offset: int, length: int) -> bytes:
        position = check_range(self.capacity_pages, slot, offset, length)
        self._check_online()
        if self._held:  # a rebuilt strip reads parity (``held`` rule 3)
            self.settle()
        lay = self._layout
        pieces = list(lay.pieces(position, length))
        direct: list[DiskIO] = []  # (disk, disk offset, where in out) of the strips read as they lie
        rebuilt: list[Piece] = []
        if length > len(self._read_buffer):
            self._read_buffer = bytearray(length)
        view = memoryview(self._read_buffer)[:length]
        for pc in pieces:
            pos = lay.data_position(pc.stripe, pc.index)
            if self._lost and (pc.set, pc.stripe, pos) in self._lost:
                raise UnrecoverableRead(f"set {pc.set + 1} stripe {pc.stripe}: data lost in a crash on a degraded set")
            disk_offset = pc.stripe * STRIP + pc.start
            if self._readable(pc.set, pos, pc.stripe):
                d = self._roles[pc.set][pos]
                assert d is not None
                if not self._disks[d].bad_in(disk_offset, pc.length):
                    if len(pieces) == 1:
                        return self._disks[d].read(disk_offset, pc.length)
                    direct.append((d, disk_offset, view[pc.buffer_offset : pc.buffer_offset + pc.length]))
                    continue
            rebuilt.append(pc)
        for disk, offset, buffers in runs(direct):  # one preadv per run of adjacent strips of a disk
            self._disks[disk].read_many(offset, buffers)
        for pc in rebuilt:
            pos = lay.data_position(pc.stripe, pc.index)
            lo, hi = pc.start & ~7, (pc.start + pc.length + 7) & ~7
            col = self._columns(pc.set, pc.stripe, lo, hi, [pos])[pos]
            view[pc.buffer_offset : pc.buffer_offset + pc.length] = col[pc.start - lo : pc.start - lo + pc.length]
        return view.tobytes()

