"""A stand-in for target_core_user: the mapping, the ring producer and the completion reaper.

It lays an anonymous mmap out as ``tcmu_configure_device`` does (128-byte
mailbox with cmdr_off=128, the command ring, then the data area in blocks),
queues CMD entries as ``queue_cmd_ring`` does, and reaps completions as
``tcmu_handle_completions`` / ``tcmu_handle_completion`` do (Linux 6.1
``drivers/target/target_core_user.c``; research/lio.md 3.2). Rules:

1. Entry layout is the kernel's: base size max(48 + 16 * iovecs, 112), the
   CDB (``scsi_command_size`` bytes) right after the base, ``cdb_off`` from
   the start of the mapping, the length rounded up to 8. An entry that does
   not fit before the end of the ring gets a PAD in front of it; entries are
   never split. The ring keeps one byte free (``spc_free``).
2. Data blocks are the lowest free ones (``find_first_zero_bit``) and
   adjacent blocks share one iovec (``new_block_to_iov``); a BIDI command's
   Data-In iovecs start a new iovec after its Data-Out ones.
3. cmd_id is the lowest free id in 1..65535 (``xa_alloc``), so ids are
   reused as soon as their command completes.
4. Reaping walks from ``last_cleaned`` to ``mailbox.cmd_tail``: PAD and TMR
   are skipped, any other entry is looked up by its cmd_id; an unknown id
   marks the ring broken and nothing more is reaped (as in the kernel).
   ``read_len`` counts only with READ_LEN set, on a Data-In command, and
   when not 0.
5. Nothing checks what user space did beyond what the kernel checks; the
   tests do that on ``completions``. Hostile entries are written with
   ``poke`` and ``inject``; those never touch bytes outside the ring.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from itertools import count

from targets.tcmu import abi
from targets.tcmu.abi import MailboxFlag, Op, UFlag

CHECK_CONDITION = 0x02


class RingFull(Exception):
    """No room in the ring or the data area now (the kernel would park the command on its qfull queue)."""


class TooBig(Exception):
    """The kernel refuses the command outright (INVALID FIELD IN CDB in ``queue_cmd_ring``)."""


@dataclass
class Queued:
    tag: int
    cmd_id: int
    cdb: bytes
    data_out: bytes
    data_in: int
    blocks: list[int] = field(default_factory=list)
    bidi_blocks: list[int] = field(default_factory=list)

    @property
    def bidi(self) -> bool:
        return bool(self.data_out) and self.data_in > 0


@dataclass(frozen=True)
class Completion:
    """What the initiator would get: status, the Data-In actually transferred, 96 bytes of sense."""

    tag: int
    cmd_id: int
    status: int
    data_in: bytes
    sense: bytes


def scsi_command_size(cdb: bytes) -> int:
    return abi.cdb_length(cdb if len(cdb) >= 8 else cdb.ljust(8, b"\0"))


class FakeKernel:
    """One TCMU device's kernel side over an anonymous mapping."""

    def __init__(
        self,
        cmdr_size: int = 16 << 10,
        data_size: int = 1 << 20,
        block_size: int = 4096,
        version: int = abi.MAILBOX_VERSION,
        flags: int = MailboxFlag.OOOC | MailboxFlag.READ_LEN | MailboxFlag.TMR | MailboxFlag.KEEP_BUF,
    ) -> None:
        assert cmdr_size % abi.OP_ALIGN == 0 and data_size % block_size == 0
        self.cmdr_size, self.block_size = cmdr_size, block_size
        self.data_off = abi.CMDR_OFF + cmdr_size
        self.mapping = mmap.mmap(-1, self.data_off + data_size)
        self.view = memoryview(self.mapping)
        struct.pack_into(abi.MAILBOX_VERSION_FIELD[1], self.view, abi.MAILBOX_VERSION_FIELD[0], version)
        struct.pack_into(abi.MAILBOX_FLAGS[1], self.view, abi.MAILBOX_FLAGS[0], flags)
        struct.pack_into(abi.MAILBOX_GEOMETRY[1], self.view, abi.MAILBOX_GEOMETRY[0], abi.CMDR_OFF, cmdr_size)
        self.free_blocks = [True] * (data_size // block_size)
        self.head = 0
        self.last_cleaned = 0
        self.inflight: dict[int, Queued] = {}
        self.completions: list[Completion] = []
        self.broken: str | None = None
        #: Ring offset of the entry queued last, and how many PADs were inserted.
        self.last_entry = 0
        self.pads = 0
        self._tags = count(1)

    def close(self) -> None:
        self.view.release()
        self.mapping.close()

    # ------------------------------------------------------------ producing

    def queue(self, cdb: bytes, data_out: bytes = b"", data_in: int = 0) -> int:
        """Queue one command (rules 1-3); returns its tag (unique, unlike cmd_id)."""
        cdb = bytes(cdb)
        blocks_out = -(-len(data_out) // self.block_size)
        blocks_in = -(-data_in // self.block_size)
        if (blocks_out + blocks_in) > len(self.free_blocks):
            raise TooBig("larger than the data area")
        if blocks_out + blocks_in > sum(self.free_blocks):
            raise RingFull("data area")
        # Count iovecs as tcmu_get_empty_blocks would, on the blocks it would pick.
        free = [n for n, is_free in enumerate(self.free_blocks) if is_free][: blocks_out + blocks_in]
        out_blocks, in_blocks = free[:blocks_out], free[blocks_out:]
        out_iovs = self._iovecs(out_blocks, len(data_out))
        in_iovs = self._iovecs(in_blocks, data_in)
        base = abi.base_command_size(len(out_iovs) + len(in_iovs))
        cdb_len = scsi_command_size(cdb)
        size = base + -(-cdb_len // abi.OP_ALIGN) * abi.OP_ALIGN
        if size > self.cmdr_size // 2:
            raise TooBig("entry larger than half the ring")
        self._make_room(size)
        cmd_id = next(n for n in range(1, 0x10000) if n not in self.inflight)
        for n in free:
            self.free_blocks[n] = False
        for (offset, length), chunk in zip(out_iovs, _chunks(data_out, [n for _, n in out_iovs]), strict=True):
            self.view[offset : offset + length] = chunk
        at = self._pad_for(size)
        entry = abi.CMDR_OFF + at
        self.view[entry : entry + size] = bytes(size)
        iovs = out_iovs + in_iovs
        iov_cnt, bidi_cnt = (len(out_iovs), len(in_iovs)) if data_out and data_in else (len(iovs), 0)
        struct.pack_into(abi.HDR[1], self.view, entry, size | Op.CMD, cmd_id, 0, 0)
        struct.pack_into(abi.REQ_COUNTS[1], self.view, entry + abi.REQ_COUNTS[0], iov_cnt, bidi_cnt, 0)
        for n, iov in enumerate(iovs):
            struct.pack_into(abi.IOV[1], self.view, entry + abi.REQ_IOV_OFFSET + abi.IOV_SIZE * n, *iov)
        cdb_off = entry + base
        self.view[cdb_off : cdb_off + cdb_len] = cdb[:cdb_len].ljust(cdb_len, b"\0")
        struct.pack_into(abi.REQ_CDB_OFF[1], self.view, entry + abi.REQ_CDB_OFF[0], cdb_off)
        tag = next(self._tags)
        bidi = bool(data_out) and data_in > 0
        blocks, bidi_blocks = (out_blocks, in_blocks) if bidi else (free, [])
        self.inflight[cmd_id] = Queued(tag, cmd_id, cdb, bytes(data_out), data_in, blocks, bidi_blocks)
        self.last_entry = at
        self._advance(size)
        return tag

    def queue_tmr(self, tmr_type: int, cmd_ids: list[int]) -> None:
        """A TMR notification entry (``queue_tmr_ring``): 32 + 2n bytes, rounded up to 8."""
        size = -(-(abi.TMR_SIZE + 2 * len(cmd_ids)) // abi.OP_ALIGN) * abi.OP_ALIGN
        self._make_room(size)
        at = self._pad_for(size)
        entry = abi.CMDR_OFF + at
        self.view[entry : entry + size] = bytes(size)
        struct.pack_into(abi.HDR[1], self.view, entry, size | Op.TMR, 0, 0, 0)
        struct.pack_into(abi.TMR_HEAD[1], self.view, entry + abi.TMR_HEAD[0], tmr_type, len(cmd_ids))
        struct.pack_into(f"<{len(cmd_ids)}H", self.view, entry + abi.TMR_CMD_IDS, *cmd_ids)
        self._advance(size)

    def queue_unknown_op(self, op: int, size: int = 128) -> int:
        """An entry with an opcode the consumer does not know, for a command the kernel tracks."""
        self._make_room(size)
        cmd_id = next(n for n in range(1, 0x10000) if n not in self.inflight)
        at = self._pad_for(size)
        entry = abi.CMDR_OFF + at
        self.view[entry : entry + size] = bytes(size)
        struct.pack_into(abi.HDR[1], self.view, entry, size | op, cmd_id, 0, 0)
        tag = next(self._tags)
        self.inflight[cmd_id] = Queued(tag, cmd_id, b"", b"", 0)
        self.last_entry = at
        self._advance(size)
        return tag

    # ------------------------------------------------------------ hostile writes

    def poke(self, ring_offset: int, fmt: str, *values: int) -> None:
        """Overwrite bytes of the ring (``ring_offset`` from the ring's start)."""
        assert 0 <= ring_offset and ring_offset + struct.calcsize(fmt) <= self.cmdr_size
        struct.pack_into(fmt, self.view, abi.CMDR_OFF + ring_offset, *values)

    def inject(self, len_op: int, body: bytes = b"", advance: int | None = None) -> None:
        """Write a raw entry header (and body, clipped to the ring) at cmd_head, then move cmd_head."""
        entry = abi.CMDR_OFF + self.head
        raw = (struct.pack(abi.HDR[1], len_op, 0, 0, 0) + body)[: self.cmdr_size - self.head]
        self.view[entry : entry + len(raw)] = raw
        self.set_head((self.head + (len_op & ~abi.OP_MASK if advance is None else advance)) % self.cmdr_size)

    def set_head(self, value: int) -> None:
        self.head = value
        struct.pack_into(abi.MAILBOX_CMD_HEAD[1], self.view, abi.MAILBOX_CMD_HEAD[0], value)

    # ------------------------------------------------------------ reaping

    @property
    def cmd_tail(self) -> int:
        return struct.unpack_from(abi.MAILBOX_CMD_TAIL[1], self.view, abi.MAILBOX_CMD_TAIL[0])[0]

    def notify(self) -> list[Completion]:
        """What a write to the uio fd does (``tcmu_irqcontrol``): reap; returns the new completions (rule 4)."""
        done: list[Completion] = []
        if self.broken:
            return done
        tail = self.cmd_tail
        while self.last_cleaned != tail:
            entry = abi.CMDR_OFF + self.last_cleaned
            len_op, cmd_id, _, uflags = struct.unpack_from(abi.HDR[1], self.view, entry)
            length = len_op & ~abi.OP_MASK
            if len_op & abi.OP_MASK not in (Op.PAD, Op.TMR):
                queued = self.inflight.pop(cmd_id, None)
                if queued is None:
                    self.broken = f"cmd_id {cmd_id} not found, ring is broken"
                    break
                done.append(self._completion(queued, entry, uflags))
            self.last_cleaned = (self.last_cleaned + length) % self.cmdr_size
        self.completions.extend(done)
        return done

    def _completion(self, queued: Queued, entry: int, uflags: int) -> Completion:
        for n in queued.blocks + queued.bidi_blocks:
            self.free_blocks[n] = True
        if uflags & UFlag.UNKNOWN_OP:
            return Completion(queued.tag, queued.cmd_id, CHECK_CONDITION, b"", bytes(abi.SENSE_SIZE))
        (status,) = struct.unpack_from(abi.RSP_STATUS[1], self.view, entry + abi.RSP_STATUS[0])
        (read_len,) = struct.unpack_from(abi.RSP_READ_LEN[1], self.view, entry + abi.RSP_READ_LEN[0])
        sense = bytes(self.view[entry + abi.RSP_SENSE : entry + abi.RSP_SENSE + abi.SENSE_SIZE])
        reading = queued.data_in > 0 and not queued.data_out  # DMA_FROM_DEVICE
        data_length = len(queued.data_out) or queued.data_in  # se_cmd->data_length
        valid = reading and bool(uflags & UFlag.READ_LEN) and read_len != 0
        length = min(read_len, data_length) if valid else data_length
        if status == CHECK_CONDITION and not valid:
            return Completion(queued.tag, queued.cmd_id, status, b"", sense)
        data = b""
        if queued.bidi:
            # gather_data_area(bidi=True, read_len): read_len is the Data-Out length here.
            data = self._read_blocks(queued.bidi_blocks, min(length, queued.data_in))
        elif reading:
            data = self._read_blocks(queued.blocks, length)
        return Completion(queued.tag, queued.cmd_id, status, data, sense if status == CHECK_CONDITION else b"")

    # ------------------------------------------------------------ internals

    def _iovecs(self, blocks: list[int], length: int) -> list[tuple[int, int]]:
        iovs: list[list[int]] = []
        previous = -2
        for n in blocks:
            size = min(length, self.block_size)
            if n != previous + 1:
                iovs.append([self.data_off + n * self.block_size, 0])
            iovs[-1][1] += size
            length -= size
            previous = n
        return [(base, size) for base, size in iovs]

    def _read_blocks(self, blocks: list[int], length: int) -> bytes:
        parts = []
        for n in blocks:
            size = min(length, self.block_size)
            start = self.data_off + n * self.block_size
            parts.append(bytes(self.view[start : start + size]))
            length -= size
        return b"".join(parts)

    def _make_room(self, size: int) -> None:
        """``is_ring_space_avail``: room for the entry, plus a PAD when the ring's end is too short."""
        to_end = self.cmdr_size - self.head
        needed = size if to_end >= size else size + to_end
        used = (self.head - self.last_cleaned) % self.cmdr_size
        if self.cmdr_size - used - 1 < needed:
            raise RingFull("command ring")

    def _pad_for(self, size: int) -> int:
        """``ring_insert_padding``: a PAD to the end of the ring when the entry would not fit."""
        to_end = self.cmdr_size - self.head
        if to_end < size:
            entry = abi.CMDR_OFF + self.head
            struct.pack_into(abi.HDR[1], self.view, entry, to_end | Op.PAD, 0, 0, 0)
            self.pads += 1
            self._advance(to_end)
            assert self.head == 0
        return self.head

    def _advance(self, size: int) -> None:
        self.set_head((self.head + size) % self.cmdr_size)


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    return out
