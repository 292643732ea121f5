"""Writes of megabytes over a real socket to ``array-sim serve``: gathered by R2T into a buffer that
never moves (``targets.iscsi.tasks`` rule 2), on block boundaries that are not 4 KiB chunk
boundaries (the page layer fills the edge chunks from the layers below: ``array_sim.pages``), over
a snapshot's shared pages, and abandoned half-way by an initiator that goes away."""

from __future__ import annotations

import struct
import time

import pytest

from targets.iscsi.pdu import DataIn, DataOut, Pdu, ReadyToTransfer, ScsiResponse

from .initiator import Initiator
from .test_server import INITIATOR, Server

pytestmark = pytest.mark.slow

SECTOR = 512
MiB = 1 << 20
#: Sectors per 15 MiB page: a write from PAGE_EDGE - 5 straddles pages 0 and 1 off 4 KiB boundaries.
PAGE_EDGE = 15 * 2048
#: Offered at login: what the target offers (targets/iscsi/keys.py), with every write solicited by R2T.
KEYS = [
    ("MaxRecvDataSegmentLength", "262144"), ("MaxBurstLength", "1048576"), ("FirstBurstLength", "262144"),
    ("MaxOutstandingR2T", "16"), ("InitialR2T", "Yes"), ("ImmediateData", "No"),
]  # fmt: skip
SEGMENT = 262144


def write16(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIBB", 0x8A, 0, lba, blocks, 0, 0)


def read16(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIBB", 0x88, 0, lba, blocks, 0, 0)


SYNCHRONIZE_CACHE_10 = bytes([0x35]) + bytes(9)


def pattern(seed: int, size: int) -> bytes:
    """Bytes that differ from one sector to the next, so a misplaced sector shows."""
    return b"".join(struct.pack(">II", seed, n) * (SECTOR // 8) for n in range(size // SECTOR))


def until_status(ini: Initiator, replies: list[Pdu], itt: int, timeout: float = 120) -> list[Pdu]:
    """Every PDU up to and with the status of ``itt`` (a SCSI Response, or Data-In with status)."""
    got = list(replies)
    deadline = time.monotonic() + timeout
    while not any(
        p.itt == itt and (isinstance(p, ScsiResponse) or isinstance(p, DataIn) and p.flags & 0x01) for p in got
    ):
        assert time.monotonic() < deadline and not ini.link.closed, got[-3:]
        got += ini.exchange()
    return got


def write(ini: Initiator, lba: int, data: bytes, stop_after: int | None = None) -> ScsiResponse | None:
    """A WRITE(16) whose data goes by R2T; with ``stop_after``, only that many bytes are sent."""
    replies = ini.command(write16(lba, len(data) // SECTOR), length=len(data))
    itt, sent, solicited = ini.itt, 0, []
    deadline = time.monotonic() + 120
    while True:
        response = next((p for p in replies if isinstance(p, ScsiResponse) and p.itt == itt), None)
        if response is not None:
            return response
        assert time.monotonic() < deadline and not ini.link.closed, replies
        solicited += [p for p in replies if isinstance(p, ReadyToTransfer) and p.itt == itt]
        if not solicited:
            replies = ini.exchange()
            continue
        r2t = solicited.pop(0)
        end = r2t.buffer_offset + r2t.desired_length
        pdus = [
            DataOut(flags=0x80 if offset + SEGMENT >= end else 0, itt=itt, ttt=r2t.ttt, exp_stat_sn=ini.exp_stat_sn,
                    data_sn=n, buffer_offset=offset, data=data[offset : min(offset + SEGMENT, end)])
            for n, offset in enumerate(range(r2t.buffer_offset, end, SEGMENT))
        ]  # fmt: skip
        if stop_after is not None and sent + r2t.desired_length > stop_after:
            ini.exchange(*pdus[: (stop_after - sent) // SEGMENT])
            return None
        sent += r2t.desired_length
        replies = ini.exchange(*pdus)


def read(ini: Initiator, lba: int, size: int) -> bytes:
    replies = until_status(ini, ini.command(read16(lba, size // SECTOR), read=size), ini.itt)
    data = {p.buffer_offset: bytes(p.data) for p in replies if isinstance(p, DataIn) and p.itt == ini.itt}
    return b"".join(data[offset] for offset in sorted(data))


@pytest.fixture
def server(tmp_path):
    server = Server(tmp_path / "group")
    server.cli("cli-settings", "confirmation", "off")
    server.cli("cli-settings", "formatoutput", "off")
    server.cli("volume", "create", "v1", "100MB")
    server.cli("volume", "select", "v1", "access", "create", "initiator", INITIATOR)
    yield server
    if server.process.poll() is None:
        server.stop()


def session(server: Server, iqn: str) -> Initiator:
    ini = server.initiator()
    assert ini.login(iqn, extra=KEYS)[-1].status_class == 0
    ini.command(bytes(6))  # the power-on unit attention
    return ini


def test_a_large_write_off_chunk_boundaries_lands_whole_and_flushes(server):
    ini = session(server, server.iqn("v1"))
    data = pattern(1, 4 * MiB + 3 * SECTOR)  # gathered in a pooled memory map; ends mid-chunk
    lba = PAGE_EDGE - 5  # starts mid-chunk, one page's last chunk, and runs into the next page
    response = write(ini, lba, data)
    assert response is not None and response.status == 0
    status = until_status(ini, ini.command(SYNCHRONIZE_CACHE_10), ini.itt)[-1]
    assert isinstance(status, ScsiResponse) and status.status == 0
    around = 16 * SECTOR  # whole chunks on either side: what the edge chunks kept reads zeros
    assert read(ini, lba - 16, len(data) + 2 * around) == bytes(around) + data + bytes(around)


def test_a_large_write_over_a_snapshot_leaves_the_snapshot_as_it_was(server):
    ini = session(server, server.iqn("v1"))
    old = pattern(2, 8 * MiB)
    assert write(ini, PAGE_EDGE - 2048, old).status == 0  # 1 MiB before the page edge onwards
    snapshot = server.cli("volume", "select", "v1", "snapshot", "create-now").splitlines()[1].split()[-1]
    new = pattern(3, 2 * MiB + 7 * SECTOR)
    assert write(ini, PAGE_EDGE - 3, new).status == 0  # over pages both now share with the snapshot
    start = PAGE_EDGE - 3 - (PAGE_EDGE - 2048)
    assert read(ini, PAGE_EDGE - 2048, len(old)) == old[: start * SECTOR] + new + old[start * SECTOR + len(new) :]

    server.cli("volume", "select", "v1", "snapshot", "select", snapshot, "online")
    snap_iqn = next(
        line.split(": ", 1)[1]
        for line in server.cli("volume", "select", "v1", "snapshot", "select", snapshot, "show").splitlines()
        if line.startswith("iSCSI Name:")
    )
    reader = session(server, snap_iqn)
    assert read(reader, PAGE_EDGE - 2048, len(old)) == old


def test_a_large_write_abandoned_half_way_writes_nothing_and_the_server_goes_on(server):
    iqn = server.iqn("v1")
    ini = session(server, iqn)
    assert write(ini, 0, pattern(4, 16 * MiB), stop_after=5 * MiB) is None
    ini.link.close()
    again = session(server, iqn)
    assert read(again, 0, 16 * MiB) == bytes(16 * MiB)
    assert server.process.poll() is None
