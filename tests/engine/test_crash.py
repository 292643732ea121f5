"""Crash durability of the block engine: kill -9 a writer at random moments, reopen, verify.

The engine's contract: once a write (``VolumeDevice.write``/``unmap``/
``write_same``) or a management operation (``create_volume``,
``create_snapshot``, ``clone_volume``, ``delete_snapshot``, ``delete_volume``,
``restore_volume``) has returned, a ``kill -9`` of the process at any later
moment loses nothing: ``Group.open`` finds every volume and snapshot reading
exactly what was acknowledged, and a consistent catalog.

``crash_writer.py`` (a separate process) runs a seeded random workload and
logs an ``intent`` line before and an ``ack`` line after every operation. The
tests here SIGKILL it after a random short time, open the group, and compare
the full contents of every volume and snapshot with a model rebuilt from the
acknowledged operations. The one operation in flight at the kill may be
absent or present; for a data operation each 512-byte sector of its range may
independently hold the old or the new data (a SCSI write is not atomic until
it is acknowledged; the kernel itself can stop a large ``pwrite`` part way on
SIGKILL). Nothing else may differ. Then the group is written to again, and
the cycle repeats on the same group.

Besides the contents, each reopen checks the catalog: sqlite's
``integrity_check`` and ``foreign_key_check`` (before and after
``Group.open``), every page-table entry and backing reference pointing at an
existing physical page, no two physical pages on one (member, slot), no
physical page referenced by nothing, and the engine's in-memory page tables,
reference counts and free-slot lists agreeing with the catalog.

Random kill times mostly land between engine I/O steps; a second test makes
the writer kill itself exactly before, inside or after a catalog commit, a
member-store write or a chunk-map clear (``--crash-point``).

A failure names the workload seed, the round and the operation in flight;
the writer's ops are a function of (seed, round), but where the kill lands is
not, so a failure may need a few runs to reproduce. Set
``ARRAY_SIM_CRASH_SEED`` to run with another workload seed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from array_sim import Group, GroupLocked
from array_sim.catalog import Catalog
from array_sim.units import CHUNK_SIZE, CHUNKS_PER_PAGE, PAGE_SIZE, SECTOR_SIZE

WRITER = Path(__file__).with_name("crash_writer.py")
REPO = Path(__file__).resolve().parents[2]


def _load_writer_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cw = _load_writer_module()

ZERO_CHUNK = bytes(CHUNK_SIZE)
Key = tuple[str, str]  # (volume, snapshot or "")
ANY_STATE_OPS = {"flush", "reopen", "configure", "online"}  # no effect on data or on the set of objects


def key_name(key: Key) -> str:
    return f"{key[0]}@{key[1]}" if key[1] else key[0]


# --------------------------------------------------------------------- model


class Model:
    """Expected contents of every volume and snapshot, as 4 KiB chunks shared between copies.

    ``origin`` keeps, per chunk, the id of the last operation that wrote it (or
    that created it: create_volume, resize), to say which operation a mismatch
    points at.
    """

    def __init__(self) -> None:
        self.objects: dict[Key, list[bytes | None]] = {}
        self.origin: dict[Key, list[int]] = {}

    def copy(self) -> Model:
        other = Model()
        other.objects = {k: list(v) for k, v in self.objects.items()}
        other.origin = {k: list(v) for k, v in self.origin.items()}
        return other

    def keys(self) -> set[Key]:
        return set(self.objects)

    def content(self, key: Key) -> bytes:
        return b"".join(ZERO_CHUNK if c is None else c for c in self.objects[key])

    def put(self, key: Key, offset: int, data: bytes | None, length: int, op_id: int) -> None:
        """Store ``data`` (None: zeros) at ``offset``."""
        chunks, origin = self.objects[key], self.origin[key]
        assert offset >= 0 and offset + length <= len(chunks) * CHUNK_SIZE, (key, offset, length)
        position, end = offset, offset + length
        while position < end:
            index = position // CHUNK_SIZE
            at = position - index * CHUNK_SIZE
            take = min(end - position, CHUNK_SIZE - at)
            piece = None if data is None else data[position - offset : position - offset + take]
            if take == CHUNK_SIZE:
                chunks[index] = piece
            else:
                base = chunks[index]
                if base is not None or piece is not None:
                    base = base if base is not None else ZERO_CHUNK
                    chunks[index] = base[:at] + (piece if piece is not None else bytes(take)) + base[at + take :]
            origin[index] = op_id
            position += take

    def duplicate(self, source: Key, target: Key) -> None:
        self.objects[target] = list(self.objects[source])
        self.origin[target] = list(self.origin[source])

    def drop(self, key: Key) -> None:
        del self.objects[key], self.origin[key]

    def apply(self, intent: dict[str, Any], ack: dict[str, Any]) -> None:
        """Apply one whole operation (its intent record, with results from its ack)."""
        op, op_id = intent["op"], intent["id"]
        if op == "create_volume":
            key = (intent["volume"], "")
            self.objects[key] = [None] * (intent["size"] // CHUNK_SIZE)
            self.origin[key] = [op_id] * (intent["size"] // CHUNK_SIZE)
        elif op in cw.DATA_OPS:
            key = (intent["volume"], intent["snapshot"])
            self.put(key, intent["offset"], data_after(intent), intent["length"], op_id)
        elif op == "snapshot":
            self.duplicate((intent["volume"], ""), (intent["volume"], intent["name"]))
        elif op == "delete_snapshot":
            self.drop((intent["volume"], intent["name"]))
        elif op == "clone":
            self.duplicate((intent["source"], intent["snapshot"]), (intent["name"], ""))
        elif op == "delete_volume":
            for key in [k for k in self.objects if k[0] == intent["volume"]]:
                self.drop(key)
        elif op == "restore":
            volume = intent["volume"]
            self.duplicate((volume, ""), (volume, ack["saved"]))
            self.duplicate((volume, intent["name"]), (volume, ""))
        elif op == "resize":
            key = (intent["volume"], "")
            if ack.get("taken"):
                self.duplicate(key, (key[0], ack["taken"]))
            chunks, origin = self.objects[key], self.origin[key]
            size = intent["pages"] * CHUNKS_PER_PAGE  # shrink: cut; grow: the new pages read zeros
            del chunks[size:], origin[size:]
            origin += [op_id] * (size - len(chunks))
            chunks += [None] * (size - len(chunks))
        elif op not in ANY_STATE_OPS:
            raise AssertionError(f"the model does not know operation {op}")


def data_after(intent: dict[str, Any]) -> bytes | None:
    """The bytes a data operation puts in its range (None: zeros)."""
    op, length = intent["op"], intent["length"]
    if op == "write":
        return cw.op_data(intent["seed"], intent["id"], length)
    if op == "write_same" and not intent["zero"]:
        return cw.op_data(intent["seed"], intent["id"], SECTOR_SIZE) * (length // SECTOR_SIZE)
    return None


def touched_keys(intent: dict[str, Any], model_keys: set[Key], actual_keys: set[Key]) -> set[Key]:
    """Objects whose online state an interrupted operation may have left changed."""
    op = intent["op"]
    every = model_keys | actual_keys
    if op == "online":
        return every
    if op == "snapshot":
        return {(intent["volume"], intent["name"])}
    if op == "clone":
        return {(intent["name"], "")}
    if op in ("create_volume", "delete_volume"):
        return {k for k in every if k[0] == intent["volume"]}
    if op in ("restore", "resize"):
        volume = intent["volume"]
        named_by_engine = {k for k in actual_keys - model_keys if k[0] == volume}
        return {(volume, ""), (volume, intent.get("name", ""))} | named_by_engine
    return set()


# ------------------------------------------------------------ catalog checks


def raw_catalog_problems(path: Path) -> list[str]:
    """Checks on the catalog as the crash left it, through a read-only connection (before Group.open)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as error:  # pragma: no cover - depends on the sqlite build
        return [f"cannot open the catalog read-only after the crash: {error}"]
    try:
        problems = []
        result = db.execute("PRAGMA integrity_check").fetchall()
        if result != [("ok",)]:
            problems.append(f"integrity_check after the crash: {result}")
        bad_keys = db.execute("PRAGMA foreign_key_check").fetchall()
        if bad_keys:
            problems.append(f"foreign_key_check after the crash: {bad_keys}")
        orphans = db.execute(
            "SELECT id FROM phys_pages p WHERE NOT EXISTS (SELECT 1 FROM page_map m WHERE m.phys_id = p.id)"
            " AND NOT EXISTS (SELECT 1 FROM phys_pages b WHERE b.backing_id = p.id)"
        ).fetchall()
        if orphans:
            problems.append(f"physical pages referenced by nothing in the catalog left by the crash: {orphans}")
        return problems
    finally:
        db.close()


