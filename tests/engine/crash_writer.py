"""Crash-test writer: drives the engine with a seeded random workload until it is killed.

Run as a separate process by ``test_crash.py``::

    python crash_writer.py GROUP_DIR SEED --round R --log ACK_LOG [--max-ops N]
                           [--flush-every K] [--kill-self-after-flush] [--crash-point N]

It opens the group (created beforehand with ``Group.init``), creates the base
volumes if they are missing, then performs a random but seed-determined
sequence of operations: writes of random sizes at random, often unaligned,
offsets (crossing 4 KiB chunk and 15 MiB page boundaries), WRITE SAME, unmaps,
snapshots (and writes after them: copy-on-write), writes to snapshots, clones
of volumes and of snapshots, snapshot and clone deletions, restores, resizes
(grow and shrink, with or without the snapshot taken first), flushes and
close/reopen cycles.

The acknowledgement log
-----------------------
One JSON object per line, appended with a single ``os.write`` on an
``O_APPEND`` descriptor: once ``os.write`` returns the line is in the OS page
cache, so a ``kill -9`` of this process cannot lose it. For every operation::

    {"t": "intent", "id": ID, "op": OP, ...parameters}   before the engine call
    {"t": "ack", "id": ID, ...results}                    after it returned

An operation is acknowledged only once its ``ack`` line is in the log; at a
kill at most one operation (the last ``intent``) is in flight. The data of a
write is not logged: it is ``op_data(seed, id, length)``, so the verifier
regenerates it. An operation that adds or removes objects lists, in its
ack, every volume and snapshot left (``objects``); so does a write to v2 that
deleted v2's oldest snapshots under its ``delete-oldest`` snapshot-reserve
policy. Other lines: ``start`` (the group is open), ``error`` (an operation
raised: the writer exits with status 3 or 4), ``end`` (clean exit),
``crash_point`` (``--crash-point``: the I/O event at which it killed itself).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from array_sim import Group
from array_sim.units import PAGE_SIZE, SECTOR_SIZE, GiB
from array_sim.volume_device import VolumeDevice

#: Member size the tests create the group with (a sparse file).
MEMBER_SIZE = 8 * GiB
#: Base volumes: name -> (pages, thin).
BASE_VOLUMES = {"v0": (3, False), "v1": (2, True), "v2": (2, False)}
#: Settings of every volume but v2: snapshot-reserve depletion borrows pool space.
VOLUME_SETTINGS = {"snap_reserve": 500, "snap_depletion": "borrow"}
#: v2 has a small snapshot reserve and the default policy: copy-on-write writes
#: to it delete its oldest snapshots (a data operation's ack then lists the
#: objects left). Snapshots of v2 are not written to (that could fail with
#: SpaceExhausted, by design, when no other snapshot can be deleted).
DEPLETING_SETTINGS = {"snap_reserve": 50, "snap_depletion": "delete-oldest"}


MAX_SNAPSHOTS = 3
MAX_CLONES = 2
#: Volumes are resized between 1 and this many pages.
MAX_PAGES = 3
#: Operation ids: round * ROUND_STRIDE + sequence number.
ROUND_STRIDE = 1_000_000
#: Operations that change data only (no object appears; only v2's snapshots may go).
DATA_OPS = {"write", "write_same", "unmap"}

SECTORS_PER_PAGE = PAGE_SIZE // SECTOR_SIZE


def settings_for(volume: str) -> dict[str, Any]:
    return DEPLETING_SETTINGS if volume == "v2" else VOLUME_SETTINGS


def op_data(seed: int, op_id: int, length: int) -> bytes:
    """The bytes written by operation ``op_id`` (deterministic, distinct per sector)."""
    return np.random.Generator(np.random.PCG64([seed, op_id])).bytes(length)


class AckLog:
    """Append-only JSON-lines log that survives the death of this process line by line."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def put(self, **record: Any) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        written = os.write(self.fd, line)
        if written != len(line):  # never seen for regular files; make it loud
            raise OSError(f"short write to the ack log ({written} of {len(line)})")


