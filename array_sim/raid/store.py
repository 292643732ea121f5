"""``RaidStore``: a member's page slots over N sparse disk files with a PS Series RAID policy.

Rules of this module:

1. **Layout** is ``policy`` (sets, spares) and ``layout`` (64 KiB strips, left-symmetric parity,
   striping over sets). Which physical disk holds which set position is the role table of the
   superblock (``superblock``): a spare that takes a failed disk's place takes its role.
2. **Writes.** A stripe whose every strip is covered is encoded from the new data alone. A partial
   write works on the stripe's column range (the touched bytes of its strips, widened to 8 bytes):
   read-modify-write reads the old columns of the touched strips and of P (and Q) and applies the
   delta; reconstruct-write reads the columns of the strips it does not fully overwrite and encodes
   fresh parity. Read-modify-write is used only when every strip of the stripe is readable and it
   reads less. Degraded stripes always reconstruct-write, and write every disk that is present,
   the spare being rebuilt included.
3. **Reads.** A readable strip is one ``pread``. A strip that is missing (failed disk, spare not yet
   rebuilt past that stripe) or hits a latent sector error is rebuilt from the rest of its stripe;
   a latent error is then corrected by rewriting the rebuilt bytes (the disk remaps on write) and
   counted on the disk. When a strip cannot be rebuilt the store raises ``UnrecoverableRead`` (a
   latent error where no redundancy is left) or ``MemberOffline`` (beyond tolerance); it never
   returns wrong bytes.
4. **Tolerance.** A set tolerates as many missing positions as it has parity (RAID 6: two, RAID 5 and
   mirrors: one); a spare being rebuilt counts as missing. One more and the member is failed:
   every read and write raises ``MemberOffline`` and ``health().online`` is False, for good (the
   superblock keeps it).
5. **The write hole is closed by a dirty-stripe map**: one byte per stripe of every set in an mmap'ed
   file (``raid.dirty``), as ``chunk_map`` keeps chunk presence. A stripe is marked before any of
   its disks is written and cleared after data and parity are; a store into the map is in the page
   cache at once, so it survives ``kill -9``. ``open`` resyncs every marked stripe (parity
   recomputed from the data, a mirror's second copy from the first) before serving, so data an
   interrupted write left is old or new per sector, and parity agrees with it. A held stripe
   (``held``) stays marked until its parity is written, so the same resync covers it.
6. **The limit:** a crash during a write to a stripe that is also missing a data strip (md's
   "dirty degraded" array) leaves that strip unknowable: its parity may mix old and new data. The
   store then marks the missing data strips of that stripe lost (superblock ``lost``,
   ``lost_blocks`` True, eqlMemberLostRaidBlocks): reading them raises ``UnrecoverableRead`` until a
   write covers the whole strip; the present data of the stripe stays readable, and no rebuild
   uses a lost strip as input. A stripe that cannot be rebuilt during reconstruction (a latent
   error with no redundancy left) marks the rebuilt strip lost the same way.
7. **Faults are deterministic calls**: ``fail_disk``, ``replace_disk``, ``add_bad_sectors``.
   Reconstruction, then verification (``start_verify``: RAID status ``verifying``), run only in
   ``background_step`` slices; their cursors are saved every 4 MiB.
8. **Where the code is**: the store's state here; reads in ``reads``, writes in ``writes`` and
   ``held``; resync, faults, reconstruction and verification in ``maintenance`` (mixins on this
   class's state).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidRequest
from ..member_store import EventSink, MemberOffline, StoreHealth
from ..units import PAGE_SIZE
from . import superblock
from .aio import AioWriter
from .disks import FAILED, ONLINE, SPARE, Disk
from .held import HeldStripe
from .layout import STRIP, Layout, disk_bytes_for
from .maintenance import Maintenance
from .policy import Geometry, geometry
from .reads import StripeReads
from .writes import StripeWrites

__all__ = ["RaidStore", "DiskInfo", "disk_size_for"]

DIRTY_FILE = "raid.dirty"


def _no_events(level: str, message: str) -> None:
    pass


def disk_size_for(policy: str, disks: int, usable_bytes: int) -> int:
    """Smallest disk size (whole strips) giving at least ``usable_bytes`` under ``policy``."""
    return disk_bytes_for(geometry(policy, disks), usable_bytes)


@dataclass(frozen=True)
class DiskInfo:
    """One disk as ``member select M show disks`` lists it."""

    slot: int
    #: eqlDiskStatus: on-line, spare or failed.
    status: str
    size: int
    errors: int
    #: "set S position P" (both counted from 1), "spare" or "" (failed, no role).
    role: str
    #: Percent rebuilt while the disk is being reconstructed, else None.
    reconstructing: int | None = None


class RaidStore(StripeReads, StripeWrites, Maintenance):
    """Page slots of one member over the disk files in ``directory``."""

    disk_size_for = staticmethod(disk_size_for)

    def __init__(self, directory: Path, state: dict[str, Any], name: str | None, events: EventSink | None) -> None:
        self.directory = directory
        self.policy: str = state["policy"]
        self.disk_size: int = state["disk_size"]
        self.strip_size: int = state["strip_size"]
        if self.strip_size != STRIP:
            raise ValueError(f"{directory}: strip size {self.strip_size} is not {STRIP}")
        self.name = name or state.get("name") or "member"
        self.events: EventSink = events or _no_events
        self._geo: Geometry = geometry(self.policy, state["disks"])
        self._layout = Layout(self._geo, self.disk_size)
        self.capacity_pages = self._layout.capacity // PAGE_SIZE
        self._roles: list[list[int | None]] = [list(r) for r in state["roles"]]
        ds = state["disk_states"]
        self._status: list[str] = [d["status"] for d in ds]
        self._rebuilt: list[int] = [d["rebuilt"] for d in ds]
        self._errors: list[int] = [d["errors"] for d in ds]
        self._failed: bool = state["failed"]
        self._lost: set[tuple[int, int, int]] = {tuple(x) for x in state["lost"]}  # type: ignore[misc]
        #: Next stripe to verify while verifying (``maintenance`` rule 3), else None; mismatches found.
        self._verify: int | None = state.get("verify")
        self._mismatches: int = state.get("mismatches", 0)
        self._disks = [
            Disk(directory / f"disk-{i:02d}.img", self.disk_size, d["bad"]) for i, d in enumerate(ds)
        ]
        dirty_len = self._layout.sets * self._layout.stripes
        with open(directory / DIRTY_FILE, "r+b") as file:
            self._dirty = mmap.mmap(file.fileno(), dirty_len)
        self._since_save = 0
        self._rebuild_buffer: np.ndarray | None = None
        #: Reads of several strips are assembled here, then copied out once: a buffer used again
        #: costs no page faults, where a new megabyte costs a fault per 4 KiB page.
        self._read_buffer = bytearray()
        self._whole = self._is_whole()
        #: Every disk write of a RAID write in one system call (``writes`` rule 3), or None without AIO.
        self._aio = AioWriter.open()
        #: Held stripes by stripe (``held``), and their buffers kept for reuse.
        self._held: dict[int, HeldStripe] = {}
        self._spare_held: list[HeldStripe] = []
        self._resync()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls,
        directory: Path,
        policy: str,
        disks: int,
        disk_size: int,
        name: str | None = None,
        events: EventSink | None = None,
    ) -> RaidStore:
        """A new member of ``disks`` empty disk files of ``disk_size`` bytes (a multiple of 64 KiB)."""
        geo = geometry(policy, disks)
        layout = Layout(geo, disk_size)
        if layout.capacity < PAGE_SIZE:
            raise InvalidRequest(f"Disks of {disk_size} bytes hold less than one page under {policy}.")
        directory.mkdir(parents=True, exist_ok=True)
        for i in range(disks):
            Disk.create(directory / f"disk-{i:02d}.img", disk_size).close()
        with open(directory / DIRTY_FILE, "wb") as file:
            file.truncate(layout.sets * layout.stripes)
        roles: list[list[int | None]] = [[s * geo.width + p for p in range(geo.width)] for s in range(geo.sets)]
        in_role = {d for r in roles for d in r}
        state = {
            "version": 1,
            "policy": policy,
            "disks": disks,
            "disk_size": disk_size,
            "strip_size": STRIP,
            "name": name,
            "roles": roles,
            "disk_states": [
                {
                    "status": ONLINE if i in in_role else SPARE,
                    "rebuilt": layout.stripes if i in in_role else 0,
                    "errors": 0,
                    "bad": [],
                }
                for i in range(disks)
            ],
            "failed": False,
            "lost": [],
        }
        superblock.save(directory, state)
        return cls(directory, state, name, events)

    @classmethod
    def open(cls, directory: Path, name: str | None = None, events: EventSink | None = None) -> RaidStore:
        """Reopen a member; stripes a crash left dirty are resynced before this returns."""
        return cls(directory, superblock.load(directory), name, events)

    def _state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "policy": self.policy,
            "disks": self._geo.disks,
            "disk_size": self.disk_size,
            "strip_size": STRIP,
            "name": self.name,
            "roles": self._roles,
            "disk_states": [
                {"status": s, "rebuilt": r, "errors": e, "bad": d.bad}
                for s, r, e, d in zip(self._status, self._rebuilt, self._errors, self._disks)
            ],
            "failed": self._failed,
            "lost": sorted(self._lost),
            "verify": self._verify,
            "mismatches": self._mismatches,
        }

    def _save(self) -> None:
        superblock.save(self.directory, self._state())
        self._since_save = 0
        self._whole = self._is_whole()

    def _is_whole(self) -> bool:
        """Every position of every set on-line and rebuilt, and nothing lost (``writes`` rule 4).

        Kept in ``_whole``, refreshed by ``_save``: every change of these saves the superblock."""
        stripes = self._layout.stripes
        return not self._failed and not self._lost and all(
            d is not None and self._status[d] == ONLINE and self._rebuilt[d] >= stripes for r in self._roles for d in r
        )

    def flush(self) -> None:
        self.settle()
        for i, disk in enumerate(self._disks):
            if self._status[i] != FAILED:
                disk.flush()
        self._dirty.flush()

    def close(self) -> None:
        """Close the disks and the dirty map; closing again does nothing."""
        if self._dirty.closed:
            return
        self.settle()
        self._save()
        for disk in self._disks:
            disk.close()
        if self._aio is not None:
            self._aio.close()
        self._dirty.close()

    # ------------------------------------------------------------------ introspection

    @property
    def lost_blocks(self) -> bool:
        """eqlMemberLostRaidBlocks: some data could not be kept (rule 6) or the member failed."""
        return self._failed or bool(self._lost)

    def disks(self) -> list[DiskInfo]:
        where = {d: (s, p) for s, r in enumerate(self._roles) for p, d in enumerate(r) if d is not None}
        out = []
        stripes = self._layout.stripes
        for i, status in enumerate(self._status):
            if i in where:
                role = f"set {where[i][0] + 1} position {where[i][1] + 1}"
            else:
                role = SPARE if status == SPARE else ""
            rebuilding = i in where and self._rebuilt[i] < stripes
            out.append(
                DiskInfo(i, status, self.disk_size, self._errors[i], role,
                         self._rebuilt[i] * 100 // stripes if rebuilding else None)
            )
        return out

    def _rebuilding(self) -> list[tuple[int, int, int]]:
        return [
            (s, p, d)
            for s, r in enumerate(self._roles)
            for p, d in enumerate(r)
            if d is not None and self._rebuilt[d] < self._layout.stripes
        ]

    def health(self) -> StoreHealth:
        spares, lost = self._status.count(SPARE), self.lost_blocks
        if self._failed:
            return StoreHealth("failed", 0, spares, False, lost)
        rebuilding = self._rebuilding()
        if rebuilding:
            done = sum(self._rebuilt[d] for _, _, d in rebuilding)
            pct = done * 100 // (len(rebuilding) * self._layout.stripes)
            return StoreHealth("reconstructing", pct, spares, True, lost)
        if any(d is None for r in self._roles for d in r):
            return StoreHealth("degraded", 0, spares, True, lost)
        if self._verify is not None:
            return StoreHealth("verifying", self._verify * 100 // self._layout.stripes, spares, True, lost)
        return StoreHealth("ok", 0, spares, True, lost)

    # ------------------------------------------------------------------ disk access (every mixin's)

    def _readable(self, set_: int, pos: int, stripe: int) -> bool:
        d = self._roles[set_][pos]
        return d is not None and self._status[d] == ONLINE and self._rebuilt[d] > stripe

    def _writable(self, set_: int, pos: int) -> bool:
        d = self._roles[set_][pos]
        return d is not None and self._status[d] == ONLINE

    def _disk_at(self, set_: int, pos: int) -> Disk:
        d = self._roles[set_][pos]
        assert d is not None
        return self._disks[d]

    def _check_online(self) -> None:
        if self._failed:
            raise MemberOffline(
                f"member {self.name} is offline: more disks failed than RAID policy {self.policy} tolerates"
            )
