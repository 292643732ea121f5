"""Crash durability of the online data mover: kill -9 a process that moves data while it writes.

The contract (``page_mover`` rules 3-4, ``data_moves`` rule 1): a ``kill -9`` at any moment of a move
leaves every page complete in one place, so ``Group.open`` finds every volume and snapshot reading
exactly what was acknowledged, whatever the mover was doing; the move is still recorded (and resumes
where the catalog says it is) or it is complete; and pages already switched stay switched.

``move_crash_writer.py`` (a separate process) opens a group made here, starts a move (vacate and
delete member m2, or move a volume to the other pool, v1 sharing pages with its snapshot's clone c1,
or cancel the vacate), then runs
``background_step`` with small random budgets between writes and unmaps, half of them aimed at the
page being copied, below or around its copy cursor. It logs an ``intent`` line before and an ``ack``
line after every operation. The tests SIGKILL it after a random short time, or let it kill itself
right before or after a chosen catalog COMMIT (``--die-at``), and then, in this process:

* check the catalog as the crash left it (read-only, before ``Group.open``) and after opening:
  ``integrity_check``, ``foreign_key_check``, no two ``phys_pages`` rows on one (member, slot), every
  ``page_map.phys_id`` and ``backing_id`` naming an existing page, every page on an existing member
  inside its capacity, no page referenced by nothing, ``moves`` rows naming existing objects, and the
  engine's memory (page tables, page addresses, free-slot lists) agreeing with the catalog;
* read every volume and the snapshot whole and compare with a model rebuilt from the acknowledged
  operations: the one operation in flight may have left each 512-byte sector of its range old or new,
  nothing else may differ; every page that holds data in the model is mapped;
* check the moves: each is in a state the acknowledged operations allow (a started vacate is still
  recorded or m2 has left the group, a started volume move is recorded or every page of the volume
  and its snapshot is in the new pool, a cancelled vacate is gone), and a move recorded before and
  after a round lost no progress (the pages left on m2, or outside the volume's new pool, never
  increase: a switched page stays switched);

then run the writer again on the same group, so the moves resume after each kill. At the end this
process starts the vacate again if it is not under way, runs ``background_step(1 << 20)`` until
nothing is left, and checks that everything reads right, that m2 has left ``member_admin.reports()``
and every volume's ``members_holding``, that its files are gone (by the time it has left the group;
files a killed removal left go at the next open, pinned down by ``test_vacate_end_killed_at_commit``), and that each volume is wholly in its pool; then once
more after a clean close and reopen.

``test_vacate_end_killed_at_commit`` kills right after the commit that ends a vacate (the end of the
move and the removal of the member are one transaction) and before the member's files are removed
(they go at the next open).

A failure names the seed, the round and the operation in flight. The writer's choices are a function
of (seed, round), where the kill lands is not, so a failure may need a few runs to reproduce. Set
``ARRAY_SIM_MOVE_CRASH_SEED`` to run with another seed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
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

from array_sim import Group
from array_sim.catalog import Catalog
from array_sim.units import PAGE_SIZE, SECTOR_SIZE, MiB

WRITER = Path(__file__).with_name("move_crash_writer.py")
REPO = Path(__file__).resolve().parents[2]


def _load_writer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("move_crash_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mw = _load_writer()

Key = tuple[str, str]  # (volume, snapshot name or "")
SWITCH_SQL = "UPDATE phys_pages SET member_id"  # the transaction that switches a moved page
START_SQL = "INSERT INTO moves"
FINISH_SQL = "DELETE FROM moves"
REMOVE_SQL = "DELETE FROM members"


def base_seed() -> int:
    return int(os.environ.get("ARRAY_SIM_MOVE_CRASH_SEED", "20240917"))


def key_name(key: Key) -> str:
    return f"{key[0]}@{key[1]}" if key[1] else key[0]


class LostMove(AssertionError):
    """A move that was started is neither recorded nor complete after a crash."""


class LeftoverFiles(AssertionError):
    """A member has left the group but its files are still in the group directory."""


# --------------------------------------------------------------------- model


class Model:
    """What every volume and snapshot must read, whole, as bytes."""

    def __init__(self) -> None:
        self.objects: dict[Key, bytearray] = {}

    def put(self, key: Key, offset: int, data: bytes | bytearray | None, length: int) -> None:
        """``data`` (None: zeros) at ``offset``."""
        buffer = self.objects[key]
        assert 0 <= offset and offset + length <= len(buffer), (key, offset, length)
        buffer[offset : offset + length] = data if data is not None else bytes(length)

    def apply(self, intent: dict[str, Any], seed: int) -> None:
        if intent["op"] in mw.DATA_OPS:
            self.put(tuple(intent["key"]), intent["offset"], data_after(intent, seed), intent["length"])


def data_after(intent: dict[str, Any], seed: int) -> bytes | None:
    """What a data operation puts in its range (None: zeros)."""
    return mw.op_data(seed, intent["id"], intent["length"]) if intent["op"] == "write" else None


def sector_view(data: bytes | bytearray) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, SECTOR_SIZE)


def differences(key: Key, expected: bytes | bytearray, actual: bytes, base: int = 0) -> str:
    """Where ``actual`` differs from ``expected``: runs of sectors, with the page and what is there."""
    if len(expected) != len(actual):
        return f"{key_name(key)}: {len(actual)} bytes, expected {len(expected)}"
    differ = ~(sector_view(expected) == sector_view(actual)).all(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], differ.astype(np.int8), [0]))))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    lines = [f"{key_name(key)}: {int(differ.sum())} sectors differ, in {len(runs)} runs"]
    for start, stop in runs[:8]:
        offset = base + start * SECTOR_SIZE
        got = actual[start * SECTOR_SIZE : stop * SECTOR_SIZE]
        lines.append(
            f"  bytes [{offset}, {base + stop * SECTOR_SIZE}) (page {offset // PAGE_SIZE},"
            f" at {offset % PAGE_SIZE} in it): read {'zeros' if not any(got[:4096]) else got[:8].hex()},"
            f" expected {bytes(expected[start * SECTOR_SIZE : start * SECTOR_SIZE + 8]).hex()}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------ catalog checks


def sql_problems(db: sqlite3.Connection) -> list[str]:
    """What must hold in any catalog a crash leaves, whether or not the engine has opened it since."""
    problems = []
    result = db.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        problems.append(f"integrity_check: {result}")
    bad = db.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        problems.append(f"foreign_key_check: {bad}")
    for member, slot, count in db.execute(
        "SELECT member_id, slot, COUNT(*) FROM phys_pages GROUP BY member_id, slot HAVING COUNT(*) > 1"
    ):
        problems.append(f"{count} phys_pages rows on member {member} slot {slot}")
    for map_id, index, pid in db.execute(
        "SELECT map_id, page_index, phys_id FROM page_map WHERE phys_id NOT IN (SELECT id FROM phys_pages)"
    ):
        problems.append(f"page table {map_id} page {index} maps missing phys page {pid}")
    for pid, backing in db.execute(
        "SELECT id, backing_id FROM phys_pages WHERE backing_id IS NOT NULL"
        " AND backing_id NOT IN (SELECT id FROM phys_pages)"
    ):
        problems.append(f"phys page {pid} is backed by missing phys page {backing}")
    for pid, member, slot in db.execute(
        "SELECT p.id, p.member_id, p.slot FROM phys_pages p LEFT JOIN members m ON m.id = p.member_id"
        " WHERE m.id IS NULL OR p.slot < 0 OR p.slot >= m.capacity_pages"
    ):
        problems.append(f"phys page {pid} is on member {member} slot {slot}: no such member or slot")
    orphans = db.execute(
        "SELECT id FROM phys_pages p WHERE NOT EXISTS (SELECT 1 FROM page_map m WHERE m.phys_id = p.id)"
        " AND NOT EXISTS (SELECT 1 FROM phys_pages b WHERE b.backing_id = p.id)"
    ).fetchall()
    if orphans:
        problems.append(f"phys pages referenced by nothing: {[o[0] for o in orphans]}")
    for move_id, kind, member, volume in db.execute(
        "SELECT id, kind, member_id, volume_id FROM moves WHERE (member_id IS NOT NULL AND member_id NOT IN"
        " (SELECT id FROM members)) OR (volume_id IS NOT NULL AND volume_id NOT IN (SELECT id FROM volumes))"
    ):
        problems.append(f"move {move_id} ({kind}) names member {member} / volume {volume}, which do not exist")
    return problems


def raw_catalog_problems(path: Path) -> list[str]:
    """``sql_problems`` of the catalog exactly as the crash left it (read-only, WAL included)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return ["as the crash left it: " + p for p in sql_problems(db)]
    finally:
        db.close()


