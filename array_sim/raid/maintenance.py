"""RAID upkeep (``store`` rules 4 to 8): resync after a crash, disk faults, reconstruction, verification.

Rules of this module:

1. **Resync** (``store`` rule 5) runs in ``open`` before anything is served: every stripe marked in
   the dirty-stripe map gets parity recomputed from its data (a mirror: its second copy from the
   first), or, on a degraded stripe, its unknowable strips marked lost (rule 6).
2. **Faults are deterministic calls** (``fail_disk``, ``replace_disk``, ``add_bad_sectors``) that
   change the superblock at once; a failed disk's role goes to a spare, whose reconstruction then
   runs in ``background_step`` slices, first in line.
3. **Verification** (RAID status ``verifying``, the array's background scrub; md's ``repair``) reads
   every stripe, rewrites latent sector errors from the rest of their stripe, and rewrites parity
   that does not match the data (counted, as md's ``mismatch_cnt``; the data is taken as right,
   as md does). It runs after reconstruction, only while no set is degraded, from a cursor saved
   with the superblock; stripes never written on any disk are skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidRequest
from .disks import FAILED, ONLINE, SPARE, Disk, LatentError
from .errors import UnrecoverableRead
from .layout import STRIP
from .parity import pq_parity, xor_parity
from .writes import CLEAN

if TYPE_CHECKING:
    from .store import RaidStore

__all__ = ["Maintenance"]

#: Reconstruction and verification progress is saved every this many stripes (4 MiB of strips).
SAVE_EVERY = (4 << 20) // STRIP
#: Stripes rebuilt or verified with one pread per disk (1 MiB of each).
BATCH = (1 << 20) // STRIP


class Maintenance:
    """Resync, faults, reconstruction and verification of ``RaidStore`` (a mixin on the store's state)."""

    # ------------------------------------------------------------------ resync (rule 5)

    def _resync(self: RaidStore) -> None:
        lay = self._layout
        i = self._dirty.find(b"\x01")
        changed = False
        while i >= 0:
            set_, stripe = divmod(i, lay.stripes)
            if not self._failed:
                changed |= self._resync_stripe(set_, stripe)
            self._dirty[i] = CLEAN
            i = self._dirty.find(b"\x01", i + 1)
        if changed:
            self._save()

    def _resync_stripe(self: RaidStore, set_: int, stripe: int) -> bool:
        """Make one stripe's redundancy agree with its data; True if strips were marked lost."""
        lay = self._layout
        dpos = [lay.data_position(stripe, j) for j in range(lay.k)]
        ppos = lay.parity_positions(stripe)
        latent: list[int] = []
        cols = {p: self._try_read(set_, stripe, p, 0, STRIP, latent) for p in dpos}
        unknown = [p for p, c in cols.items() if c is None]
        if lay.mirror and unknown:
            other = self._try_read(set_, stripe, 1, 0, STRIP, latent)
            if other is not None:
                if self._writable(set_, 0):
                    self._disk_at(set_, 0).write(stripe * STRIP, other)
                return False
        if unknown:
            for p in unknown:
                self._lost.add((set_, stripe, p))
            self.events(
                "ERROR", f"Member {self.name} lost RAID blocks: a crash interrupted a write to a degraded stripe."
            )
            return True
        strips = [cols[p] for p in dpos]
        parity = [strips[0]] if lay.mirror else [xor_parity(strips)] if lay.parity == 1 else list(pq_parity(strips))
        for p, col in zip(ppos, parity):
            if self._writable(set_, p):
                self._disk_at(set_, p).write(stripe * STRIP, col)
        return False

    # ------------------------------------------------------------------ faults

    def _disk_number(self: RaidStore, n: int) -> int:
        if not 0 <= n < len(self._disks):
            raise InvalidRequest(f"Disk {n} does not exist on member {self.name}.")
        return n

    def fail_disk(self: RaidStore, n: int) -> None:
        """Disk ``n`` fails: a spare takes its role, or its set runs degraded, or the member fails."""
        self.settle()  # ``held`` rule 3
        self._disk_number(n)
        if self._status[n] == FAILED:
            return
        self._status[n] = FAILED
        for r in self._roles:
            for p, d in enumerate(r):
                if d == n:
                    r[p] = None
        self.events("WARNING", f"Disk {n} failed on member {self.name}.")
        self._check_tolerance()
        self._take_spares()
        self._save()

    def _check_tolerance(self: RaidStore) -> None:
        if self._failed:
            return
        for s, r in enumerate(self._roles):
            missing = sum(1 for d in r if d is None or self._rebuilt[d] < self._layout.stripes)
            if missing > self._layout.parity:
                self._failed = True
                self.events(
                    "ERROR",
                    f"Member {self.name} is offline: RAID set {s + 1} lost more disks than RAID policy "
                    f"{self.policy} tolerates.",
                )
                return

    def _take_spares(self: RaidStore) -> None:
        if self._failed:
            return
        for s, r in enumerate(self._roles):
            for p, d in enumerate(r):
                if d is not None:
                    continue
                spare = next((i for i, st in enumerate(self._status) if st == SPARE), None)
                if spare is None:
                    return
                r[p] = spare
                self._status[spare] = ONLINE
                self._rebuilt[spare] = 0
                self.events("INFO", f"Spare disk {spare} is now in use on member {self.name}.")
                self.events(
                    "INFO", f"Reconstruction of RAID set {s + 1} started on disk {spare} of member {self.name}."
                )

    def replace_disk(self: RaidStore, n: int) -> None:
        """A new empty disk in slot ``n`` (which must have failed); it becomes a spare, taken at once if needed."""
        self.settle()  # ``held`` rule 3
        self._disk_number(n)
        if self._status[n] != FAILED:
            raise InvalidRequest(f"Disk {n} on member {self.name} has not failed.")
        self._disks[n].close()
        self._disks[n] = Disk.create(self._disks[n].path, self.disk_size)
        self._status[n] = SPARE
        self._rebuilt[n] = 0
        self._errors[n] = 0
        self._take_spares()
        self._save()

    def add_bad_sectors(self: RaidStore, n: int, offset: int, length: int) -> None:
        """Reads of bytes ``[offset, offset + length)`` of disk ``n`` fail from now on, until rewritten."""
        self.settle()  # ``held`` rule 3
        self._disk_number(n)
        if not (0 <= offset and 0 < length and offset + length <= self.disk_size):
            raise InvalidRequest(f"Range [{offset}, +{length}) is outside disk {n}.")
        self._disks[n].add_bad(offset, length)
        self._save()

    # ------------------------------------------------------------------ reconstruction

    def _rebuild_batch(self: RaidStore, set_: int, pos: int, d: int, first: int, n: int) -> bool:
        """Rebuild stripes ``[first, first + n)`` of position ``pos`` with one pread per disk.

        Only when ``pos`` is the one position missing there, no strip is lost and no latent error
        is hit; False (nothing done) otherwise, and the caller goes stripe by stripe.
        """
        lay = self._layout
        others = [p for p in range(lay.width) if p != pos]
        if any(not self._readable(set_, p, first + n - 1) for p in others):
            return False
        if self._lost and any((set_, s, p) in self._lost for s in range(first, first + n) for p in range(lay.width)):
            return False
        span = (first * STRIP, n * STRIP)
        if not any(self._disk_at(set_, p).holds_data(*span) for p in others) and not self._disks[d].holds_data(*span):
            return True  # never written anywhere: the spare's hole already reads the zeros it would get
        if self._rebuild_buffer is None:
            self._rebuild_buffer = np.empty((lay.width, BATCH * STRIP), np.uint8)
        cols = {p: self._rebuild_buffer[p, : n * STRIP] for p in others}
        try:
            for p, col in cols.items():
                self._disk_at(set_, p).read_into(first * STRIP, memoryview(col))
        except LatentError:
            return False
        if lay.mirror:
            out = cols[others[0]]
        else:
            out = xor_parity(list(cols.values()), out=self._rebuild_buffer[pos, : n * STRIP])
            if lay.parity == 2:
                for i in range(n):
                    stripe = first + i
                    q = lay.parity_positions(stripe)[1]
                    part = slice(i * STRIP, (i + 1) * STRIP)
                    if q != pos:  # P or data: the xor of every other strip but Q
                        np.bitwise_xor(out[part], cols[q][part], out=out[part])
                    else:
                        data = [cols[lay.data_position(stripe, j)][part] for j in range(lay.k)]
                        out[part] = pq_parity(data)[1]
        self._disks[d].write(first * STRIP, out)
        return True

    def background_step(self: RaidStore, budget: int) -> bool:
        """Rebuild the next stripes (about ``budget`` bytes written to spares); True while work remains."""
        self.settle()  # ``held`` rule 3
        if self._failed or self._dirty.closed:
            return False
        rebuilding = self._rebuilding()
        if not rebuilding:
            return self._verify_step(budget)
        set_, pos, d = rebuilding[0]
        stripes = self._layout.stripes
        todo = max(1, budget // STRIP)
        while todo > 0 and self._rebuilt[d] < stripes:
            stripe = self._rebuilt[d]
            n = min(todo, BATCH, stripes - stripe)
            if self._rebuild_batch(set_, pos, d, stripe, n):
                todo -= n
                self._rebuilt[d] = stripe + n
                self._since_save += n
                if self._since_save >= SAVE_EVERY:
                    self._save()
                continue
            todo -= 1
            try:
                col = self._columns(set_, stripe, 0, STRIP, [pos])[pos]
            except UnrecoverableRead:
                self._lost.add((set_, stripe, pos))
                self.events(
                    "ERROR",
                    f"Member {self.name} lost RAID blocks: stripe {stripe} of RAID set {set_ + 1}"
                    " could not be rebuilt.",
                )
                self._save()
            else:
                self._disks[d].write(stripe * STRIP, col)
            self._rebuilt[d] = stripe + 1
            self._since_save += 1
            if self._since_save >= SAVE_EVERY:
                self._save()
        if self._rebuilt[d] >= stripes:
            self.events("INFO", f"Reconstruction of RAID set {set_ + 1} finished on disk {d} of member {self.name}.")
            self._save()
        return bool(self._rebuilding()) or self._verify is not None

    # ------------------------------------------------------------------ verification (rule 3)

    def start_verify(self: RaidStore) -> None:
        """Begin verifying every stripe (RAID status ``verifying``), as the array does after a RAID
        set is initialised; already verifying: nothing changes."""
        self.settle()  # ``held`` rule 3
        self._check_online()
        if self._verify is None:
            self._verify, self._mismatches = 0, 0
            self.events("INFO", f"Verification of the RAID set(s) started on member {self.name}.")
            self._save()

    def _verify_step(self: RaidStore, budget: int) -> bool:
        """Verify the next stripes (about ``budget`` bytes of each disk); True while work remains."""
        if self._verify is None:
            return False
        if any(d is None for r in self._roles for d in r):
            return False  # degraded: nothing to compare against; resumes once the set is whole
        stripes = self._layout.stripes
        todo = max(1, budget // STRIP)
        while todo > 0 and self._verify < stripes:
            n = min(todo, BATCH, stripes - self._verify)
            for set_ in range(self._layout.sets):
                self._verify_batch(set_, self._verify, n)
            self._verify += n
            todo -= n
            self._since_save += n
            if self._since_save >= SAVE_EVERY:
                self._save()
        if self._verify < stripes:
            return True
        level = "WARNING" if self._mismatches else "INFO"
        self.events(
            level,
            f"Verification of the RAID set(s) finished on member {self.name}: "
            f"{self._mismatches} parity mismatch(es) corrected.",
        )
        self._verify = None
        self._save()
        return False

    def _verify_batch(self: RaidStore, set_: int, first: int, n: int) -> None:
        """Verify stripes ``[first, first + n)`` of one set, reading each disk once when it can."""
        lay = self._layout
        span = (first * STRIP, n * STRIP)
        if not any(self._disk_at(set_, p).holds_data(*span) for p in range(lay.width)):
            return  # never written: every strip reads zeros, and zeros are their own parity
        if self._rebuild_buffer is None:
            self._rebuild_buffer = np.empty((lay.width, BATCH * STRIP), np.uint8)
        cols = [self._rebuild_buffer[p, : n * STRIP] for p in range(lay.width)]
        try:
            for p, col in enumerate(cols):
                self._disk_at(set_, p).read_into(first * STRIP, memoryview(col))
        except LatentError:
            for stripe in range(first, first + n):
                self._verify_stripe_slowly(set_, stripe)
            return
        for i in range(n):
            part = slice(i * STRIP, (i + 1) * STRIP)
            self._check_parity(set_, first + i, {p: col[part] for p, col in enumerate(cols)})

    def _verify_stripe_slowly(self: RaidStore, set_: int, stripe: int) -> None:
        """One stripe, each strip read alone: a latent error is rebuilt and rewritten (``_columns``)."""
        if self._lost and any((set_, stripe, p) in self._lost for p in range(self._layout.width)):
            return
        try:
            got = self._columns(set_, stripe, 0, STRIP, list(range(self._layout.width)))
        except UnrecoverableRead:
            return  # counted and reported by the read path's rules; nothing to compare
        self._check_parity(set_, stripe, got)

    def _check_parity(self: RaidStore, set_: int, stripe: int, cols: dict[int, np.ndarray]) -> None:
        """Rewrite the redundancy of one stripe if it disagrees with the data (md ``repair``)."""
        lay = self._layout
        if self._lost and any((set_, stripe, p) in self._lost for p in range(lay.width)):
            return
        ppos = lay.parity_positions(stripe)
        data = [cols[lay.data_position(stripe, j)] for j in range(lay.k)]
        expected = [data[0]] if lay.mirror else [xor_parity(data)] if lay.parity == 1 else list(pq_parity(data))
        wrong = [(p, e) for p, e in zip(ppos, expected) if not np.array_equal(cols[p], e)]
        if wrong:
            self._mismatches += 1
            for p, e in wrong:
                self._disk_at(set_, p).write(stripe * STRIP, e)
