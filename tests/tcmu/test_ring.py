"""The ring consumer against a fake target_core_user: layout, wrap, out-of-order completion, hostile entries."""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targets.tcmu import abi
from targets.tcmu.abi import MailboxFlag, Op, UFlag
from targets.tcmu.ring import CorruptEntry, MailboxError, Ring, RingCommand, RingError

from .fake_kernel import CHECK_CONDITION, FakeKernel, RingFull

READ10 = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0])
WRITE10 = bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0])
TUR = bytes(6)


@pytest.fixture
def kernel() -> Iterator[FakeKernel]:
    fake = FakeKernel()
    yield fake
    fake.close()


@pytest.fixture
def ring(kernel: FakeKernel) -> Iterator[Ring]:
    opened = Ring(kernel.mapping)
    yield opened
    opened.release()


def finish(ring: Ring, kernel: FakeKernel) -> list:
    """The I/O shell's part: notify when due, and the kernel reaps."""
    assert ring.notify_due
    ring.notified()
    return kernel.notify()


# ---------------------------------------------------------------- the ABI table


def test_abi_offsets_are_those_of_the_6_1_header() -> None:
    """lio.md 3.2, checked there with gcc offsetof; a change here is a change of ABI."""
    assert (abi.MAILBOX_SIZE, abi.CMDR_OFF, abi.MAILBOX_VERSION) == (128, 128, 2)
    assert [abi.MAILBOX_VERSION_FIELD[0], abi.MAILBOX_FLAGS[0], abi.MAILBOX_GEOMETRY[0]] == [0, 2, 4]
    assert (abi.MAILBOX_CMD_HEAD[0], abi.MAILBOX_CMD_TAIL[0]) == (12, 64)
    assert struct.calcsize(abi.HDR[1]) == abi.HDR_SIZE == 8
    assert (abi.HDR_CMD_ID[0], abi.HDR_UFLAGS[0]) == (4, 7)
    assert (abi.REQ_COUNTS[0], abi.REQ_CDB_OFF[0], abi.REQ_IOV_OFFSET, abi.IOV_SIZE) == (8, 24, 48, 16)
    assert (abi.RSP_STATUS[0], abi.RSP_READ_LEN[0], abi.RSP_SENSE, abi.SENSE_SIZE) == (8, 12, 16, 96)
    assert abi.ENTRY_SIZE == 112 and abi.TMR_CMD_IDS == 32 and abi.TMR_HEAD[0] == 8
    assert (Op.PAD, Op.CMD, Op.TMR) == (0, 1, 2)
    assert (UFlag.UNKNOWN_OP, UFlag.READ_LEN, UFlag.KEEP_BUF) == (1, 2, 4)
    assert int(MailboxFlag.OOOC | MailboxFlag.READ_LEN | MailboxFlag.TMR | MailboxFlag.KEEP_BUF) == 0xF
    assert [abi.base_command_size(n) for n in (0, 1, 4, 5, 10)] == [112, 112, 112, 128, 208]
    assert [abi.cdb_length(bytes([op]) + bytes(7)) for op in (0x00, 0x28, 0x5E, 0x88, 0xA0, 0xC0)] == [
        6, 10, 10, 16, 12, 10,
    ]  # fmt: skip
    assert abi.cdb_length(bytes([0x7F, 0, 0, 0, 0, 0, 0, 24])) == 32


# ---------------------------------------------------------------- the mailbox


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 1}, "version 1"),
        ({"flags": MailboxFlag.READ_LEN}, "out-of-order"),
    ],
)
def test_a_mailbox_we_do_not_understand_is_refused(change: dict, message: str) -> None:
    fake = FakeKernel(**change)
    with pytest.raises(MailboxError, match=message):
        Ring(fake.mapping)
    fake.close()


def test_a_ring_outside_the_mapping_is_refused(kernel: FakeKernel) -> None:
    struct.pack_into(abi.MAILBOX_GEOMETRY[1], kernel.view, abi.MAILBOX_GEOMETRY[0], 128, len(kernel.mapping))
    with pytest.raises(MailboxError, match="passes"):
        Ring(kernel.mapping)
    with pytest.raises(MailboxError, match="writable"):
        Ring(bytes(kernel.view))
    with pytest.raises(MailboxError, match="cannot hold"):
        Ring(bytearray(64))


def test_release_lets_the_mapping_close() -> None:
    fake = FakeKernel()
    ring = Ring(fake.mapping)
    ring.release()
    fake.close()
    with pytest.raises(RingError):
        ring.take()


# ---------------------------------------------------------------- one command at a time