def memory_problems(group: Group) -> list[str]:
    """The engine's memory after Group.open agrees with its catalog."""
    db = group.catalog.db
    problems = []
    phys = {pid: ((m, s), b) for pid, m, s, b in db.execute("SELECT id, member_id, slot, backing_id FROM phys_pages")}
    memory = {pid: (tuple(p.address), p.backing) for pid, p in group.tables.phys.items()}
    if memory != phys:
        differ = sorted(set(memory.items()) ^ set(phys.items()))
        problems.append(f"in-memory phys pages differ from phys_pages: {differ}")
    maps: dict[int, dict[int, int]] = {}
    for map_id, index, pid in db.execute("SELECT map_id, page_index, phys_id FROM page_map"):
        maps.setdefault(map_id, {})[index] = pid
    if {m: dict(t) for m, t in group.tables.maps.items() if t} != maps:
        problems.append("in-memory page tables differ from page_map")
    for member in group.placement.members.values():
        used = {address[1] for address, _ in phys.values() if address[0] == member.id}
        freed = member.freed
        if len(set(freed)) != len(freed) or set(freed) & used or set(freed) | used != set(range(member.high_water)):
            problems.append(f"member {member.name}: its free slots disagree with phys_pages")
        moving = group.move_of_member(member.id) is not None
        if member.vacating != moving:
            problems.append(f"member {member.name}: vacating is {member.vacating}, a move recorded: {moving}")
    return problems


