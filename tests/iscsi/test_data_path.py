"""The data path sans-IO, against a real group: buffers sized by the CDB and the device's limits (never by
the Expected Data Transfer Length), 32-bit residuals, the task set's bound, malformed Text Requests,
flow control, pending tasks dropped with the connection, and why a login was refused."""

from __future__ import annotations

import mmap
import struct

from targets.iscsi import gather_pool
from targets.iscsi.connection import OUTPUT_BUDGET, Connection
from targets.iscsi.framing import encode_pdu
from targets.iscsi.login import MAX_LOGIN_TEXT
from targets.iscsi.pdu import (
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    ReadyToTransfer,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TextRequest,
    TextResponse,
)
from targets.iscsi.tasks import Work, WriteTask
from targets.scsi.dispatch import data_out_to_gather

from .initiator import Initiator, MemoryLink, run_work
from .test_connection import INITIATOR, group, logged_in, portal, read10  # noqa: F401 - fixtures

EDTL_MAX = 0xFFFFFFFF


def write16(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIBB", 0x8A, 0, lba, blocks, 0, 0)


def responses(replies):
    return [r for r in replies if isinstance(r, ScsiResponse)]


# ----------------------------------------------------------------- sizing


def test_data_out_to_gather_is_bounded_by_maximum_transfer_length():
    assert data_out_to_gather(write16(0, 8)) == (4096, 4096)
    assert data_out_to_gather(write16(0, 8), 4096) == (8 * 4096, 8 * 4096)
    assert data_out_to_gather(write16(0, 65536)) == (32 << 20, 32 << 20)
    # One block more than MAXIMUM TRANSFER LENGTH, and terabytes: asked for, not gathered.
    assert data_out_to_gather(write16(0, 65537)) == (65537 * 512, 0)
    assert data_out_to_gather(write16(0, 0xFFFFFFFF)) == (0xFFFFFFFF * 512, 0)
    assert data_out_to_gather(struct.pack(">BBB2xIB", 0x5F, 0, 0, 0xFFFFFFFF, 0)) == (0xFFFFFFFF, 0)
    assert data_out_to_gather(struct.pack(">BBB2xIB", 0x5F, 0, 0, 24, 0)) == (24, 24)


def test_write_task_keeps_what_it_gathers_and_grows_with_the_data():
    task = WriteTask.start(1, 0, write16(0, 8), EDTL_MAX, 1, b"a" * 512, gather=4096, unsolicited=512)
    assert len(task.buffer) == 512 and not task.complete
    r2ts = task.next_r2ts(262144, 16, iter(range(100, 200)).__next__)
    assert [(offset, length) for _ttt, _sn, offset, length in r2ts] == [(512, 3584)]
    task.accept(r2ts[0][0], 0, 512, memoryview(b"b" * 1024))
    assert len(task.buffer) == 1536 and not task.complete
    task.accept(r2ts[0][0], 1, 1536, memoryview(b"c" * 2560))
    assert task.complete and bytes(task.buffer) == b"a" * 512 + b"b" * 1024 + b"c" * 2560


def test_unsolicited_data_past_what_is_gathered_is_awaited_not_kept():
    # InitialR2T=No: the initiator sends its first burst whatever the CDB; only 1024 bytes are kept.
    unsolicited = WriteTask.unsolicited(EDTL_MAX, 0, False, 65536)
    assert unsolicited == 65536
    task = WriteTask.start(1, 0, write16(0, 2), EDTL_MAX, 1, b"", gather=1024, unsolicited=unsolicited)
    assert task.next_r2ts(262144, 16, iter(range(100, 200)).__next__) == []
    for n in range(8):
        task.accept(0xFFFFFFFF, n, n * 8192, memoryview(bytes([n + 1]) * 8192))
    assert task.complete and bytes(task.buffer) == b"\x01" * 1024


def test_a_large_write_takes_no_memory_until_data_comes_then_a_pooled_map():
    pool = gather_pool.POOL
    task = WriteTask.start(1, 0, write16(0, 65536), 32 << 20, 1, b"", gather=32 << 20, unsolicited=0)
    assert task.buffer is None and bytes(task.data) == b""
    (ttt, _sn, offset, length), *_ = task.next_r2ts(1 << 20, 1, iter(range(100, 200)).__next__)
    task.accept(ttt, 0, 0, memoryview(b"x" * 8192))
    assert isinstance(task.buffer, mmap.mmap) and len(task.buffer) == 32 << 20
    assert bytes(task.data) == b"x" * 8192
    data, release = task.data, task.release()
    assert release is not None and task.buffer is None
    held = pool.held
    release()  # a view of it is still out: not recycled
    assert pool.held == held
    del data


def test_a_recycled_buffer_never_shows_the_last_commands_bytes_in_a_gap():
    pool = gather_pool.GatherPool()
    first = pool.acquire(1 << 20)
    first[:] = b"\xee" * len(first)
    pool.release(first)
    assert pool.held == 1 << 20 and pool.acquire(600 << 10) is first  # its size class, recycled
    pool.release(first)
    gather_pool.POOL, shared = pool, gather_pool.POOL
    try:
        task = WriteTask.start(1, 0, write16(0, 2048), 1 << 20, 1, b"", gather=1 << 20, unsolicited=0)
        ((ttt, _sn, _offset, _length),) = task.next_r2ts(1 << 20, 1, iter(range(100, 200)).__next__)
        # A hostile initiator skips the first 64 KiB and sends the next 64 KiB 16 times: DataSN in order,
        # the R2T's byte count reached, the bytes it never sent left out.
        for data_sn in range(16):
            task.accept(ttt, data_sn, 65536, memoryview(b"y" * 65536))
        assert task.complete and task.buffer is first
        assert bytes(task.data) == bytes(65536) + b"y" * 65536
    finally:
        gather_pool.POOL = shared


def test_the_pool_keeps_at_most_its_idle_bytes_and_lets_seen_buffers_go():
    pool = gather_pool.GatherPool(idle_bytes=2 << 20)
    buffers = [pool.acquire(1 << 20) for _ in range(4)]
    assert len({id(b) for b in buffers}) == 4
    seen = memoryview(buffers[0])
    for buffer in buffers:
        pool.release(buffer)
    # The seen one is left to the garbage collector, two are kept, the last is over the limit: unmapped.
    assert pool.held == 2 << 20
    assert not buffers[0].closed and not buffers[1].closed and not buffers[2].closed and buffers[3].closed
    assert {id(pool.acquire(1 << 20)) for _ in range(2)} == {id(buffers[1]), id(buffers[2])}
    assert pool.held == 0 and pool.acquire(1 << 20) not in buffers
    seen.release()


def test_work_gives_its_buffer_back_after_the_call_even_when_aborted():
    released = []
    work = Work(1, 0, lambda: "ran", release=lambda: released.append(True))
    assert work.run() == "ran" and released == [True] and work.call is None
    aborted = Work(2, 0, lambda: "ran", release=lambda: released.append(True))
    aborted.aborted = True
    assert aborted.run() is None and released == [True, True]


# ------------------------------------------------------ through a connection


def test_claimed_edtl_solicits_only_what_the_cdb_asks_and_reports_the_underflow(group, portal):
    ini = logged_in(portal, group)
    (r2t,) = ini.command(write16(0, 8), length=EDTL_MAX)
    assert isinstance(r2t, ReadyToTransfer) and (r2t.buffer_offset, r2t.desired_length) == (0, 4096)
    (connection_task,) = ini.link.connection.writes.values()
    assert connection_task.buffer is None  # nothing held until data comes
    (response,) = responses(ini.data_out(r2t.itt, r2t.ttt, 0, b"D" * 4096))
    assert response.status == 0 and response.flags & 0x02 and response.residual == EDTL_MAX - 4096


def test_a_large_writes_map_goes_back_to_the_pool_and_the_next_write_reuses_it(group, portal, monkeypatch):
    pool = gather_pool.GatherPool()
    monkeypatch.setattr(gather_pool, "POOL", pool)
    ini = logged_in(portal, group)
    size = 256 * 1024  # over gather_pool.SMALLEST: gathered in a pooled map

    def write(lba: int, fill: bytes) -> None:
        replies = ini.command(write16(lba, size // 512), length=size)
        solicited = [r for r in replies if isinstance(r, ReadyToTransfer)]
        while solicited:
            r2t = solicited.pop(0)
            end = r2t.buffer_offset + r2t.desired_length
            for data_sn, offset in enumerate(range(r2t.buffer_offset, end, 8192)):
                replies = ini.exchange(DataOut(flags=0x80 if offset + 8192 >= end else 0, itt=r2t.itt, ttt=r2t.ttt,
                                               exp_stat_sn=ini.exp_stat_sn, data_sn=data_sn, buffer_offset=offset,
                                               data=fill * 8192))  # fmt: skip
                solicited += [r for r in replies if isinstance(r, ReadyToTransfer)]
        assert responses(replies)[-1].status == 0

    write(0, b"A")
    assert pool.held == size  # given back once the command ran
    (kept,) = [buffer for buffers in pool._idle.values() for buffer in buffers]
    write(size // 512, b"B")
    assert pool.held == size and pool._idle[size] == [kept]  # the same map, recycled
    data = b"".join(bytes(p.data) for p in ini.command(read10(0, 2 * size // 512), read=2 * size) if p.data)
    assert data == b"A" * size + b"B" * size


def test_write16_of_ffffffff_blocks_is_an_invalid_cdb_field_with_a_clamped_residual(group, portal):
    ini = logged_in(portal, group)
    (response,) = responses(ini.command(write16(0, 0xFFFFFFFF), write=b"Q" * 4096))
    sense = bytes(response.data)[2:]
    assert response.status == 0x02 and (sense[2] & 0x0F, sense[12]) == (0x05, 0x24)
    assert response.flags & 0x04 and response.residual == 0xFFFFFFFF
    replies = ini.command(read10(0, 8), read=4096)
    assert b"Q" not in b"".join(bytes(r.data) for r in replies if isinstance(r, DataIn))


def test_writes_waiting_for_data_are_bounded_by_the_queue_depth(group, portal):
    ini = Initiator(MemoryLink(Connection(portal, "127.0.0.1", portal.new_tsih(), queue_depth=4)), name=INITIATOR)
    assert ini.login(group.volume("open").iqn)[-1].status_class == 0
    ini.command(bytes(6))
    for lba in range(4):
        assert isinstance(ini.command(write16(lba, 1), length=512)[0], ReadyToTransfer)
    (full,) = ini.command(write16(9, 1), length=512)
    assert isinstance(full, ScsiResponse) and full.status == 0x28  # TASK SET FULL
    assert len(ini.link.connection.writes) == 4
    ini.link.connection.drop("test", warn_initiator=False)
    assert ini.link.connection.writes == {}


def test_malformed_text_request_is_rejected_and_the_session_goes_on(group, portal):
    ini = logged_in(portal, group)
    for text in (b"\xc3\x28=All\0", b"SendTargets\0"):
        pdu = TextRequest(flags=0x80, itt=ini.next_itt(), cmd_sn=ini.cmd_sn, exp_stat_sn=ini.exp_stat_sn, data=text)
        ini.cmd_sn += 1
        (reject,) = ini.exchange(pdu)
        assert isinstance(reject, Reject) and reject.reason == 0x04
    assert not ini.link.closed
    assert isinstance(ini.text([("SendTargets", "")])[-1], TextResponse)


def test_no_input_is_taken_while_paused_nor_past_the_output_budget(group, portal):
    ini = logged_in(portal, group, extra=[("MaxRecvDataSegmentLength", "262144")])
    connection = ini.link.connection
    blocks = 2048  # 1 MiB each
    count = OUTPUT_BUDGET // (blocks * 512) * 3
    pdus = []
    for _ in range(count):
        pdus.append(ScsiCommand(flags=0xC1, itt=ini.next_itt(), expected_length=blocks * 512, cmd_sn=ini.cmd_sn,
                                exp_stat_sn=ini.exp_stat_sn, cdb=read10(0, blocks).ljust(16, b"\0")))  # fmt: skip
        ini.cmd_sn += 1
    wire = b"".join(bytes(p) for pdu in pdus for p in encode_pdu(pdu))

    connection.paused = True
    connection.receive(wire)
    assert connection.data_to_send() == [] and connection.work_to_run() == []
    connection.paused = False

    statuses, sent = 0, 0
    assert connection.resume()
    while True:
        run_work(connection)
        out = connection.data_to_send()
        size = sum(len(piece) for piece in out)
        assert size <= OUTPUT_BUDGET + blocks * 512 + 64 * 1024
        sent += size
        ini.framer.feed(b"".join(bytes(piece) for piece in out))
        statuses += sum(bool(frame.decode().flags & 0x01) for frame in ini.framer.frames())
        if not connection.resume():
            break
    assert statuses == count and sent > count * blocks * 512


def test_refused_login_names_the_target_and_what_its_records_allow(group, portal):
    ini = Initiator(MemoryLink(Connection(portal, "10.1.2.3", portal.new_tsih())), name="iqn.2026-11.test:nobody")
    iqn = group.volume("open").iqn
    assert ini.login(iqn)[-1].status_detail == 0x02
    reason = ini.link.connection.close_reason
    assert "iqn.2026-11.test:nobody" in reason and iqn in reason and "10.1.2.3" in reason
    assert f"record 1: initiator {INITIATOR}" in reason
    assert portal.access_summary(group.volume("hidden").iqn) == "it has no access record"


# ------------------------------------------------------- framing and login text


def test_a_claimed_data_segment_past_mrdsl_drops_the_connection_before_any_room_is_made(group, portal):
    ini = logged_in(portal, group)
    connection = ini.link.connection
    size = len(connection.framer.buffer)
    header = bytearray(bytes(ScsiCommand(flags=0xA1, itt=ini.next_itt(), expected_length=16 << 20, cmd_sn=ini.cmd_sn,
                                         cdb=write16(0, 8).ljust(16, b"\0")).encode()))  # fmt: skip
    header[5:8] = b"\xff\xff\xff"  # a data segment of 16 MiB - 1
    connection.receive(bytes(header) + bytes(4096))
    assert connection.closing and "MaxRecvDataSegmentLength" in connection.close_reason
    assert len(connection.framer.buffer) == size


def test_login_pdus_are_held_to_the_default_8192_bytes(portal, group):
    ini = initiator_for(portal)
    ini.exchange(login_pdu(ini, b"InitiatorName=" + b"i" * 9000 + b"\0", continue_=False))
    assert ini.link.closed and "MaxRecvDataSegmentLength" in ini.link.connection.close_reason


def test_login_text_continued_past_the_bound_is_refused(portal, group):
    ini = initiator_for(portal)
    replies = []
    for _ in range(MAX_LOGIN_TEXT // 8000 + 2):
        replies = ini.exchange(login_pdu(ini, b"X" * 8000, continue_=True))
        if ini.link.closed:
            break
    (response,) = replies
    assert isinstance(response, LoginResponse) and (response.status_class, response.status_detail) == (3, 2)
    assert ini.link.closed


def initiator_for(portal):
    return Initiator(MemoryLink(Connection(portal, "127.0.0.1", portal.new_tsih())), name=INITIATOR)


def login_pdu(ini, data: bytes, continue_: bool) -> LoginRequest:
    return LoginRequest(flags=0x40 if continue_ else 0x00, isid=ini.isid, itt=ini.next_itt(), cmd_sn=ini.cmd_sn,
                        data=data)  # fmt: skip


def test_a_first_login_pdu_continued_is_read_once_its_text_is_whole(portal, group):
    ini = initiator_for(portal)
    (partial,) = ini.exchange(login_pdu(ini, b"InitiatorName=" + INITIATOR.encode()[:10], continue_=True))
    assert partial.status_class == 0 and not bytes(partial.data)
    rest = INITIATOR.encode()[10:] + b"\0SessionType=Normal\0TargetName=" + group.volume("open").iqn.encode()
    final = LoginRequest(flags=0x81, isid=ini.isid, itt=ini.next_itt(), cmd_sn=ini.cmd_sn,
                         data=rest + b"\0AuthMethod=None\0")  # fmt: skip
    (response,) = ini.exchange(final)
    assert (response.status_class, response.flags & 0x80) == (0, 0x80)
    assert b"AuthMethod=None" in bytes(response.data)


def test_persistent_reserve_out_with_less_data_than_its_parameter_list_length(group, portal):
    ini = logged_in(portal, group)
    cdb = struct.pack(">BBB2xIB", 0x5F, 0, 0, 24, 0)  # REGISTER, 24 bytes announced
    (response,) = responses(ini.command(cdb, write=bytes(12)))  # EDTL 12: 12 bytes arrive
    sense = bytes(response.data)[2:]
    assert response.status == 0x02 and (sense[2] & 0x0F, sense[12]) == (0x05, 0x1A)  # PARAMETER LIST LENGTH ERROR
    assert response.flags & 0x04 and response.residual == 12