def test_write_data_out_is_gathered_from_every_iovec(kernel: FakeKernel, ring: Ring) -> None:
    payload = os.urandom(3 * 4096 + 100)
    tag = kernel.queue(WRITE10, data_out=payload)
    [command] = ring.take()
    assert command.cdb == WRITE10 and not command.bidi
    assert command.data_out() == payload and command.data_out(5000) == payload[:5000]
    assert command.data_out_length == len(payload)
    command.complete(0)
    [done] = finish(ring, kernel)
    assert (done.tag, done.status, done.data_in) == (tag, 0, b"")
    assert ring.in_flight == 0 and ring.take() == []


def test_read_data_in_is_scattered_and_short_reads_set_read_len(kernel: FakeKernel, ring: Ring) -> None:
    full = kernel.queue(READ10, data_in=9000)
    short = kernel.queue(bytes([0x12, 0, 0, 0, 255, 0]), data_in=255)
    entry = abi.CMDR_OFF + kernel.last_entry
    long = kernel.queue(READ10, data_in=100)
    first, second, third = ring.take()
    data = os.urandom(9000)
    first.complete(0, data)
    second.complete(0, b"x" * 36)  # in order: into its own entry
    third.complete(0, b"y" * 500)
    results = {c.tag: c for c in finish(ring, kernel)}
    assert results[full].data_in == data
    assert results[short].data_in == b"x" * 36
    assert results[long].data_in == b"y" * 100
    assert kernel.view[entry + abi.HDR_UFLAGS[0]] == UFlag.READ_LEN
    assert struct.unpack_from("<I", kernel.view, entry + abi.RSP_READ_LEN[0])[0] == 36


def test_sense_is_written_whole_and_bounded(kernel: FakeKernel, ring: Ring) -> None:
    tag = kernel.queue(TUR)
    [command] = ring.take()
    sense = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="96"):
        command.complete(CHECK_CONDITION, sense=bytes(97))
    with pytest.raises(ValueError, match="status"):
        command.complete(256)
    command.complete(CHECK_CONDITION, sense=sense)
    [done] = finish(ring, kernel)
    assert (done.tag, done.status, done.sense) == (tag, CHECK_CONDITION, sense + bytes(96 - len(sense)))


def test_a_command_completes_once_and_only_on_its_own_ring(kernel: FakeKernel, ring: Ring) -> None:
    kernel.queue(READ10, data_in=512)
    [command] = ring.take()
    stranger = RingCommand(command.cmd_id, command.cdb, command.iovecs)
    with pytest.raises(ValueError, match="not in flight"):
        ring.complete(stranger, 0)
    command.complete(0, bytes(512))
    with pytest.raises(ValueError, match="not in flight"):
        command.complete(0)
    with pytest.raises(ValueError, match="not in flight"):
        command.data_out()


# ---------------------------------------------------------------- the ring as a ring


def test_wrap_around_with_pad() -> None:
    """A 1000-byte ring of 120-byte INQUIRY entries: the ring's end is too short now and then, so PADs go in."""
    fake = FakeKernel(cmdr_size=1000)
    ring = Ring(fake.mapping)
    inquiry = bytes([0x12, 0, 0, 2, 0, 0])
    for n in range(40):
        tags = [fake.queue(inquiry, data_in=512) for _ in range(3)]
        commands = ring.take()
        assert len(commands) == 3
        for command, fill in zip(commands, (n, n + 1, n + 2), strict=True):
            command.complete(0, bytes([fill % 256]) * 512)
        done = {c.tag: c.data_in for c in finish(ring, fake)}
        assert done == {tag: bytes([fill % 256]) * 512 for tag, fill in zip(tags, (n, n + 1, n + 2), strict=True)}
    assert fake.pads >= 10 and fake.inflight == {} and fake.broken is None
    ring.release()
    fake.close()


def test_many_in_flight_completed_out_of_order(kernel: FakeKernel, ring: Ring) -> None:
    tags = [kernel.queue(READ10, data_in=600 + n) for n in range(60)]
    commands = ring.take()
    assert ring.in_flight == 60 and [c.cmd_id for c in commands] == list(range(1, 61))
    order = list(range(60))
    random.Random(7).shuffle(order)
    for step, n in enumerate(order):
        commands[n].complete(0, bytes([n]) * (600 + n))
        if step % 7 == 0:
            finish(ring, kernel)
    finish(ring, kernel)
    assert sorted(c.tag for c in kernel.completions) == tags
    assert {c.tag: c.data_in for c in kernel.completions} == {t: bytes([n]) * (600 + n) for n, t in enumerate(tags)}
    assert kernel.broken is None and kernel.last_cleaned == kernel.cmd_tail == kernel.head