def catalog_problems(group: Group) -> list[str]:
    """Consistency of the catalog, and of the engine's memory with it, right after Group.open."""
    problems: list[str] = []
    db = group.catalog.db
    result = db.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        problems.append(f"PRAGMA integrity_check: {result}")
    bad_keys = db.execute("PRAGMA foreign_key_check").fetchall()
    if bad_keys:
        problems.append(f"PRAGMA foreign_key_check: {bad_keys}")

    members = dict(db.execute("SELECT id, capacity_pages FROM members"))
    phys = {pid: (m, s, b) for pid, m, s, b in db.execute("SELECT id, member_id, slot, backing_id FROM phys_pages")}
    places: dict[tuple[int, int], int] = {}
    for pid, (member, slot, backing) in phys.items():
        if (member, slot) in places:
            problems.append(f"phys pages {places[member, slot]} and {pid} share member {member} slot {slot}")
        places[member, slot] = pid
        if member not in members or not 0 <= slot < members[member]:
            problems.append(f"phys page {pid} is at member {member} slot {slot}, outside every member")
        if backing is not None and backing not in phys:
            problems.append(f"phys page {pid} is backed by missing phys page {backing}")
    for pid in phys:
        seen, at = set(), pid
        while at is not None and at in phys:
            if at in seen:
                problems.append(f"backing chain from phys page {pid} loops")
                break
            seen.add(at)
            at = phys[at][2]

    owners: dict[int, tuple[str, int]] = {}
    for name, map_id, pages in db.execute("SELECT name, map_id, pages FROM volumes"):
        owners[map_id] = (f"volume {name}", pages)
    for name, map_id, pages in db.execute("SELECT name, map_id, pages FROM snapshots"):
        if map_id in owners:
            problems.append(f"snapshot {name} shares page table {map_id} with {owners[map_id][0]}")
        owners[map_id] = (f"snapshot {name}", pages)
    refs: Counter[int] = Counter()
    catalog_maps: dict[int, dict[int, int]] = {}
    for map_id, index, pid in db.execute("SELECT map_id, page_index, phys_id FROM page_map"):
        catalog_maps.setdefault(map_id, {})[index] = pid
        refs[pid] += 1
        if pid not in phys:
            problems.append(f"page table {map_id} page {index} maps missing phys page {pid}")
        if map_id not in owners:
            problems.append(f"page table {map_id} (page {index} -> {pid}) belongs to no volume or snapshot")
        elif not 0 <= index < owners[map_id][1]:
            problems.append(f"{owners[map_id][0]} maps page {index}, past its {owners[map_id][1]} pages")
    for _, _, backing in phys.values():
        if backing is not None:
            refs[backing] += 1
    unreferenced = sorted(pid for pid in phys if refs[pid] == 0)
    if unreferenced:
        problems.append(f"phys pages referenced by nothing after open: {unreferenced}")

    # The engine's memory must be what the catalog says.
    memory_maps = {m: dict(t) for m, t in group.tables.maps.items() if t}
    if memory_maps != catalog_maps:
        problems.append("the in-memory page tables differ from page_map")
    if set(group.tables.phys) != set(phys):
        problems.append("the in-memory phys pages differ from phys_pages")
    for pid, page in group.tables.phys.items():
        if pid in phys and (tuple(page.address), page.backing) != ((phys[pid][0], phys[pid][1]), phys[pid][2]):
            problems.append(f"phys page {pid}: memory {page} differs from the catalog {phys[pid]}")
        if page.refs != refs[pid]:
            problems.append(f"phys page {pid}: {page.refs} references in memory, {refs[pid]} in the catalog")
    for member in group.placement.members.values():
        used = {s for m, s, _ in phys.values() if m == member.id}
        freed = list(member.freed)
        if len(set(freed)) != len(freed) or set(freed) & used or set(freed) | used != set(range(member.high_water)):
            problems.append(f"member {member.name}: free slot list disagrees with the phys pages")
    return problems