# ------------------------------------------------------------------ harness


@dataclass
class Stats:
    rounds: int = 0
    kills: int = 0
    early_kills: int = 0
    crash_points: int = 0
    kills_mid_move: int = 0
    acked: int = 0
    switched_across_kills: int = 0
    cut_lines: int = 0
    leftover_files: int = 0
    in_flight: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    moves_started: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"{self.rounds} rounds, {self.kills} kills ({self.early_kills} early, {self.crash_points} at commit points,"
            f" {self.kills_mid_move} with a move under way), {self.acked} acked ops, move requests"
            f" {dict(self.moves_started)}, {self.switched_across_kills} pages switched by killed writers,"
            f" in flight: {dict(self.in_flight)}, outcomes {dict(self.outcomes)}, cut log lines {self.cut_lines},"
            f" removals killed before the files went: {self.leftover_files}"
        )


@dataclass
class MoveState:
    """Where the moves stand, as seen at the last check."""

    #: m2: "member" (no move), "vacating" or "gone".
    m2: str = "member"
    #: Pages on m2 while it is being vacated.
    on_m2: int = 0
    #: Each volume's pool, and whether a move of it is recorded.
    pools: dict[str, str] = field(default_factory=dict)
    moving: dict[str, bool] = field(default_factory=dict)
    #: Pages of a moving volume (and its snapshot) still outside its pool.
    outside: dict[str, int] = field(default_factory=dict)