def test_bidi_data_out_first_then_data_in(kernel: FakeKernel, ring: Ring) -> None:
    out = os.urandom(5000)
    tag = kernel.queue(bytes([0x53]) + bytes(9), data_out=out, data_in=6000)
    [command] = ring.take()
    assert command.bidi and command.data_out() == out
    assert command.data_in_length == 6000 and len(command.iovecs) == 1 and len(command.bidi_iovecs) == 1
    reply = os.urandom(6000)
    command.complete(0, reply)
    [done] = finish(ring, kernel)
    # gather_data_area(bidi) copies se_cmd->data_length (the Data-Out length) bytes at most.
    assert done.tag == tag and done.data_in == reply[:5000]


def test_unknown_op_is_flagged_and_reported_by_the_kernel(kernel: FakeKernel, ring: Ring) -> None:
    before = kernel.queue(READ10, data_in=512)
    odd = kernel.queue_unknown_op(5)
    odd_entry = kernel.last_entry
    after = kernel.queue(TUR)
    first, second = ring.take()
    assert kernel.view[abi.CMDR_OFF + odd_entry + abi.HDR_UFLAGS[0]] & UFlag.UNKNOWN_OP
    second.complete(0)  # into the first entry; cmd_tail then passes the flagged one too
    assert [c.tag for c in finish(ring, kernel)] == [after, odd]
    first.complete(0, bytes(512))
    assert [c.tag for c in finish(ring, kernel)] == [before]
    assert {c.tag: c.status for c in kernel.completions} == {after: 0, before: 0, odd: CHECK_CONDITION}


def test_a_lone_unknown_op_and_tmr_are_passed_at_once(kernel: FakeKernel, ring: Ring) -> None:
    odd = kernel.queue_unknown_op(3)
    kernel.queue_tmr(abi.TmrType.ABORT_TASK, [7, 9])
    assert ring.take() == []
    assert [c.tag for c in finish(ring, kernel)] == [odd]
    assert kernel.cmd_tail == kernel.head


# ---------------------------------------------------------------- hostile entries


def _poke_cmd(offset: int, fmt: str, *values: int) -> Callable[[FakeKernel], None]:
    """Queue a READ(10) of two blocks (a 128-byte entry, one iovec, CDB at +112), then overwrite one field."""

    def tamper(kernel: FakeKernel) -> None:
        kernel.queue(READ10, data_in=8192)
        kernel.poke(kernel.last_entry + offset, fmt, *values)

    return tamper


def _relative_cdb_off(within: int) -> Callable[[FakeKernel], None]:
    def tamper(kernel: FakeKernel) -> None:
        kernel.queue(READ10, data_in=8192)
        kernel.poke(kernel.last_entry + 24, "<Q", abi.CMDR_OFF + kernel.last_entry + within)

    return tamper


def _huge_iovecs(kernel: FakeKernel) -> None:
    kernel.queue(READ10, data_in=8192)
    at = kernel.last_entry
    kernel.poke(at + 8, "<I", 4)
    for n in range(4):  # 48 + 4 * 16 = 112: the CDB stays where it is; each iovec is the whole data area
        kernel.poke(at + 48 + 16 * n, "<QQ", kernel.data_off, len(kernel.mapping) - kernel.data_off)


HOSTILE: dict[str, Callable[[FakeKernel], None]] = {
    "cmd_head past the ring": lambda k: k.set_head(k.cmdr_size + 8),
    "cmd_head not aligned": lambda k: k.set_head(12),
    "zero length": lambda k: k.inject(Op.PAD, advance=8),
    "length past cmd_head": lambda k: k.inject(4096 | Op.PAD, advance=64),
    # cmd_head just behind the entry, so only the end of the ring bounds it.
    "length past the ring's end": lambda k: k.inject((k.cmdr_size - k.head + 8) | Op.PAD, advance=k.cmdr_size - 8),
    "short CMD entry": _poke_cmd(0, "<I", 64 | Op.CMD),
    "iov_cnt beyond the entry": _poke_cmd(8, "<I", 0xFFFFFFFF),
    "bidi count beyond the entry": _poke_cmd(12, "<I", 5),
    "iovec in the ring": _poke_cmd(48, "<Q", abi.CMDR_OFF + 64),
    "iovec before the mapping": _poke_cmd(48, "<Q", 0),
    "iovec past the mapping": _poke_cmd(56, "<Q", 1 << 62),
    "cdb_off 0": _poke_cmd(24, "<Q", 0),
    "cdb_off huge": _poke_cmd(24, "<Q", (1 << 64) - 1),
    "cdb_off over the iovecs": _relative_cdb_off(40),
    "CDB past the entry's end": _relative_cdb_off(124),
    "iovecs larger than the data area": _huge_iovecs,
    "variable-length CDB past the entry": _poke_cmd(112, "<8B", 0x7F, 0, 0, 0, 0, 0, 0, 200),
}


