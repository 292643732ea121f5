"""The write hole: kill -9 during partial-stripe writes, reopen, fail a disk, every byte still right.

Each round runs ``raid_crash_writer.py`` in a child process, kills it with SIGKILL at a random
moment, reopens the store (which resyncs the stripes the dirty map names), and checks every byte
of the written span: acknowledged writes read back, untouched bytes are unchanged, and the one
write in flight reads old or new per 512-byte sector inside its own range. Then a disk fails (each
set position in turn over the rounds, and before that every disk is left out of the reads in turn,
in memory only) and the degraded reads must give the same bytes: a parity
left stale by the crash would rebuild wrong data here. The disk is replaced and rebuilt before the
next round.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from array_sim.raid.store import RaidStore
from array_sim.units import PAGE_SIZE

from .raid_crash_writer import SPAN, op

WRITER = Path(__file__).with_name("raid_crash_writer.py")
SECTOR = 512


def _read_span(store: RaidStore) -> bytes:
    return b"".join(store.read(slot, 0, PAGE_SIZE) for slot in range(SPAN // PAGE_SIZE))


def _run_and_kill(directory: Path, seed: int, log: Path, rng: random.Random) -> None:
    child = subprocess.Popen([sys.executable, str(WRITER), str(directory), str(seed), str(log)])
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and log.read_bytes().startswith(b"start")):
            assert child.poll() is None, "writer exited"
            assert time.monotonic() < deadline, "writer did not start"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def _check(actual: bytes, before: bytes, seed: int, log: Path) -> int:
    """Check ``actual`` against ``before`` plus the logged writes; returns the number acknowledged."""
    lines = log.read_text().split()
    intents = [int(v) for k, v in zip(lines[1::2], lines[2::2]) if k == "intent"]
    acks = {int(v) for k, v in zip(lines[1::2], lines[2::2]) if k == "ack"}
    model = bytearray(before)
    in_flight = None
    for i in intents:
        pos, data = op(seed, i)
        if i in acks:
            model[pos : pos + len(data)] = data
        else:
            assert i == intents[-1]
            in_flight = (pos, data)
    if in_flight is None:
        assert actual == bytes(model)
        return len(acks)
    pos, data = in_flight
    end = pos + len(data)
    assert actual[:pos] == model[:pos] and actual[end:] == model[end:]
    new = bytearray(model)
    new[pos:end] = data
    for s in range(pos - pos % SECTOR, end, SECTOR):
        a, b = max(s, pos), min(s + SECTOR, end)
        assert actual[a:b] in (model[a:b], new[a:b]), f"sector at {s} of the write in flight is neither old nor new"
    return len(acks)


@pytest.mark.slow
@pytest.mark.parametrize(("policy", "disks", "rounds"), [("raid6-nospares", 5, 8), ("raid5-nospares", 4, 8)])
def test_kill_during_partial_stripe_writes(policy: str, disks: int, rounds: int, tmp_path: Path) -> None:
    directory = tmp_path / "m"
    RaidStore.create(directory, policy, disks, RaidStore.disk_size_for(policy, disks, 3 * PAGE_SIZE)).close()
    rng = random.Random(policy)
    before = bytes(SPAN)
    acked = 0
    for round_ in range(rounds):
        log = tmp_path / f"ack-{round_}.log"
        _run_and_kill(directory, round_, log, rng)
        store = RaidStore.open(directory)
        try:
            actual = _read_span(store)
            acked += _check(actual, before, round_, log)
            for d in range(disks):  # every disk missing in turn, without failing it for good
                store._status[d] = "failed"
                try:
                    assert _read_span(store) == actual, f"round {round_}: degraded reads differ without disk {d}"
                finally:
                    store._status[d] = "on-line"
            victim = round_ % disks
            store.fail_disk(victim)
            assert _read_span(store) == actual, f"round {round_}: degraded reads differ after failing disk {victim}"
            store.replace_disk(victim)
            while store.background_step(1 << 22):
                pass
            assert store.health().raid_status == "ok"
            assert not store.lost_blocks
            before = actual
        finally:
            store.close()
    assert acked > 50