class MoveCrashHarness:
    """One group, its ack log, the model of what it holds and where its moves stand."""

    def __init__(self, root: Path, seed: int, tolerate_leftover_files: bool = False) -> None:
        self.root, self.seed = root, seed
        #: m2's files left behind by a writer killed as it removed m2 are counted instead of failing
        #: (the engine bug ``test_vacate_end_killed_at_commit[after-member-row-deleted]`` pins down).
        self.tolerate_leftover_files = tolerate_leftover_files
        self.dir, self.log = root / "group", root / "ack.log"
        self.rng = random.Random(f"move-crash-test/{seed}")
        self.model = Model()
        self.state = MoveState()
        self.stats = Stats()
        self.round = 0
        self.log_offset = 0
        self.log.touch()
        self.snapshot = self._build()

    def _build(self) -> str:
        """The group: member-1 and m2 in default, m3 in p2; volumes with data, a snapshot of v1, and c1,
        a clone of that snapshot."""
        self.dir.mkdir()
        rng = random.Random(f"move-crash-setup/{self.seed}")
        op_id = 0

        with Group.init(self.dir, member_size=mw.MEMBER_SIZE, raid_policy="file") as g:
            g.add_member(mw.VACATED, mw.MEMBER_SIZE, mw.DEFAULT_POOL, raid_policy="file")
            g.create_pool(mw.OTHER_POOL)
            g.add_member("m3", mw.MEMBER_SIZE, mw.OTHER_POOL, raid_policy="file")
            for name, (pages, settings) in mw.VOLUMES.items():
                g.create_volume(name, pages * PAGE_SIZE, pool=mw.DEFAULT_POOL, **settings)
                self.model.objects[(name, "")] = bytearray(pages * PAGE_SIZE)
                self.state.pools[name], self.state.moving[name] = mw.DEFAULT_POOL, False

            def write(key: Key, offset: int, length: int) -> None:
                nonlocal op_id
                op_id += 1
                data = mw.op_data(self.seed, op_id, length)
                g.device(key[0], key[1] or None).write(offset // SECTOR_SIZE, data)
                self.model.put(key, offset, data, length)

            def sector(low: int, high: int) -> int:
                return rng.randrange(low // SECTOR_SIZE, high // SECTOR_SIZE) * SECTOR_SIZE

            v1, v2 = ("v1", ""), ("v2", "")
            write(v1, 0, PAGE_SIZE)  # page 0 whole: every chunk present
            for page in (1, 2):  # runs of present and absent chunks, starts and ends inside chunks
                for _ in range(6):
                    offset = sector(page * PAGE_SIZE, (page + 1) * PAGE_SIZE - 4 * MiB)
                    write(v1, offset, SECTOR_SIZE * rng.randint(1, 6000))
            write(v1, 2 * PAGE_SIZE - 3 * MiB - 1536, 5 * MiB + 1024)  # across the page 1/2 boundary
            write(v1, 4 * PAGE_SIZE - 9 * SECTOR_SIZE, 9 * SECTOR_SIZE)  # page 3: a few sectors at the very end
            write(v2, 5 * SECTOR_SIZE, 8 * MiB)
            write(v2, 2 * PAGE_SIZE + 77 * SECTOR_SIZE, 300 * SECTOR_SIZE)  # v2 page 1 stays unmapped (thin)
            snapshot = g.create_snapshot("v1").name
            g.set_snapshot_online("v1", snapshot, True)
            self.model.objects[("v1", snapshot)] = bytearray(self.model.objects[v1])
            for _ in range(6):  # copy-on-write overlays holding some chunks, edge chunks filled from below
                write(v1, sector(0, 3 * PAGE_SIZE), SECTOR_SIZE * rng.randint(1, 40))
            write(("v1", snapshot), 3 * PAGE_SIZE + 1000 * SECTOR_SIZE, 50 * SECTOR_SIZE)  # a snapshot-only page
            # A clone of the snapshot shares its pages: v1's move splits those (PageSplit), c1 keeps them.
            g.clone_volume("v1", "c1", snapshot)
            self.model.objects[("c1", "")] = bytearray(self.model.objects[("v1", snapshot)])
            holding = g.members_holding(g.volume("v1"))
            assert holding == ["member-1", mw.VACATED], f"v1's pages should be on both default members: {holding}"
        return snapshot

    # ---------------------------------------------------------------- writer

    def spawn(self, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.round += 1
        self.stats.rounds += 1
        output = self.root / f"writer-{self.round}.out"
        with open(output, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(WRITER), str(self.dir), str(self.seed), "--round", str(self.round),
                 "--log", str(self.log), *extra],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip
        return proc, output

    def wait_started(self, proc: subprocess.Popen[bytes], output: Path, timeout: float = 60.0) -> None:
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
        self.reap(proc)
        pytest.fail(f"writer round {self.round} did not start:\n{output.read_text()}")

    @staticmethod
    def reap(proc: subprocess.Popen[bytes]) -> int:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()

    def check_status(self, status: int, output: Path, killed: bool) -> None:
        if killed and status == -signal.SIGKILL:
            self.stats.kills += 1
            return
        if not killed and status == 0:
            return
        errors = [r["tb"] for r in self.records(peek=True) if r["t"] == "error"]
        detail = errors[-1] if errors else output.read_text()[-4000:]
        pytest.fail(f"writer round {self.round} (seed {self.seed}) exited with status {status}:\n{detail}")

    def kill_round(self, start: str, delay: float, early: bool = False) -> None:
        """Run the writer; SIGKILL it ``delay`` seconds after it has the group open (after it was spawned
        if ``early``: in start-up, in Group.open or just after); then verify."""
        proc, output = self.spawn("--start", start)
        if early:
            self.stats.early_kills += 1
        else:
            self.wait_started(proc, output)
        time.sleep(delay)
        self.check_status(self.reap(proc), output, killed=True)
        self.verify()

    def point_round(self, start: str, sql: str, side: str, nth: int) -> None:
        """Run a writer that SIGKILLs itself at a chosen COMMIT (it ends cleanly if no move is left
        to reach it, after 200 more ops); then verify."""
        proc, output = self.spawn(
            "--start", start, "--die-at", sql, "--die-side", side, "--die-nth", str(nth), "--until-done", "200"
        )  # fmt: skip
        try:
            status = proc.wait(timeout=60)
        finally:
            self.reap(proc)
        if not any(r["t"] == "crash_point" for r in self.records(peek=True)):
            self.check_status(status, output, killed=False)
            pytest.fail(
                f"round {self.round}: the writer ran out of moves before {side} COMMIT #{nth} of a transaction"
                f" running {sql!r}"
            )
        self.check_status(status, output, killed=True)
        self.stats.crash_points += 1
        self.verify()

    def clean_round(self, start: str = "none", until_done: int = 30) -> None:
        """Run the writer until no move is left (and ``until_done`` more ops); it closes the group; verify."""
        proc, output = self.spawn("--start", start, "--until-done", str(until_done))
        try:
            status = proc.wait(timeout=60)
        finally:
            self.reap(proc)
        self.check_status(status, output, killed=False)
        self.verify()

    # ------------------------------------------------------------------- log

    def records(self, peek: bool = False) -> list[dict[str, Any]]:
        """The new complete lines of the ack log; a line the kill cut short is cut off the file."""
        with open(self.log, "rb") as file:
            file.seek(self.log_offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        if not peek:
            if len(complete) != len(data):
                os.truncate(self.log, self.log_offset + len(complete))
                self.stats.cut_lines += 1
            self.log_offset += len(complete)
        return [json.loads(line) for line in complete.splitlines()]

    def replay(self) -> tuple[list[tuple[dict[str, Any], bool]], dict[str, Any] | None]:
        """Apply the round's acknowledged operations to the model.

        Returns the round's management operations (start_move, cancel) with whether each was
        acknowledged, and the operation in flight at the kill, if any."""
        pending: dict[str, Any] | None = None
        management: list[tuple[dict[str, Any], bool]] = []
        for record in self.records():
            kind = record["t"]
            if kind == "intent":
                assert pending is None, f"two operations in flight: {pending} and {record}"
                pending = record
            elif kind == "ack":
                assert pending is not None and pending["id"] == record["id"], f"an ack without its intent: {record}"
                self.model.apply(pending, self.seed)
                if pending["op"] not in mw.DATA_OPS:
                    management.append((pending, True))
                self.stats.acked += 1
                pending = None
            elif kind == "error":
                pytest.fail(f"writer op {record['id']} failed (seed {self.seed}, round {self.round}):\n{record['tb']}")
        if pending is not None and pending["op"] not in mw.DATA_OPS:
            management.append((pending, False))
        for intent, _ in management:
            self.stats.moves_started[intent.get("kind", intent["op"])] += 1
        return management, pending

    # ---------------------------------------------------------------- verify

    def context(self, pending: dict[str, Any] | None) -> str:
        return f"seed {self.seed}, after round {self.round}; the op in flight at the kill: {pending}\n"

    def verify(self) -> None:
        """Reopen the group; check its catalog, every object's contents and the state of the moves."""
        management, pending = self.replay()
        problems = raw_catalog_problems(self.dir / Catalog.FILE_NAME)
        assert not problems, self.context(pending) + "\n".join(problems)
        group = Group.open(self.dir)
        try:
            problems = sql_problems(group.catalog.db) + memory_problems(group)
            assert not problems, self.context(pending) + "\n".join(problems)
            self.check_contents(group, pending)
            self.check_moves(group, management, pending)
            if group.moves:
                self.stats.kills_mid_move += 1
        finally:
            group.close()

    def read(self, group: Group, key: Key) -> bytes:
        device = group.device(key[0], key[1] or None)
        return device.read(0, device.num_blocks)

    def check_contents(self, group: Group, pending: dict[str, Any] | None) -> None:
        actual_keys = {(v.name, "") for v in group.volumes.values()}
        actual_keys |= {(group.volumes[s.volume_id].name, s.name) for s in group.snapshots.values()}
        assert actual_keys == set(self.model.objects), self.context(pending) + f"objects {sorted(actual_keys)}"
        target = tuple(pending["key"]) if pending is not None and pending["op"] in mw.DATA_OPS else None
        for key in sorted(actual_keys):
            expected, actual = self.model.objects[key], self.read(group, key)
            self.check_mapped(group, key, pending)
            if key != target:
                assert actual == expected, self.context(pending) + differences(key, expected, actual)
                continue
            assert pending is not None
            start, stop = pending["offset"], pending["offset"] + pending["length"]
            outside = [(0, start), (stop, len(expected))]
            if any(actual[lo:hi] != expected[lo:hi] for lo, hi in outside):
                pytest.fail(self.context(pending) + "outside the range of the op in flight:\n" + "\n".join(
                    differences(key, expected[lo:hi], actual[lo:hi], lo) for lo, hi in outside
                    if actual[lo:hi] != expected[lo:hi]
                ))  # fmt: skip
            got, old = actual[start:stop], expected[start:stop]
            new = data_after(pending, self.seed) or bytes(stop - start)
            is_old = (sector_view(got) == sector_view(old)).all(axis=1)
            is_new = (sector_view(got) == sector_view(new)).all(axis=1)
            if not (is_old | is_new).all():
                pytest.fail(
                    self.context(pending) + "sectors of the op in flight hold neither the old nor the new data:\n"
                    + differences(key, old, got, start)
                )  # fmt: skip
            outcome = "old" if is_old.all() else "new" if is_new.all() else "torn"
            self.stats.in_flight[pending["op"]] += 1
            self.stats.outcomes[outcome] += 1
            self.model.put(key, start, got, stop - start)

    def check_mapped(self, group: Group, key: Key, pending: dict[str, Any] | None) -> None:
        """No page is lost: every page holding data in the model is in the page table, on a member."""
        obj = group.snapshot(*key) if key[1] else group.volume(key[0])
        pages = len(self.model.objects[key]) // PAGE_SIZE
        holding = np.frombuffer(self.model.objects[key], dtype=np.uint8).reshape(pages, PAGE_SIZE).any(axis=1)
        table = group.tables.table(obj.map_id)
        missing = [i for i in np.flatnonzero(holding).tolist() if i not in table]
        in_flight = pending is not None and pending["op"] in mw.DATA_OPS and tuple(pending["key"]) == key
        if in_flight and pending is not None:  # a page the op in flight was unmapping may be gone
            first, last = pending["offset"] // PAGE_SIZE, (pending["offset"] + pending["length"] - 1) // PAGE_SIZE
            missing = [i for i in missing if not first <= i <= last]
        assert not missing, self.context(pending) + f"{key_name(key)}: pages {missing} hold data but are not mapped"
        for index, pid in table.items():
            assert group.tables.phys[pid].address[0] in group.placement.members, f"{key_name(key)} page {index}"

    # --------------------------------------------------------------- moves

    def family_pages(self, group: Group, volume: str) -> dict[int, int]:
        """Physical page id -> member id of every page a volume and its snapshots map or read through to."""
        found: dict[int, int] = {}
        vol = group.volume(volume)
        for map_id in [vol.map_id] + [s.map_id for s in group.snapshots_of(vol)]:
            for pid in group.tables.table(map_id).values():
                while pid is not None and pid not in found:
                    page = group.tables.phys[pid]
                    found[pid] = page.address[0]
                    pid = page.backing
        return found

    def check_moves(
        self, group: Group, management: list[tuple[dict[str, Any], bool]], pending: dict[str, Any] | None
    ) -> None:
        """Every move in a state the acknowledged operations allow, and no progress lost."""
        state, context = self.state, self.context(pending)
        ops = {(i["op"], i.get("kind"), i.get("volume")): acked for i, acked in management}
        targets = {i["volume"]: i["pool"] for i, _ in management if i.get("kind") == "volume"}

        # m2: member -> vacating (start) -> gone (the move's end); vacating -> member (cancel).
        names = {r.name: r for r in group.member_admin.reports()}
        if mw.VACATED not in names:
            seen = "gone"
        else:
            seen = "vacating" if group.move_of_member(group.member_admin.member_id(mw.VACATED)) else "member"
            assert (names[mw.VACATED].state == "vacate") == (seen == "vacating"), context + f"{names[mw.VACATED]}"
        allowed = {state.m2} | ({"gone"} if state.m2 == "vacating" else set())
        for op, after in ((("start_move", "vacate", ""), {"vacating", "gone"}), (("cancel", None, None), {"member"})):
            if op in ops:
                allowed = after if ops[op] else allowed | after
        if seen not in allowed:
            raise LostMove(
                context + f"m2 is {seen!r}; after {state.m2!r} and {management} it can only be {sorted(allowed)}"
            )
        if seen == "vacating":
            m2 = group.member_admin.member_id(mw.VACATED)
            on_m2 = sum(1 for p in group.tables.phys.values() if p.address[0] == m2)
            if state.m2 == "vacating" and ("cancel", None, None) not in ops:
                assert on_m2 <= state.on_m2, context + f"pages on m2 went from {state.on_m2} to {on_m2}: switch undone"
                self.stats.switched_across_kills += state.on_m2 - on_m2
            state.on_m2 = on_m2
        if seen == "gone" and state.m2 != "gone":
            self.check_files_gone(self.tolerate_leftover_files)
        state.m2 = seen

        # A volume: pool P, no move -> pool Q, moving (start, one transaction) -> pool Q, no move (the end).
        for name in state.pools:
            vol = group.volume(name)
            pool, moving = group.pools[vol.pool_id], group.move_of_volume(vol.id) is not None
            before = state.pools[name]
            started = ops.get(("start_move", "volume", name))  # None: not asked; else whether acknowledged
            if started is None:
                allowed_pools = {before}
            else:
                allowed_pools = {targets[name]} if started else {before, targets[name]}
            assert pool in allowed_pools, context + f"volume {name} is in pool {pool}, expected {sorted(allowed_pools)}"
            changed = pool != before
            assert not moving or changed or state.moving[name], context + f"volume {name}: a move from nowhere"
            in_pool = {m.id for m in group.placement.pool_members(vol.pool_id)}
            outside = sum(1 for member in self.family_pages(group, name).values() if member not in in_pool)
            if not moving:
                assert outside == 0, context + f"volume {name}: no move recorded, {outside} pages outside pool {pool}"
            elif state.moving[name] and not changed:
                assert outside <= state.outside[name], context + (
                    f"volume {name}: pages outside pool {pool} went from {state.outside[name]} to {outside}"
                )  # fmt: skip
                self.stats.switched_across_kills += state.outside[name] - outside
            state.pools[name], state.moving[name], state.outside[name] = pool, moving, outside

    # ---------------------------------------------------------------- the end

    def finish(self) -> None:
        """Let every move finish in this process (the vacate started again if it is not under way); check all."""
        with Group.open(self.dir) as group:
            if self.state.m2 == "member":
                group.delete_member(mw.VACATED)
            while group.background_step(1 << 20):
                pass
            assert not group.moves, f"moves left after background_step returned False: {group.moves}"
            if self.state.m2 != "gone":
                self.check_files_gone(tolerate=False)  # removed here, in one piece
            self.state.m2 = "gone"
            self.check_final(group)
        with Group.open(self.dir) as group:
            self.check_final(group)

    def check_files_gone(self, tolerate: bool) -> None:
        left = sorted(p.name for p in (self.dir / "members").glob(f"{mw.VACATED}.*"))
        if left and tolerate:
            self.stats.leftover_files += 1
        elif left:
            raise LeftoverFiles(f"seed {self.seed}, round {self.round}: m2 left the group, its files stay: {left}")

    def check_final(self, group: Group) -> None:
        problems = sql_problems(group.catalog.db) + memory_problems(group)
        assert not problems, "\n".join(problems)
        self.check_contents(group, None)
        names = [r.name for r in group.member_admin.reports()]
        assert names == ["member-1", "m3"], f"members after the vacate: {names}"
        for volume in group.volumes.values():
            holding = group.members_holding(volume)
            assert mw.VACATED not in holding, f"volume {volume.name} is still on m2: {holding}"
            in_pool = {m.name for m in group.placement.pool_members(volume.pool_id)}
            assert set(holding) <= in_pool, f"volume {volume.name} is on {holding}, outside its pool"
            pages = self.family_pages(group, volume.name)
            assert all(group.placement.members[m].name in in_pool for m in pages.values()), volume.name


# --------------------------------------------------------------------- tests


def test_vacate_survives_kill9_quick(tmp_path: Path) -> None:
    """Fast loop: m2 is vacated by a writer killed twice, early in the move; nothing is lost; it finishes here."""
    harness = MoveCrashHarness(tmp_path, base_seed(), tolerate_leftover_files=True)
    harness.kill_round("vacate", harness.rng.uniform(0.05, 0.25))
    harness.kill_round("none", harness.rng.uniform(0.05, 0.25))
    harness.finish()
    print(harness.stats.summary())
    assert harness.stats.kills == 2
    assert harness.stats.moves_started["vacate"] == 1


@pytest.mark.slow
def test_moves_survive_random_kill9(tmp_path: Path) -> None:
    """Vacates, cancels and volume moves, killed at random moments round after round on one group."""
    seed = base_seed() + 1
    harness = MoveCrashHarness(tmp_path, seed, tolerate_leftover_files=True)
    # What each writer starts before its steps (nothing if that is under way or done already): the
    # vacate, cancelled, started again, resumed (by a writer killed early, maybe before it could),
    # joined by v1's move, then v2's, and v1 moved back.
    plan = ["vacate", "cancel", "vacate", "none", "none", "volume:v1", "volume:v2", "none", "volume:v1"]
    for number, start in enumerate(plan):
        early = number == 4  # killed in start-up, Group.open or the first steps
        harness.kill_round(start, harness.rng.uniform(0.05, 0.3 if number < 2 else 0.8), early)
    harness.clean_round()
    harness.finish()
    print(f"[seed {seed}, plan {plan}] {harness.stats.summary()}")
    assert harness.stats.kills == len(plan)
    assert harness.stats.moves_started["volume"] >= 2, harness.stats.summary()
    assert harness.stats.kills_mid_move >= 2, harness.stats.summary()  # most are; the moves are quick


@pytest.mark.slow
def test_moves_killed_at_chosen_commits(tmp_path: Path) -> None:
    """The writer kills itself right before or after chosen commits of the moves, on one group all along:
    each time the group is in the state of the last commit, and the moves resume and end."""
    harness = MoveCrashHarness(tmp_path, base_seed() + 2)
    state = harness.state
    harness.point_round("vacate", START_SQL, "before", 1)  # not started
    assert state.m2 == "member"
    harness.point_round("vacate", START_SQL, "after", 1)  # started, not acknowledged
    assert state.m2 == "vacating" and state.on_m2 > 0
    harness.point_round("volume:v1", SWITCH_SQL, "before", 2)  # the vacate runs first, then v1's move
    assert state.m2 in ("vacating", "gone") and state.pools["v1"] == mw.OTHER_POOL and state.moving["v1"]
    harness.point_round("none", SWITCH_SQL, "after", 2)
    harness.clean_round()
    assert state.m2 == "gone" and state.pools["v1"] == mw.OTHER_POOL and not state.moving["v1"]
    harness.point_round("volume:v2", START_SQL, "after", 1)
    assert state.pools["v2"] == mw.OTHER_POOL and state.moving["v2"]
    harness.point_round("none", FINISH_SQL, "after", 1)  # a volume's move ends in one transaction
    assert state.pools["v2"] == mw.OTHER_POOL and not state.moving["v2"] and state.outside["v2"] == 0
    harness.finish()
    print(harness.stats.summary())
    assert harness.stats.crash_points == 6
    assert harness.stats.switched_across_kills >= 2  # the pages switched in round 4 stayed switched


@pytest.mark.slow
@pytest.mark.parametrize(
    "sql",
    [FINISH_SQL, REMOVE_SQL],
    ids=["after-move-row-deleted", "after-member-row-deleted"],
)
def test_vacate_end_killed_at_commit(tmp_path: Path, sql: str) -> None:
    """Killed as the vacated member leaves the group: it must be recorded as leaving, or gone with its files."""
    harness = MoveCrashHarness(tmp_path, base_seed() + 3)
    harness.point_round("vacate", sql, "after", 1)
    harness.clean_round()
    harness.finish()