class Writer:
    def __init__(self, args: argparse.Namespace, log: AckLog) -> None:
        self.directory = args.group_dir
        self.seed = args.seed
        self.round = args.round
        self.rng = random.Random(f"crash-writer/{args.seed}/{args.round}")
        self.log = log
        self.counter = 0
        self.group = Group.open(self.directory)
        self.log.put(t="start", round=self.round, seed=self.seed, pid=os.getpid())

    # ------------------------------------------------------------ bookkeeping

    def objects(self) -> list[list[str]]:
        """Every volume and snapshot as [volume, snapshot or ""], sorted."""
        g = self.group
        keys = [[v.name, ""] for v in g.volumes.values()]
        keys += [[g.volumes[s.volume_id].name, s.name] for s in g.snapshots.values()]
        return sorted(keys)

    def volume_names(self) -> list[str]:
        return sorted(v.name for v in self.group.volumes.values())

    def snapshot_names(self, volume: str) -> list[str]:
        return [s.name for s in self.group.snapshots_of(self.group.volume(volume))]

    def clones(self) -> list[str]:
        return [n for n in self.volume_names() if n not in BASE_VOLUMES]

    def next_id(self) -> int:
        """The id the next operation will have."""
        return self.round * ROUND_STRIDE + self.counter + 1

    def run(self, op: str, action: Callable[[int], dict[str, Any] | None], **params: Any) -> None:
        """Log the intent, run the operation, log the acknowledgement."""
        op_id = self.next_id()
        self.counter += 1
        self.log.put(t="intent", id=op_id, op=op, seed=self.seed, **params)
        snapshots_before = len(self.group.snapshots)
        objects_before = self.objects() if op in DATA_OPS else []
        try:
            result = action(op_id) or {}
        except Exception:
            self.log.put(t="error", id=op_id, tb=traceback.format_exc())
            sys.exit(3)
        if op in DATA_OPS and len(self.group.snapshots) != snapshots_before:
            gone = [key for key in objects_before if key not in self.objects()]
            if len(gone) != snapshots_before - len(self.group.snapshots) or any(
                not snap or settings_for(vol) != DEPLETING_SETTINGS for vol, snap in gone
            ):
                change = f"{objects_before} -> {self.objects()}"
                self.log.put(t="error", id=op_id, tb=f"{op} changed the snapshots: {change}")
                sys.exit(4)
        if op not in DATA_OPS or len(self.group.snapshots) != snapshots_before:
            result["objects"] = self.objects()
        self.log.put(t="ack", id=op_id, **result)

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Create missing base volumes; repair what an interrupted operation left half done."""
        g = self.group
        for name, (pages, thin) in BASE_VOLUMES.items():
            if name not in self.volume_names():

                def create(_id: int, name: str = name, pages: int = pages, thin: bool = thin) -> None:
                    g.create_volume(name, pages * PAGE_SIZE, thin=thin, **settings_for(name))

                self.run("create_volume", create, volume=name, size=pages * PAGE_SIZE, thin=thin)
        for volume in list(g.volumes.values()):
            name = volume.name
            if any(getattr(volume, k) != v for k, v in settings_for(name).items()):
                # a clone whose "clone" operation was killed before its configure_volume step
                self.run("configure", lambda _id, n=name: g.configure_volume(n, **settings_for(n)), volume=name)

        def all_online(_id: int) -> None:
            for volume in list(g.volumes.values()):
                if not volume.online:
                    g.set_volume_online(volume.name, True)
                for snapshot in g.snapshots_of(volume):
                    if not snapshot.online:
                        g.set_snapshot_online(volume.name, snapshot.name, True)

        if not all(v.online for v in g.volumes.values()) or not all(s.online for s in g.snapshots.values()):
            self.run("online", all_online)

    # ------------------------------------------------------------- operations

    def size_of(self, volume: str, snapshot: str) -> int:
        g = self.group
        obj = g.snapshot(volume, snapshot) if snapshot else g.volume(volume)
        return obj.pages * PAGE_SIZE

    def pick_range(self, size: int, max_sectors: int | None = None) -> tuple[int, int]:
        """(byte offset, byte length), sector-aligned, often crossing chunk and page boundaries."""
        rng = self.rng
        total = size // SECTOR_SIZE
        kind = rng.random()
        if kind < 0.45:
            n = rng.randint(1, 24)  # up to 12 KiB: partial chunks
        elif kind < 0.80:
            n = rng.randint(1, 1024)  # up to 512 KiB
        elif kind < 0.96:
            n = rng.randint(1024, 8192)  # up to 4 MiB
        else:
            n = rng.randint(8192, 40960)  # up to 20 MiB: spans a whole page boundary
        n = min(n, total, max_sectors or total)
        where = rng.random()
        pages = total // SECTORS_PER_PAGE
        if where < 0.35 and pages > 1 and n > 1:
            boundary = rng.randint(1, pages - 1) * SECTORS_PER_PAGE
            start = boundary - rng.randint(1, n - 1)  # [start, start+n) crosses the page boundary
        elif where < 0.55:
            start = rng.randrange(0, total - n + 1) // 8 * 8  # 4 KiB-aligned start
        elif where < 0.65:
            start = total - n  # the very end of the device
        else:
            start = rng.randrange(0, total - n + 1)
        start = max(0, min(start, total - n))
        return start * SECTOR_SIZE, n * SECTOR_SIZE

    def pick_object(self, snapshots: bool = False) -> tuple[str, str]:
        volume = self.rng.choice(self.volume_names())
        snaps = self.snapshot_names(volume)
        if snapshots and snaps and settings_for(volume) != DEPLETING_SETTINGS:
            return volume, self.rng.choice(snaps)
        return volume, ""

    def device(self, volume: str, snapshot: str) -> VolumeDevice:
        return self.group.device(volume, snapshot or None)

    def op_write(self, to_snapshot: bool = False, fua: bool = False) -> None:
        volume, snapshot = self.pick_object(snapshots=to_snapshot)
        size = self.size_of(volume, snapshot)
        if self.rng.random() < 0.05:  # whole pages: a copy-on-write page owns every chunk and drops its backing
            first = self.rng.randrange(size // PAGE_SIZE)
            offset, length = first * PAGE_SIZE, min(self.rng.randint(1, 2), size // PAGE_SIZE - first) * PAGE_SIZE
        else:
            offset, length = self.pick_range(size)

        def action(op_id: int) -> None:
            data = op_data(self.seed, op_id, length)
            self.device(volume, snapshot).write(offset // SECTOR_SIZE, data, fua=fua)

        self.run("write", action, volume=volume, snapshot=snapshot, offset=offset, length=length, fua=fua)

    def op_write_same(self) -> None:
        volume, snapshot = self.pick_object(snapshots=self.rng.random() < 0.1)
        offset, length = self.pick_range(self.size_of(volume, snapshot))
        zero = self.rng.random() < 0.35
        unmap = zero and self.rng.random() < 0.5

        def action(op_id: int) -> None:
            block = bytes(SECTOR_SIZE) if zero else op_data(self.seed, op_id, SECTOR_SIZE)
            self.device(volume, snapshot).write_same(offset // SECTOR_SIZE, length // SECTOR_SIZE, block, unmap=unmap)

        self.run(
            "write_same", action,
            volume=volume, snapshot=snapshot, offset=offset, length=length, zero=zero, unmap=unmap,
        )  # fmt: skip

    def op_unmap(self) -> None:
        volume, snapshot = self.pick_object(snapshots=self.rng.random() < 0.1)
        size = self.size_of(volume, snapshot)
        if self.rng.random() < 0.3:  # whole pages: they leave the page table
            pages = size // PAGE_SIZE
            first = self.rng.randrange(pages)
            count = self.rng.randint(1, pages - first)
            offset, length = first * PAGE_SIZE, count * PAGE_SIZE
        else:
            offset, length = self.pick_range(size)

        def action(_id: int) -> None:
            self.device(volume, snapshot).unmap(offset // SECTOR_SIZE, length // SECTOR_SIZE)

        self.run("unmap", action, volume=volume, snapshot=snapshot, offset=offset, length=length)

    def op_snapshot(self) -> None:
        volume = self.rng.choice(self.volume_names())
        if len(self.snapshot_names(volume)) >= MAX_SNAPSHOTS:
            self.op_delete_snapshot(volume, oldest=True)
            return

        def action(op_id: int) -> None:
            name = f"s{op_id}"
            self.group.create_snapshot(volume, name)
            self.group.set_snapshot_online(volume, name, True)

        self.run("snapshot", action, volume=volume, name=f"s{self.next_id()}")

    def op_delete_snapshot(self, volume: str | None = None, oldest: bool = False) -> None:
        candidates = [v for v in self.volume_names() if self.snapshot_names(v)]
        if volume is None:
            if not candidates:
                return
            volume = self.rng.choice(candidates)
        snaps = self.snapshot_names(volume)
        name = snaps[0] if oldest else self.rng.choice(snaps)
        self.run("delete_snapshot", lambda _id: self.group.delete_snapshot(volume, name), volume=volume, name=name)

    def op_clone(self) -> None:
        clones = self.clones()
        if len(clones) >= MAX_CLONES:
            victim = self.rng.choice(clones)

            def delete(_id: int) -> None:
                self.group.set_volume_online(victim, False)
                self.group.delete_volume(victim)

            self.run("delete_volume", delete, volume=victim)
            return
        source, snapshot = self.pick_object(snapshots=self.rng.random() < 0.5)
        name = f"c{self.next_id()}"

        def action(_id: int) -> None:
            self.group.clone_volume(source, name, snapshot or None)
            self.group.configure_volume(name, **VOLUME_SETTINGS)

        self.run("clone", action, source=source, snapshot=snapshot, name=name)

    def op_restore(self) -> None:
        candidates = [v for v in self.volume_names() if self.snapshot_names(v)]
        if not candidates:
            return
        volume = self.rng.choice(candidates)
        snapshot = self.rng.choice(self.snapshot_names(volume))
        g = self.group

        def action(_id: int) -> dict[str, Any]:
            g.set_volume_online(volume, False)
            g.set_snapshot_online(volume, snapshot, False)
            saved = g.restore_volume(volume, snapshot)
            g.set_volume_online(volume, True)
            g.set_snapshot_online(volume, snapshot, True)
            g.set_snapshot_online(volume, saved.name, True)
            return {"saved": saved.name}

        self.run("restore", action, volume=volume, name=snapshot)

    def op_resize(self) -> None:
        volume = self.rng.choice(self.volume_names())
        current = self.group.volume(volume).pages
        pages = self.rng.choice([p for p in range(1, MAX_PAGES + 1) if p != current])
        snapshot = self.rng.random() < 0.5 and len(self.snapshot_names(volume)) < MAX_SNAPSHOTS
        g = self.group

        def action(_id: int) -> dict[str, Any]:
            shrink = pages < current
            if shrink:
                g.set_volume_online(volume, False)
            taken = g.resize_volume(volume, pages * PAGE_SIZE, snapshot=snapshot)
            if shrink:
                g.set_volume_online(volume, True)
            if taken is not None:
                g.set_snapshot_online(volume, taken.name, True)
            return {"taken": taken.name if taken is not None else ""}

        self.run("resize", action, volume=volume, pages=pages, snapshot=snapshot)

    def op_flush(self) -> None:
        self.run("flush", lambda _id: self.group.flush())

    def op_reopen(self) -> None:
        def action(_id: int) -> None:
            self.group.close()
            self.group = Group.open(self.directory)

        self.run("reopen", action)

    def step(self) -> None:
        r = self.rng.random()
        if r < 0.50:
            self.op_write()
        elif r < 0.53:
            self.op_write(fua=True)
        elif r < 0.57:
            self.op_write(to_snapshot=True)
        elif r < 0.64:
            self.op_write_same()
        elif r < 0.73:
            self.op_unmap()
        elif r < 0.82:
            self.op_snapshot()
        elif r < 0.86:
            self.op_delete_snapshot()
        elif r < 0.91:
            self.op_clone()
        elif r < 0.94:
            self.op_restore()
        elif r < 0.96:
            self.op_resize()
        elif r < 0.98:
            self.op_flush()
        else:
            self.op_reopen()


class _CatalogConnection:
    """A sqlite connection that reports COMMITs as crash points (everything else passes through)."""

    def __init__(self, db: sqlite3.Connection, event: Callable[[str, str], None]) -> None:
        self._db = db
        self._event = event

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql != "COMMIT":
            return self._db.execute(sql, *args)
        self._event("catalog.commit", "before")
        cursor = self._db.execute(sql, *args)
        self._event("catalog.commit", "after")
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def install_crash_point(point: int, log: AckLog) -> None:
    """SIGKILL this process at the ``point``-th I/O event of the engine, counted from Group.open.

    Events: before and after every catalog COMMIT, every disk file write
    (``Disk.write`` of a RAID member; ``MemberStore.write`` before RAID)
    (which is split in two ``pwrite`` halves with an event between them, to
    leave a torn write), and every ``MemberStore.discard`` (hole punch) and
    ``ChunkMap.clear``/``forget``/``mark`` (chunk presence), for those of these
    methods the engine version at hand has. The engine's methods are wrapped
    at run time, in this process only; a ``crash_point`` line in the ack log
    names the event.
    """
    from array_sim.catalog import Catalog
    from array_sim.chunk_map import ChunkMap
    try:  # the disk files of a RAID member (this engine), else the one member file (releases before RAID)
        from array_sim.raid.disks import Disk as MemberStore
    except ImportError:
        from array_sim.member_store import MemberStore

    count = 0

    def event(name: str, side: str) -> None:
        nonlocal count
        count += 1
        if count == point:
            log.put(t="crash_point", point=point, event=name, side=side)
            os.kill(os.getpid(), signal.SIGKILL)

    def around(cls: type, method: str, name: str) -> None:
        original = getattr(cls, method, None)
        if original is None:  # this version of the engine does without it
            return

        def wrapper(*args: Any) -> Any:
            event(name, "before")
            result = original(*args)
            event(name, "after")
            return result

        setattr(cls, method, wrapper)

    original_write = MemberStore.write

    def write(self: Any, *args: Any) -> None:
        *where, data = args  # (slot, offset) of a member file, (offset,) of a disk
        event("store.write", "before")
        view = memoryview(data)
        half = len(view) // 2 // SECTOR_SIZE * SECTOR_SIZE
        if half:
            original_write(self, *where, view[:half])
            event("store.write", "half")
        where[-1] += half
        original_write(self, *where, view[half:])
        event("store.write", "after")

    MemberStore.write = write  # type: ignore[method-assign]
    around(MemberStore, "discard", "store.discard")
    for method in ("clear", "forget", "mark"):  # the names differ between engine versions
        around(ChunkMap, method, f"chunks.{method}")
    original_init = Catalog.__init__

    def catalog_init(self: Catalog, path: Any) -> None:
        original_init(self, path)
        self.db = _CatalogConnection(self.db, event)  # type: ignore[assignment]

    Catalog.__init__ = catalog_init  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group_dir")
    parser.add_argument("seed", type=int)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--log", required=True, help="the acknowledgement log (appended to)")
    parser.add_argument("--max-ops", type=int, default=1_000_000, help="stop (cleanly) after this many operations")
    parser.add_argument("--flush-every", type=int, default=0, help="Group.flush() after every K operations")
    parser.add_argument(
        "--kill-self-after-flush", action="store_true",
        help="after --max-ops operations, flush and SIGKILL this process (no close)",
    )  # fmt: skip
    parser.add_argument(
        "--crash-point", type=int, default=0,
        help="SIGKILL this process at the N-th I/O event of the engine (see install_crash_point)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    log = AckLog(args.log)
    if args.crash_point:
        install_crash_point(args.crash_point, log)
    writer = Writer(args, log)
    writer.setup()
    for done in range(1, args.max_ops + 1):
        writer.step()
        if args.flush_every and done % args.flush_every == 0:
            writer.op_flush()
    if args.kill_self_after_flush:
        writer.op_flush()
        os.kill(os.getpid(), signal.SIGKILL)
    writer.group.close()
    writer.log.put(t="end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