# --------------------------------------------------------------- comparisons


def sectors(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, SECTOR_SIZE)


def sector_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(edges[i]), int(edges[i + 1])) for i in range(0, len(edges), 2)]


def mismatch_report(key: Key, expected: bytes, actual: bytes, model: Model, base: int = 0) -> str:
    """Where ``actual`` differs from ``expected`` (byte offsets in the object, from ``base``)."""
    if len(expected) != len(actual):
        return f"{key_name(key)}: size {len(actual)} bytes, expected {len(expected)}"
    differ = ~(sectors(expected) == sectors(actual)).all(axis=1)
    runs = sector_runs(differ)
    lines = [f"{key_name(key)}: {int(differ.sum())} sectors differ in {len(runs)} runs"]
    for start, end in runs[:8]:
        offset = base + start * SECTOR_SIZE
        chunk = offset // CHUNK_SIZE
        got = actual[start * SECTOR_SIZE : end * SECTOR_SIZE]
        lines.append(
            f"  bytes [{offset}, {base + end * SECTOR_SIZE})"
            f" (page {offset // PAGE_SIZE}, chunk {chunk % CHUNKS_PER_PAGE}):"
            f" actual {'zeros' if not any(got) else got[:8].hex()}, expected"
            f" {expected[start * SECTOR_SIZE : start * SECTOR_SIZE + 8].hex()};"
            f" last written by op {model.origin[key][chunk] if key in model.origin else '?'}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------- harness


@dataclass
class Stats:
    kills: int = 0
    early_kills: int = 0
    rounds: int = 0
    acked: int = 0
    in_flight: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    cut_log_lines: int = 0
    crash_points: Counter[str] = field(default_factory=Counter)
    deleted_by_writes: int = 0

    def summary(self) -> str:
        return (
            f"{self.rounds} writer rounds, {self.kills} SIGKILLs ({self.early_kills} early), {self.acked} acked ops;"
            f" in flight at the kill: {dict(self.in_flight)}; outcomes: {dict(self.outcomes)};"
            f" cut log lines: {self.cut_log_lines}; crash points: {dict(self.crash_points)};"
            f" snapshots deleted by writes (delete-oldest): {self.deleted_by_writes}"
        )


class CrashHarness:
    """One group, its ack log, and the model of what it must hold."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.dir = root / "group"
        self.log = root / "ack.log"
        self.seed = seed
        self.rng = random.Random(f"crash-test/{seed}")
        self.model = Model()
        self.log_offset = 0
        self.round = 0
        self.stats = Stats()
        self.dir.mkdir()
        Group.init(self.dir, member_size=cw.MEMBER_SIZE).close()
        self.log.touch()

    # ---------------------------------------------------------------- writer

    def spawn(self, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.round += 1
        self.stats.rounds += 1
        output = self.root / f"writer-{self.round}.out"
        with open(output, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(WRITER), str(self.dir), str(self.seed),
                 "--round", str(self.round), "--log", str(self.log), *extra],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip
        return proc, output

    def wait_started(self, proc: subprocess.Popen[bytes], output: Path, timeout: float = 60.0) -> None:
        """Wait until the writer has the group open (its ``start`` line is in the log)."""
        marker = f'"t":"start","round":{self.round},'.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log, "rb") as file:
                file.seek(self.log_offset)
                if marker in file.read():
                    return
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        self.kill(proc)
        pytest.fail(f"writer round {self.round} did not start:\n{output.read_text()}")

    def kill(self, proc: subprocess.Popen[bytes]) -> int:
        """kill -9 the writer (if still running) and reap it; returns its exit status."""
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()

    def check_exit(self, status: int, output: Path, killed: bool) -> None:
        if status == -signal.SIGKILL and killed:
            self.stats.kills += 1
            return
        if status == 0:
            return
        errors = [r for r in self.read_records(peek=True) if r.get("t") == "error"]
        detail = errors[-1]["tb"] if errors else output.read_text()[-4000:]
        pytest.fail(f"writer round {self.round} (seed {self.seed}) exited with status {status}:\n{detail}")

    def crash_round(self, *extra: str, early: bool = False) -> None:
        """Run the writer, SIGKILL it after a random short time, then verify."""
        proc, output = self.spawn(*extra)
        if early:  # anywhere from interpreter start-up through Group.open to the first operations
            time.sleep(self.rng.uniform(0.05, 0.7))
            self.stats.early_kills += 1
        else:
            self.wait_started(proc, output)
            time.sleep(self.rng.uniform(0.2, 1.6))
        self.check_exit(self.kill(proc), output, killed=True)
        self.verify()

    def crash_point_round(self, point: int, *extra: str) -> None:
        """Run a writer that SIGKILLs itself at its ``point``-th engine I/O event, then verify."""
        proc, output = self.spawn("--crash-point", str(point), "--max-ops", "200", *extra)
        try:
            status = proc.wait(timeout=120)
        finally:
            self.kill(proc)
        self.check_exit(status, output, killed=True)
        self.verify()

    def clean_round(self, *extra: str) -> None:
        """Run the writer to its end (it closes the group), then verify."""
        proc, output = self.spawn(*extra)
        try:
            status = proc.wait(timeout=120)
        finally:
            self.kill(proc)
        self.check_exit(status, output, killed=False)
        self.verify()

    # ------------------------------------------------------------------- log

    def read_records(self, peek: bool = False) -> list[dict[str, Any]]:
        """New complete lines of the ack log; a line cut by the kill is removed from the file."""
        with open(self.log, "rb") as file:
            file.seek(self.log_offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        if not peek:
            if len(complete) != len(data):
                # The kill cut the last line (an unfinished ack means: not acknowledged).
                os.truncate(self.log, self.log_offset + len(complete))
                self.stats.cut_log_lines += 1
            self.log_offset += len(complete)
        return [json.loads(line) for line in complete.splitlines()]

    def append_log(self, **record: Any) -> None:
        with open(self.log, "ab") as file:
            file.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
        self.log_offset = self.log.stat().st_size

    def replay(self) -> dict[str, Any] | None:
        """Apply the acknowledged operations to the model; returns the one in flight, if any."""
        pending: dict[str, Any] | None = None
        for record in self.read_records():
            kind = record["t"]
            if kind == "intent":
                assert pending is None, f"two operations in flight: {pending} and {record}"
                pending = record
            elif kind == "ack":
                assert pending is not None and pending["id"] == record["id"], f"ack without intent: {record}"
                if pending["op"] in cw.DATA_OPS and "objects" in record:
                    # the write deleted snapshots to free snapshot reserve (v2's delete-oldest policy)
                    left = {(v, s) for v, s in record["objects"]}
                    for key in self.model.keys() - left:
                        assert key[0] == pending["volume"] and key[1], f"op {pending} deleted {key}"
                        self.model.drop(key)
                        self.stats.deleted_by_writes += 1
                self.model.apply(pending, record)
                self.stats.acked += 1
                if "objects" in record:
                    view = {(v, s) for v, s in record["objects"]}
                    assert view == self.model.keys(), (
                        f"after op {pending}, the writer saw objects {sorted(view)} but the model has"
                        f" {sorted(self.model.keys())} (did the engine delete a snapshot by itself?)"
                    )
                pending = None
            elif kind == "crash_point":
                self.stats.crash_points[f"{record['event']}:{record['side']}"] += 1
            elif kind == "error":
                pytest.fail(f"writer op {record['id']} failed (seed {self.seed}):\n{record['tb']}")
        return pending

    # ---------------------------------------------------------------- verify

    def verify(self) -> None:
        """Reopen the group; check the catalog and every volume and snapshot against the model."""
        pending = self.replay()
        problems = raw_catalog_problems(self.dir / Catalog.FILE_NAME)
        assert not problems, self.context(pending) + "\n".join(problems)
        group = Group.open(self.dir)  # the kernel released the writer's lock when it died
        try:
            problems = catalog_problems(group)
            assert not problems, self.context(pending) + "\n".join(problems)
            self.compare(group, pending)
        finally:
            group.close()

    def context(self, pending: dict[str, Any] | None) -> str:
        return f"seed {self.seed}, after round {self.round}, op in flight at the kill: {pending}\n"

    def compare(self, group: Group, pending: dict[str, Any] | None) -> None:
        actual_keys = {(v.name, "") for v in group.volumes.values()}
        actual_keys |= {(group.volumes[s.volume_id].name, s.name) for s in group.snapshots.values()}
        before = self.model
        touched = touched_keys(pending, before.keys(), actual_keys) if pending else set()

        # Acknowledged operations left every object online; bring the rest online to read them.
        offline = sorted(k for k in actual_keys if not self.obj(group, k).online)
        assert set(offline) <= touched, self.context(pending) + f"objects offline after the crash: {offline}"
        for volume, snapshot in offline:
            if snapshot:
                group.set_snapshot_online(volume, snapshot, True)
            else:
                group.set_volume_online(volume, True)

        if pending is None:
            self.expect(group, before, actual_keys, pending)
            outcome = "none"
        elif pending["op"] in cw.DATA_OPS:
            outcome = self.expect_data_op(group, pending, actual_keys)
        else:
            outcome = self.expect_management_op(group, pending, actual_keys)
        if pending is not None:
            self.stats.in_flight[pending["op"]] += 1
            self.append_log(t="resolved", id=pending["id"], outcome=outcome)
        self.stats.outcomes[outcome] += 1

    @staticmethod
    def applied(model: Model, intent: dict[str, Any], **ack: Any) -> Model:
        after = model.copy()
        after.apply(intent, ack)
        return after

    @staticmethod
    def obj(group: Group, key: Key) -> Any:
        return group.snapshot(key[0], key[1]) if key[1] else group.volume(key[0])

    @staticmethod
    def read_all(group: Group, key: Key) -> bytes:
        device = group.device(key[0], key[1] or None)
        return device.read(0, device.num_blocks)

    def expect(self, group: Group, model: Model, actual_keys: set[Key], pending: dict[str, Any] | None) -> None:
        """Every object in the group is in the model and reads exactly what the model holds."""
        assert actual_keys == model.keys(), self.context(pending) + (
            f"objects: missing {sorted(model.keys() - actual_keys)}, unexpected {sorted(actual_keys - model.keys())}"
        )
        for key in sorted(actual_keys):
            expected, actual = model.content(key), self.read_all(group, key)
            assert actual == expected, self.context(pending) + mismatch_report(key, expected, actual, model)

    def expect_data_op(self, group: Group, intent: dict[str, Any], actual_keys: set[Key]) -> str:
        """The data operation in flight: each sector of its range is old or new; all else as acknowledged."""
        model = self.model
        target = (intent["volume"], intent["snapshot"])
        offset, length = intent["offset"], intent["length"]
        # The write may have deleted some of its volume's snapshots (delete-oldest policy) before the kill.
        deleted = model.keys() - actual_keys
        assert actual_keys <= model.keys() and all(k[0] == target[0] and k[1] and k != target for k in deleted), (
            self.context(intent)
            + f"objects: missing {sorted(model.keys() - actual_keys)}, unexpected {sorted(actual_keys - model.keys())}"
        )
        for key in deleted:
            model.drop(key)
            self.stats.deleted_by_writes += 1
        outcome = None
        for key in sorted(actual_keys):
            expected, actual = model.content(key), self.read_all(group, key)
            if key != target:
                assert actual == expected, self.context(intent) + mismatch_report(key, expected, actual, model)
                continue
            end = offset + length
            if actual[:offset] != expected[:offset] or actual[end:] != expected[end:]:
                reports = [
                    mismatch_report(key, expected[lo:hi], actual[lo:hi], model, base=lo)
                    for lo, hi in ((0, offset), (offset + length, len(expected)))
                    if expected[lo:hi] != actual[lo:hi]
                ]
                pytest.fail(self.context(intent) + "outside the range of the op in flight:\n" + "\n".join(reports))
            old = expected[offset : offset + length]
            after = data_after(intent)
            new = after if after is not None else bytes(length)
            got = actual[offset : offset + length]
            is_old, is_new = (sectors(old) == sectors(got)).all(axis=1), (sectors(new) == sectors(got)).all(axis=1)
            if not (is_old | is_new).all():
                pytest.fail(
                    self.context(intent) + "sectors of the op in flight hold neither the old nor the new data:\n"
                    + mismatch_report(key, old, got, model, base=offset)
                )  # fmt: skip
            if is_old.all():
                outcome = "before"
            else:
                outcome = "after" if is_new.all() else "torn"
                model.put(key, offset, got, length, intent["id"])
        assert outcome is not None, f"the target {target} of the op in flight is missing"
        return outcome

    def expect_management_op(self, group: Group, intent: dict[str, Any], actual_keys: set[Key]) -> str:
        """The management operation in flight happened wholly or not at all.

        One exception, by design: ``resize_volume`` takes its snapshot in a
        transaction of its own before resizing, so "snapshot taken, not yet
        resized" is a third valid state.
        """
        before = self.model
        op = intent["op"]
        # A snapshot the engine named itself (restore, resize) is found by its absence from the model.
        new = [k[1] for k in actual_keys - before.keys() if k[0] == intent.get("volume")]
        candidates = [("before", before)]
        if op == "restore":
            if len(new) == 1:
                candidates.append(("after", self.applied(before, intent, saved=new[0])))
        elif op == "resize" and intent["snapshot"]:
            if len(new) == 1:
                only_snapshot = before.copy()
                only_snapshot.duplicate((intent["volume"], ""), (intent["volume"], new[0]))
                candidates.append(("snapshot-only", only_snapshot))
                candidates.append(("after", self.applied(before, intent, taken=new[0])))
        else:
            candidates.append(("after", self.applied(before, intent)))
        matching = [(name, m) for name, m in candidates if m.keys() == actual_keys]
        assert matching, self.context(intent) + f"objects {sorted(actual_keys)} are in none of the states " + ", ".join(
            f"{name} {sorted(m.keys())}" for name, m in candidates
        )
        contents = {key: self.read_all(group, key) for key in sorted(actual_keys)}
        reports = []
        for name, model in matching:
            bad = [k for k in sorted(actual_keys) if contents[k] != model.content(k)]
            if not bad:
                self.model = model
                return name
            reports += [f"as state '{name}':"] + [mismatch_report(k, model.content(k), contents[k], model) for k in bad]
        pytest.fail(self.context(intent) + "\n".join(reports))


def base_seed() -> int:
    return int(os.environ.get("ARRAY_SIM_CRASH_SEED", "20240601"))


# --------------------------------------------------------------------- tests


# The kill -9 cycles take half a minute each: the whole suite runs them. The
# fast loop keeps a quick real-process kill -9 test below (the writer killed
# while it holds the group, then the group verified against the model).
@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "kills", "extra"),
    [("plain", 6, ()), ("flushing", 4, ("--flush-every", "7"))],
)
def test_kill9_reopen_verify_cycles(tmp_path: Path, variant: str, kills: int, extra: tuple[str, ...]) -> None:
    """kill -9 the writer at random moments, again and again on the same group; nothing acked is lost."""
    seed = base_seed() + (1 if variant == "flushing" else 0)
    harness = CrashHarness(tmp_path, seed)
    for round_number in range(kills):
        harness.crash_round(*extra, early=round_number % 4 == 3)
    # Finally a writer that runs to its end and closes the group cleanly.
    harness.clean_round("--max-ops", "60", *extra)
    print(f"[{variant}, seed {seed}] {harness.stats.summary()}")
    assert harness.stats.kills == kills
    assert harness.stats.acked > 30


@pytest.mark.slow
def test_kill9_at_engine_io_points(tmp_path: Path) -> None:
    """The writer SIGKILLs itself exactly before, inside or after an engine I/O step; nothing acked is lost.

    Random kill times mostly land between operations or in Python code; this
    sweeps the narrow windows the engine's ordering rules are about (catalog
    commit vs. data write vs. chunk presence vs. slot release).
    """
    seed = base_seed() + 3
    harness = CrashHarness(tmp_path, seed)
    rng = random.Random(f"crash-points/{seed}")
    for _ in range(7):
        harness.crash_point_round(rng.randint(1, 700))
    print(f"[io points, seed {seed}] {harness.stats.summary()}")
    assert harness.stats.kills >= 5  # a crash point past the writer's last I/O event ends it cleanly


def test_group_lock_released_when_writer_killed(tmp_path: Path) -> None:
    """The writer's flock dies with it: the group opens right after kill -9, with no wait or cleanup."""
    harness = CrashHarness(tmp_path, base_seed() + 7)
    proc, output = harness.spawn()
    harness.wait_started(proc, output)
    time.sleep(0.3)
    assert proc.poll() is None, output.read_text()
    with pytest.raises(GroupLocked):
        Group.open(harness.dir).close()
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    harness.stats.kills += 1
    Group.open(harness.dir).close()  # no GroupLocked: the kernel dropped the lock with the process
    harness.verify()


