"""Where a member byte lives: set, stripe, strip position and offset on a disk.

Rules of this module:

1. **Strips are 64 KiB.** The member's logical address (``slot * PAGE_SIZE + offset``) is cut into
   strips; strip ``g`` goes to set ``g % sets`` as that set's local strip ``g // sets`` (RAID 10:
   strip i on mirror pair i % pairs; RAID 50: striped over the RAID 5 sets).
2. **Inside a set, stripe ``s`` is the ``s``-th strip of every disk of the set** (disk offset
   ``s * STRIP``). Parity rotates left-symmetric, md's default: with ``n`` disks P sits on position
   ``n - 1 - s % n``, Q (RAID 6) on the next position, and data strip ``j`` on the ``j``-th position
   after them, wrapping. A mirror's stripe is one data strip held by both positions.
3. Pure arithmetic, no I/O: positions are indices inside a set; which physical disk holds a
   position is the store's business (its role table).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .policy import Geometry

__all__ = ["STRIP", "Layout", "Piece"]

STRIP = 64 * 1024


@dataclass(frozen=True)
class Piece:
    """A run of member bytes inside one strip."""

    set: int
    stripe: int
    #: Data strip index inside the stripe (0 for a mirror).
    index: int
    #: Byte offset inside the strip, and length.
    start: int
    length: int
    #: Where the run starts in the caller's buffer.
    buffer_offset: int


class Layout:
    """Address arithmetic of one geometry over disks of ``disk_size`` bytes."""

    def __init__(self, geometry: Geometry, disk_size: int) -> None:
        if disk_size <= 0 or disk_size % STRIP:
            raise ValueError(f"disk size {disk_size} is not a positive multiple of {STRIP}")
        self.geometry = geometry
        self.stripes = disk_size // STRIP
        self.sets = geometry.sets
        self.width = geometry.width
        self.k = geometry.data_strips
        self.parity = geometry.parity
        self.mirror = geometry.mirror
        self.capacity = self.sets * self.stripes * self.k * STRIP

    def pieces(self, position: int, length: int) -> Iterator[Piece]:
        """The strip pieces of member bytes ``[position, position + length)``, in order."""
        done = 0
        while done < length:
            g, start = divmod(position + done, STRIP)
            n = min(STRIP - start, length - done)
            set_, local = g % self.sets, g // self.sets
            stripe, index = divmod(local, self.k)
            yield Piece(set_, stripe, index, start, n, done)
            done += n

    def data_position(self, stripe: int, index: int) -> int:
        """The set position holding data strip ``index`` of ``stripe`` (a mirror: its first copy)."""
        if self.mirror:
            return index
        p = self.width - 1 - stripe % self.width
        return (p + self.parity + index) % self.width

    def parity_positions(self, stripe: int) -> list[int]:
        """Positions of P (and Q) of ``stripe``; a mirror: the second copy."""
        if self.mirror:
            return [1]
        p = self.width - 1 - stripe % self.width
        return [(p + i) % self.width for i in range(self.parity)]

    def roles(self, stripe: int) -> list[tuple[str, int]]:
        """For each position of the set: ("data", j), ("p", 0) or ("q", 0) in ``stripe``."""
        out: list[tuple[str, int]] = [("data", 0)] * self.width
        if self.mirror:
            return [("data", 0), ("p", 0)]
        for j in range(self.k):
            out[self.data_position(stripe, j)] = ("data", j)
        for i, pos in enumerate(self.parity_positions(stripe)):
            out[pos] = ("p" if i == 0 else "q", 0)
        return out


def disk_bytes_for(geometry: Geometry, usable_bytes: int) -> int:
    """Smallest disk size (whole strips) giving at least ``usable_bytes`` of member capacity."""
    per_stripe = geometry.sets * geometry.data_strips * STRIP
    return max(1, -(-usable_bytes // per_stripe)) * STRIP