@pytest.mark.parametrize("how", sorted(HOSTILE))
def test_a_hostile_entry_is_fatal_for_the_device(kernel: FakeKernel, ring: Ring, how: str) -> None:
    kernel.queue(TUR)
    [good] = ring.take()
    HOSTILE[how](kernel)
    with pytest.raises(CorruptEntry) as caught:
        ring.take()
    with pytest.raises(CorruptEntry) as again:
        ring.take()
    assert again.value is caught.value
    with pytest.raises(CorruptEntry):
        good.complete(0)


def test_hostile_bytes_anywhere_never_escape_as_another_exception() -> None:
    """Random garbage over a queued entry: either a clean take or CorruptEntry, never IndexError & co."""
    rng = random.Random(3)
    for _ in range(300):
        fake = FakeKernel(cmdr_size=2048, data_size=64 << 10)
        ring = Ring(fake.mapping)
        fake.queue(WRITE10, data_out=os.urandom(rng.randrange(1, 9000)))
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(0, fake.last_entry + 200) // 8 * 8
            fake.poke(at, "<Q", rng.getrandbits(64) if rng.random() < 0.5 else rng.randrange(0, 1 << 20))
        try:
            for command in ring.take():
                command.data_out()
                command.complete(0, b"")
        except CorruptEntry:
            pass
        ring.release()
        fake.close()


# ---------------------------------------------------------------- random streams


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    kinds = st.sampled_from(["read", "write", "none", "bidi"])
    steps = st.one_of(
        st.tuples(st.just("queue"), kinds, st.integers(1, 20000)),
        st.tuples(st.just("take"), st.just(""), st.just(0)),
        st.tuples(st.just("complete"), st.just(""), st.integers(0, 1 << 30)),
        st.tuples(st.just("notify"), st.just(""), st.just(0)),
    )
    return draw(st.lists(steps, min_size=1, max_size=80))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), cmdr_size=st.sampled_from([512, 1024, 4096]))
def test_random_streams_complete_every_command_exactly_once_with_its_data(stream: list, cmdr_size: int) -> None:
    fake = FakeKernel(cmdr_size=cmdr_size, data_size=128 << 10)
    ring = Ring(fake.mapping)
    expected_out: dict[int, bytes] = {}
    expected_in: dict[int, bytes] = {}
    queued: list[int] = []
    taken: list[RingCommand] = []
    rng = random.Random(len(stream))

    def complete(command: RingCommand, choice: int) -> None:
        # The kernel keeps the command (by its cmd_id) until it reaps the completion.
        item = fake.inflight[command.cmd_id]
        if item.data_out:  # a read's iovecs hold whatever the data area held
            assert command.data_out() == expected_out[item.tag]
        capacity = command.data_in_length
        if item.bidi:  # the kernel copies min(Data-Out length, Data-In buffer) bytes back
            reply = rng.randbytes(capacity)
            expected_in[item.tag] = reply[: len(item.data_out)]
        elif item.data_in:  # a short read of at least one byte (the kernel ignores read_len 0)
            reply = rng.randbytes(1 + choice % capacity)
            expected_in[item.tag] = reply
        else:
            reply = rng.randbytes(choice % 100)  # lands in a write's own buffer; the kernel returns none
            expected_in[item.tag] = b""
        command.complete(0, reply)

    for action, kind, number in stream + [("take", "", 0), ("drain", "", 0)]:
        if action == "queue":
            out = rng.randbytes(number) if kind in ("write", "bidi") else b""
            data_in = number if kind in ("read", "bidi") else 0
            cdb = (READ10 if kind == "read" else WRITE10) if kind != "none" else TUR
            try:
                tag = fake.queue(cdb, data_out=out, data_in=data_in)
            except RingFull:
                continue
            queued.append(tag)
            expected_out[tag] = out
        elif action == "take":
            taken.extend(ring.take())
        elif action == "complete" and taken:
            complete(taken.pop(number % len(taken)), number)
        elif action == "notify" and ring.notify_due:
            ring.notified()
            fake.notify()
        elif action == "drain":
            rng.shuffle(taken)
            for command in taken:
                complete(command, rng.randrange(1 << 30))
            fake.notify()
    assert fake.broken is None
    tags = [c.tag for c in fake.completions]
    assert sorted(tags) == queued, "exactly one completion per command"
    assert {c.tag: c.data_in for c in fake.completions} == expected_in
    assert all(c.status == 0 for c in fake.completions)
    ring.release()
    fake.close()