def test_flush_fsyncs_and_data_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group.flush() and FUA writes run the fsync path without error, and the data reads back after reopen.

    A real power-loss test is not possible here: it needs the page cache to
    vanish (a VM reset, or a device-mapper target such as dm-log-writes or
    dm-flakey that drops unsynced writes), none of which a test process can
    do. This test checks only that every member store is fsynced, that
    the catalog's WAL is checkpointed into the main database file, and that
    what was flushed reads back after reopening.
    """
    directory = tmp_path / "group"
    directory.mkdir()
    synced: list[int] = []
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    data = cw.op_data(1, 1, 3 * PAGE_SIZE)
    with Group.init(directory, member_size=cw.MEMBER_SIZE) as group:
        group.add_member("member-2", cw.MEMBER_SIZE, "default")
        group.create_volume("vol", 3 * PAGE_SIZE, **cw.VOLUME_SETTINGS)
        device = group.device("vol")
        device.write(0, data)
        group.create_snapshot("vol", "snap")
        device.write(5, data[:9000 // 512 * 512])  # unaligned copy-on-write after the snapshot
        synced.clear()
        group.flush()
        disk_files = {str(path) for path in (directory / "members").glob("*/disk-*.img")}
        assert len(disk_files) == 24

        def synced_files() -> set[str]:
            return {os.readlink(f"/proc/self/fd/{fd}") for fd in synced if os.path.exists(f"/proc/self/fd/{fd}")}

        assert disk_files <= synced_files(), "Group.flush did not fsync every disk of every member"
        # The WAL is checkpointed: the main database file alone has every row.
        alone = tmp_path / "alone.sqlite3"
        shutil.copyfile(directory / Catalog.FILE_NAME, alone)
        copy = sqlite3.connect(alone)
        try:
            for table in ("volumes", "snapshots", "phys_pages", "page_map"):
                query = f"SELECT * FROM {table} ORDER BY 1, 2"
                assert copy.execute(query).fetchall() == group.catalog.db.execute(query).fetchall(), table
        finally:
            copy.close()
        synced.clear()
        device.write(70000, data[:4096], fua=True)  # FUA: flushed before the write returns
        assert disk_files <= synced_files(), "a FUA write did not fsync the member disks"
        synced.clear()
        device.flush()  # SYNCHRONIZE CACHE
        assert disk_files <= synced_files()
    expected_volume = bytearray(data)
    expected_volume[5 * 512 : 5 * 512 + 9000 // 512 * 512] = data[: 9000 // 512 * 512]
    expected_volume[70000 * 512 : 70000 * 512 + 4096] = data[:4096]
    with Group.open(directory) as group:
        assert not catalog_problems(group)
        assert group.device("vol").read(0, 3 * PAGE_SIZE // 512) == bytes(expected_volume)
        group.set_snapshot_online("vol", "snap", True)
        assert group.device("vol", "snap").read(0, 3 * PAGE_SIZE // 512) == data


@pytest.mark.slow  # a writer of 150 operations, several seconds; the flush itself is checked in-process above
def test_flush_then_kill9(tmp_path: Path) -> None:
    """A writer that flushes (Group.flush) and dies by kill -9 right after: all data and the catalog are there.

    As above, no real power loss: we check that after the flush the catalog's
    main database file alone (without the WAL the flush checkpointed) holds
    every row, which is what survives power loss when the WAL does not.
    """
    harness = CrashHarness(tmp_path, base_seed() + 11)
    proc, output = harness.spawn("--max-ops", "150", "--flush-every", "25", "--kill-self-after-flush")
    status = proc.wait(timeout=120)
    assert status == -signal.SIGKILL, output.read_text()
    harness.stats.kills += 1
    catalog = harness.dir / Catalog.FILE_NAME
    alone = tmp_path / "alone.sqlite3"
    shutil.copyfile(catalog, alone)
    full = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    copy = sqlite3.connect(alone)
    try:
        for table in ("volumes", "snapshots", "phys_pages", "page_map", "group_params"):
            query = f"SELECT * FROM {table} ORDER BY 1, 2"
            assert copy.execute(query).fetchall() == full.execute(query).fetchall(), f"{table} not checkpointed"
    finally:
        copy.close()
        full.close()
    harness.verify()
    assert harness.stats.outcomes == Counter(none=1)  # the last op (the flush) was acknowledged

