"""Snapshot collections are write-order consistent across their volumes, through a real server.

``array-sim serve`` (started by ``benchmarks/iscsi_peer.py``) with volumes a and b in collection
``pair``. Two writer threads, each with its own iSCSI session (``benchmarks/iscsi_writer.py``),
write a sequence number to block 0 of their volume, a first, and each writes its next number only
after the other's previous write was acknowledged: so at any instant a's number is b's or one
more. Two more sessions keep 64 KiB writes going on both volumes (load), while
``collection select pair snapshot create-now`` is sent over the control socket again and again.
Then, in every snapshot collection, a's snapshot holds b's number or one more; the numbers move on
from one snapshot collection to the next. The same check on pairs of single snapshots taken by two
commands one after the other finds them apart: the check can tell.
"""

from __future__ import annotations

import random
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from array_sim import Group
from firmware_model.control import RemoteSession

sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

import iscsi_peer  # noqa: E402
from iscsi_writer import Initiator  # noqa: E402

pytestmark = pytest.mark.slow

ROUNDS = 60
SINGLE_PAIRS = 20
#: The load writes land in the first two pages (the sequence numbers in block 0).
LOAD_BLOCKS = 2 * 15 * 2048


def _iqn(lines: list[str]) -> str:
    return next(line.split()[-1].rstrip(".") for line in lines if "iSCSI target name is" in line)


def _number(group: Group, volume: str, snapshot: str) -> int:
    block = group.tables.read(group.snapshot(volume, snapshot).map_id, 0, 0, 512)
    return int.from_bytes(block[:8], "big")


class Writers:
    """The two sequence writers and two load writers, in threads; ``stop`` ends them."""

    def __init__(self, port: int, iqns: dict[str, str]) -> None:
        self.acked = {"a": 0, "b": 0}
        self.turn = threading.Condition()
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        runs: list[Callable[[], None]] = [
            lambda: self._sequence(Initiator("127.0.0.1", port, iqns["a"]), "a",
                                   lambda: self.acked["a"] == self.acked["b"]),
            lambda: self._sequence(Initiator("127.0.0.1", port, iqns["b"]), "b",
                                   lambda: self.acked["a"] == self.acked["b"] + 1),
            *(lambda v=v: self._load(Initiator("127.0.0.1", port, iqns[v])) for v in ("a", "b")),
        ]  # fmt: skip
        self.threads = [threading.Thread(target=self._guard, args=(run,), daemon=True) for run in runs]
        for thread in self.threads:
            thread.start()

    def _guard(self, run: Callable[[], None]) -> None:
        try:
            run()
        except BaseException as error:  # reported by stop()
            self.errors.append(error)
            self.stopping.set()
            with self.turn:
                self.turn.notify_all()

    def _sequence(self, initiator: Initiator, volume: str, my_turn: Callable[[], bool]) -> None:
        while not self.stopping.is_set():
            with self.turn:
                while not (my_turn() or self.stopping.is_set()):
                    self.turn.wait(1)
                number = self.acked[volume] + 1
            if self.stopping.is_set():
                break
            initiator.write(0, struct.pack(">Q", number) * 64)
            with self.turn:
                self.acked[volume] = number
                self.turn.notify_all()
        initiator.logout()

    def _load(self, initiator: Initiator) -> None:
        rng, payload = random.Random(), bytes(range(256)) * 256
        while not self.stopping.is_set():
            initiator.write(rng.randrange(8, LOAD_BLOCKS - 128), payload)
        initiator.logout()

    def stop(self) -> None:
        self.stopping.set()
        with self.turn:
            self.turn.notify_all()
        for thread in self.threads:
            thread.join(30)
        assert not self.errors, self.errors


def test_every_collection_snapshot_is_one_point_in_time(tmp_path: Path) -> None:
    with iscsi_peer.our_target(tmp_path, volume="a", size="150MB", options=("multihost-access", "enable")) as target:
        iqns = {"a": target.iqn, "b": _iqn(target.cli("volume", "create", "b", "150MB", "multihost-access", "enable"))}
        target.cli("volume", "select", "b", "access", "create", "ipaddress", "*.*.*.*")
        target.cli("collection", "create", "pair", "a", "b")
        target.cli("cli-settings", "formatoutput", "off")
        for volume in ("a", "b"):  # a snapshot kept is never deleted to make room (delete-oldest)
            target.cli("volume", "select", volume, "snap-depletion", "borrow")
        control = RemoteSession(target.group_dir, "grpadmin", False)
        writers = Writers(target.port, iqns)
        try:
            while writers.acked["b"] < 50:  # all four sessions are writing
                assert not writers.stopping.is_set(), writers.errors
                time.sleep(0.01)
            snapcols, singles = [], []
            for n in range(ROUNDS):
                lines = control.execute("collection select pair snapshot create-now")
                assert lines[0] == "Snapshot collection creation succeeded.", lines
                last_name = lines[1].removeprefix("Snapshot collection name is ")
                snapcols.append({line.split()[3]: line.split()[5] for line in lines[2:]})
                if n < SINGLE_PAIRS:  # the same two volumes by two commands: not one point in time
                    pair = {}
                    for volume in ("a", "b"):
                        out = control.execute(f"volume select {volume} snapshot create-now")
                        pair[volume] = out[1].removeprefix("Snapshot name is ")
                    singles.append(pair)
                time.sleep(random.uniform(0, 0.02))
            acked = dict(writers.acked)
        finally:
            writers.stop()
            control.close()
        # The last snapshot collection set online as one, and read through its own targets.
        target.cli("collection", "select", "pair", "snapshot", "select", last_name, "online")
        served = {}
        for volume, snapshot in snapcols[-1].items():
            details = target.cli("volume", "select", volume, "snapshot", "show", snapshot)
            iqn = next(line.removeprefix("iSCSI Name: ") for line in details if line.startswith("iSCSI Name: "))
            reader = Initiator("127.0.0.1", target.port, iqn, name="iqn.2026-12.org.array-sim:reader")
            served[volume] = int.from_bytes(reader.read(0, 1)[:8], "big")
            reader.logout()
    with Group.open(target.group_dir) as group:
        numbers = [(_number(group, "a", s["a"]), _number(group, "b", s["b"])) for s in snapcols]
        apart = [(_number(group, "a", s["a"]), _number(group, "b", s["b"])) for s in singles]
    assert served == {"a": numbers[-1][0], "b": numbers[-1][1]}
    for a, b in numbers:
        assert a - b in (0, 1), numbers
    assert numbers == sorted(numbers) and len(set(numbers)) > ROUNDS // 2, numbers  # the writers moved on
    assert acked["a"] >= numbers[-1][0] > 50
    assert any(a - b not in (0, 1) for a, b in apart), apart  # taken one after the other, they are apart

