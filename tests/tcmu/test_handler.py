"""The TCMU handler over a real engine volume: SCSI through the fake kernel's ring and back."""

from __future__ import annotations

import itertools
import os
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from array_sim.group import Group
from array_sim.units import MiB
from targets.scsi import LogicalUnit, Result, Status
from targets.tcmu import LIO_NEXUS, CorruptEntry, Ring, TcmuHandler
from targets.tcmu.handler import INTERNAL_FAILURE

from .fake_kernel import CHECK_CONDITION, Completion, FakeKernel

BLOCKS = 30 * MiB // 512
TUR = bytes(6)
_names = itertools.count(1)


def read10(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def write10(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def sense_code(completion: Completion) -> tuple[int, int, int]:
    """(sense key, ASC, ASCQ) of fixed-format sense data."""
    sense = completion.sense
    assert sense[0] & 0x7F == 0x70
    return sense[2] & 0x0F, sense[12], sense[13]


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    with Group.init(Path(tmp_path_factory.mktemp("tcmu")) / "group", member_size=150 * MiB,
                    raid_policy="file") as opened:  # fmt: skip
        yield opened


def make_lu(group: Group) -> LogicalUnit:
    number = next(_names)
    group.create_volume(f"tcmu{number}", 30 * MiB, snap_reserve=100)
    device = group.device(f"tcmu{number}")
    naa = bytes.fromhex("6090a0") + number.to_bytes(13, "big")
    return LogicalUnit(device, serial=f"TCMU{number:04d}", naa=naa, target_name=device.iqn)


class Device:
    """A fake kernel, its ring and a handler over one logical unit."""

    def __init__(self, lu: LogicalUnit, **kernel: int) -> None:
        self.lu = lu
        self.kernel = FakeKernel(**kernel)
        self.ring = Ring(self.kernel.mapping)
        self.handler = TcmuHandler(self.ring, lu)

    def run(self, cdb: bytes, data_out: bytes = b"", data_in: int = 0) -> Completion:
        tag = self.kernel.queue(cdb, data_out=data_out, data_in=data_in)
        assert self.handler.process() == 1
        [done] = self.notify()
        assert done.tag == tag
        return done

    def notify(self) -> list[Completion]:
        if not self.ring.notify_due:
            return []
        self.ring.notified()
        return self.kernel.notify()

    def close(self) -> None:
        self.ring.release()
        self.kernel.close()


@pytest.fixture
def device(group: Group) -> Iterator[Device]:
    made = Device(make_lu(group))
    yield made
    made.close()
    group.set_volume_online(made.lu.device.name, False)
    group.delete_volume(made.lu.device.name)


def test_inquiry_is_the_handler_s_and_a_short_answer_sets_read_len(device: Device) -> None:
    done = device.run(bytes([0x12, 0, 0, 0, 255, 0]), data_in=255)
    assert done.status == Status.GOOD
    assert done.data_in[8:16] == b"EQLOGIC " and 36 <= len(done.data_in) < 255
    serial = device.run(bytes([0x12, 1, 0x80, 0, 255, 0]), data_in=255)
    assert serial.data_in[4:] == device.lu.serial.encode()


def test_write_then_read_back_through_fragmented_data_blocks(device: Device) -> None:
    kernel, handler = device.kernel, device.handler
    # Three one-block writes; finishing only the middle one leaves a hole in the data area.
    small = [kernel.queue(write10(n, 8), data_out=os.urandom(4096)) for n in (0, 8, 16)]
    pairs = handler.commands()
    handler.finish(pairs[1][0], handler.execute(pairs[1][1]))
    assert [c.tag for c in device.notify()] == [small[1]]
    payload = os.urandom(64 * 512)
    tag = kernel.queue(write10(1000, 64), data_out=payload)
    [(big, command)] = handler.commands()
    assert len(big.iovecs) == 2, "the hole, then the blocks after the others"
    handler.finish(big, handler.execute(command))
    for ring_command, command in pairs[::2]:
        handler.finish(ring_command, handler.execute(command))
    assert sorted(c.tag for c in device.notify()) == sorted([tag, small[0], small[2]])
    assert all(c.status == Status.GOOD for c in kernel.completions)
    assert device.run(read10(1000, 64), data_in=len(payload)).data_in == payload
    assert device.lu.device.read(1000, 64) == payload


def test_read_capacity_and_test_unit_ready(device: Device) -> None:
    capacity = device.run(bytes([0x25]) + bytes(9), data_in=8)
    assert struct.unpack(">II", capacity.data_in) == (BLOCKS - 1, 512)
    assert device.run(TUR).status == Status.GOOD


def test_a_read_past_the_end_is_lba_out_of_range(device: Device) -> None:
    done = device.run(read10(BLOCKS - 1, 2), data_in=1024)
    assert done.status == CHECK_CONDITION and sense_code(done) == (0x5, 0x21, 0x00)
    assert done.data_in == b""


def test_an_unsupported_bidi_command_is_refused_and_returns_nothing(device: Device) -> None:
    done = device.run(bytes([0x53]) + bytes(9), data_out=bytes(512), data_in=512)  # XDWRITEREAD(10)
    assert done.status == CHECK_CONDITION and sense_code(done) == (0x5, 0x20, 0x00)


def test_a_command_that_raises_is_hardware_error_and_the_next_one_runs(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute = device.lu.execute

    def flaky(command):  # type: ignore[no-untyped-def]
        if command.cdb[0] == 0x28:
            raise RuntimeError("engine bug")
        return execute(command)

    monkeypatch.setattr(device.lu, "execute", flaky)
    first = device.kernel.queue(read10(0, 1), data_in=512)
    second = device.kernel.queue(TUR)
    assert device.handler.process() == 2
    done = {c.tag: c for c in device.notify()}
    assert done[first].status == CHECK_CONDITION and sense_code(done[first]) == (0x4, 0x44, 0x00)
    assert done[second].status == Status.GOOD


def test_a_command_that_cannot_be_prepared_completes_at_once(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare = device.handler.prepare

    def broken(ring_command):  # type: ignore[no-untyped-def]
        if ring_command.cdb[0] == 0x2A:
            raise MemoryError("no buffer")
        return prepare(ring_command)

    monkeypatch.setattr(device.handler, "prepare", broken)
    failing = device.kernel.queue(write10(0, 1), data_out=bytes(512))
    device.kernel.queue(TUR)
    [(ring_command, command)] = device.handler.commands()
    assert command.cdb == TUR
    device.handler.finish(ring_command, RuntimeError("raised on the engine thread"))
    done = {c.tag: c for c in device.notify()}
    assert all(sense_code(c) == (0x4, 0x44, 0x00) for c in done.values()) and failing in done


def test_a_read_of_nothing_returns_zeros_not_an_earlier_command_s_data(device: Device) -> None:
    device.run(write10(0, 8), data_out=b"\xa5" * 4096)
    assert device.run(read10(0, 8), data_in=4096).data_in == b"\xa5" * 4096
    # TRANSFER LENGTH 0 with 512 bytes expected: the kernel will pass 512 bytes whatever read_len says.
    done = device.run(read10(0, 0), data_in=512)
    assert (done.status, done.data_in) == (Status.GOOD, bytes(512))


def test_every_command_runs_under_the_fixed_nexus_and_a_unit_attention_is_told_once(device: Device) -> None:
    assert device.run(TUR).status == Status.GOOD
    device.lu.capacity_changed()
    done = device.run(TUR)
    assert done.status == CHECK_CONDITION and sense_code(done) == (0x6, 0x2A, 0x09)
    assert device.run(TUR).status == Status.GOOD
    assert device.lu.unit_attention.nexuses == {LIO_NEXUS}


def test_a_corrupt_ring_stops_the_handler(device: Device) -> None:
    device.kernel.queue(TUR)
    device.kernel.poke(device.kernel.last_entry + 24, "<Q", 0)  # cdb_off
    with pytest.raises(CorruptEntry):
        device.handler.process()


def test_internal_failure_is_hardware_error_internal_target_failure() -> None:
    assert isinstance(INTERNAL_FAILURE, Result) and INTERNAL_FAILURE.status == Status.CHECK_CONDITION
    assert (INTERNAL_FAILURE.sense[2], INTERNAL_FAILURE.sense[12], INTERNAL_FAILURE.sense[13]) == (0x4, 0x44, 0)


# ---------------------------------------------------------------- random streams against a model


@pytest.fixture(scope="module")
def shared(group: Group) -> Iterator[Device]:
    made = Device(make_lu(group), cmdr_size=4096, data_size=256 << 10)
    yield made
    made.close()


REGION = 256  # blocks the random streams touch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(st.booleans(), st.integers(0, REGION - 16), st.integers(1, 16)), min_size=1, max_size=40
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_reads_and_writes_completed_in_random_order(shared: Device, ops: list, seed: int) -> None:
    """Commands run in the order taken (as the engine owner runs them); completions go back in any order."""
    rng = random.Random(seed)
    kernel, handler = shared.kernel, shared.handler
    model = bytearray(shared.lu.device.read(0, REGION))
    expected: dict[int, bytes] = {}
    tags: list[int] = []
    held: list[tuple] = []  # (ring command, result) executed, not finished yet
    before = len(kernel.completions)
    pending = list(ops)
    while pending or held:
        batch = pending[: rng.randint(1, 8)]
        pending = pending[len(batch) :]
        for writing, lba, count in batch:
            if writing:
                tags.append(kernel.queue(write10(lba, count), data_out=rng.randbytes(count * 512)))
            else:
                tags.append(kernel.queue(read10(lba, count), data_in=count * 512))
        for ring_command, command in handler.commands():
            tag = kernel.inflight[ring_command.cmd_id].tag
            lba, count = struct.unpack_from(">IxH", ring_command.cdb, 2)
            if ring_command.cdb[0] == 0x2A:
                model[lba * 512 : (lba + count) * 512] = command.data_out
                expected[tag] = b""
            else:
                expected[tag] = bytes(model[lba * 512 : (lba + count) * 512])
            held.append((ring_command, handler.execute(command)))
        rng.shuffle(held)
        keep = rng.randint(0, len(held)) if pending else 0
        for ring_command, result in held[keep:]:
            handler.finish(ring_command, result)
            if rng.random() < 0.3:
                shared.notify()
        held = held[:keep]
        shared.notify()
    done = kernel.completions[before:]
    assert kernel.broken is None and shared.ring.in_flight == 0
    assert sorted(c.tag for c in done) == sorted(tags), "exactly one completion per command"
    assert all(c.status == Status.GOOD for c in done)
    assert {c.tag: c.data_in for c in done} == expected
    assert shared.lu.device.read(0, REGION) == bytes(model)
