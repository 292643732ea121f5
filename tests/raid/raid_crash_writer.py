"""Write-hole test writer: random partial-stripe writes to a RaidStore until it is killed.

Run by ``test_raid_write_hole.py``::

    python raid_crash_writer.py STORE_DIR SEED ACK_LOG

Write ``i`` is fully determined by ``(SEED, i)`` (``op(seed, i, span)``). Before each write the
writer appends ``intent i`` to ACK_LOG and after it returns ``ack i``, each with one ``os.write``
on an O_APPEND descriptor, so a ``kill -9`` loses no line: at most one write is in flight.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from array_sim.raid.layout import STRIP  # noqa: E402
from array_sim.raid.store import RaidStore  # noqa: E402
from array_sim.units import PAGE_SIZE  # noqa: E402

#: Bytes of the member the writes land in (the first two pages).
SPAN = 2 * PAGE_SIZE


def op(seed: int, i: int) -> tuple[int, bytes]:
    """Position and data of write ``i`` of run ``seed``: mostly partial-stripe and unaligned; every
    third a run of whole strips going on from the one three writes before (``raid.held`` holds
    those stripes), restarting at a stripe boundary every 12th write."""
    rng = random.Random(seed * 1_000_003 + i)
    if i % 3 == 2:
        start = (seed % 7) * 12 * STRIP + (i // 12) * 12 * STRIP  # 12 strips: whole stripes of every k
        pos = (start + sum(op_strips(seed, j) for j in range(i - i % 12 + 2, i, 3)) * STRIP) % (SPAN - 16 * STRIP)
        length = op_strips(seed, i) * STRIP
    else:
        length = rng.choice([1, 7, 512, 4096, 5000, 65536, 70000, 200_000])
        length = rng.randint(1, length)
        pos = rng.randrange(SPAN - length)
    if pos // PAGE_SIZE != (pos + length - 1) // PAGE_SIZE:
        pos = (pos // PAGE_SIZE + 1) * PAGE_SIZE - length
    return pos, rng.randbytes(length)


def op_strips(seed: int, i: int) -> int:
    """How many whole strips write ``i`` (one of every third) covers."""
    return random.Random(seed * 7_000_003 + i).choice([1, 2, 3, 7, 16])


def main() -> None:
    directory, seed, log = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    store = RaidStore.open(directory)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, b"start\n")
    i = 0
    while True:
        pos, data = op(seed, i)
        os.write(fd, f"intent {i}\n".encode())
        store.write(pos // PAGE_SIZE, pos % PAGE_SIZE, data)
        os.write(fd, f"ack {i}\n".encode())
        i += 1


if __name__ == "__main__":
    main()
