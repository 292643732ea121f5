"""Real engine volumes behind LogicalUnits, and a small test initiator that speaks CDBs."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from array_sim.group import Group
from array_sim.units import MiB
from targets.scsi import Command, LogicalUnit, Nexus, Result, Status

#: 30 MiB = two 15 MiB pages = 61440 blocks.
VOLUME_SIZE = 30 * MiB
BLOCKS = VOLUME_SIZE // 512

HOST_A = Nexus("iqn.1993-08.org.debian:01:aaaa,i,0x23d000000001", "iqn.2001-05.com.equallogic:test,t,0x0001")
HOST_B = Nexus("iqn.1991-05.com.microsoft:bbbb,i,0x400001370000", "iqn.2001-05.com.equallogic:test,t,0x0001")


@dataclass(frozen=True)
class Sense:
    key: int
    asc: int
    ascq: int
    information: int | None
    field: tuple[int, int | None, bool] | None  # (byte, bit, in_cdb)
    descriptor: bool


def parse_sense(sense: bytes) -> Sense:
    """Fixed (70h) or descriptor (72h) sense data, as an initiator would read it."""
    if sense[0] & 0x7F == 0x72:
        info = field = None
        at = 8
        while at < 8 + sense[7]:
            kind, length = sense[at], sense[at + 1]
            if kind == 0x00:
                info = int.from_bytes(sense[at + 4 : at + 12], "big")
            if kind == 0x02:
                field = _field(sense[at + 4 : at + 7])
            at += 2 + length
        return Sense(sense[1] & 0x0F, sense[2], sense[3], info, field, True)
    info = int.from_bytes(sense[3:7], "big") if sense[0] & 0x80 else None
    field = _field(sense[15:18]) if sense[15] & 0x80 else None
    return Sense(sense[2] & 0x0F, sense[12], sense[13], info, field, False)


def _field(sks: bytes) -> tuple[int, int | None, bool]:
    bit = sks[0] & 0x07 if sks[0] & 0x08 else None
    return int.from_bytes(sks[1:3], "big"), bit, bool(sks[0] & 0x40)


class Initiator:
    """Sends CDBs to one logical unit through one I_T nexus; first clears the power-on UA."""

    def __init__(self, lu: LogicalUnit, nexus: Nexus = HOST_A, lun: int = 0) -> None:
        self.lu, self.nexus, self.lun = lu, nexus, lun

    def send(self, cdb: bytes | list[int], data: bytes = b"") -> Result:
        result = self.lu.execute(Command(bytes(cdb), data, nexus=self.nexus, lun=self.lun))
        assert isinstance(result, Result)
        return result

    def ok(self, cdb: bytes | list[int], data: bytes = b"") -> bytes:
        result = self.send(cdb, data)
        assert result.status == Status.GOOD, (result, parse_sense(result.sense) if result.sense else None)
        return result.data_in

    def check(self, cdb: bytes | list[int], data: bytes = b"") -> Sense:
        result = self.send(cdb, data)
        assert result.status == Status.CHECK_CONDITION, result
        return parse_sense(result.sense)

    def request_sense(self, descriptor: bool = False) -> Sense:
        return parse_sense(self.ok([0x03, int(descriptor), 0, 0, 252, 0]))

    def clear_ua(self) -> Initiator:
        while self.send([0, 0, 0, 0, 0, 0]).status == Status.CHECK_CONDITION:
            pass
        return self

    # CDB builders, named after the commands (libiscsi's scsi_cdb_* in spirit).
    def read10(self, lba: int, blocks: int, flags: int = 0) -> Result:
        return self.send(struct.pack(">BBIBHB", 0x28, flags, lba, 0, blocks, 0))

    def write10(self, lba: int, data: bytes, flags: int = 0, blocks: int | None = None) -> Result:
        count = len(data) // 512 if blocks is None else blocks
        return self.send(struct.pack(">BBIBHB", 0x2A, flags, lba, 0, count, 0), data)

    def read16(self, lba: int, blocks: int, flags: int = 0) -> Result:
        return self.send(struct.pack(">BBQIBB", 0x88, flags, lba, blocks, 0, 0))

    def write16(self, lba: int, data: bytes, flags: int = 0) -> Result:
        return self.send(struct.pack(">BBQIBB", 0x8A, flags, lba, len(data) // 512, 0, 0), data)

    def inquiry(self, evpd: int = 0, page: int = 0, alloc: int = 255) -> Result:
        return self.send(struct.pack(">BBBHB", 0x12, evpd, page, alloc, 0))

    def mode_sense6(self, page: int = 0x3F, pc: int = 0, dbd: bool = False, alloc: int = 255) -> bytes:
        return self.ok(bytes([0x1A, 0x08 if dbd else 0, pc << 6 | page, 0, alloc, 0]))

    def mode_select6(self, data: bytes, pf: bool = True, sp: bool = False) -> Result:
        return self.send(bytes([0x15, (0x10 if pf else 0) | sp, 0, 0, len(data), 0]), data)

    def pr_in(self, action: int, alloc: int = 1024) -> Result:
        return self.send(struct.pack(">BB5xHB", 0x5E, action, alloc, 0))

    def pr_out(
        self, action: int, key: int = 0, sa_key: int = 0, kind: int = 0, flags: int = 0, expect: Status = Status.GOOD
    ) -> Result:
        """PERSISTENT RESERVE OUT with the basic 24-byte parameter list; asserts the status."""
        params = struct.pack(">QQ4xBx2x", key, sa_key, flags)
        result = self.send(struct.pack(">BBB2xIB", 0x5F, action, kind, 24, 0), params)
        assert result.status == expect, (result, parse_sense(result.sense) if result.sense else None)
        return result


class Volumes:
    """Fresh volumes of the shared group, made on first use, each with a LogicalUnit.

    Names are unique per test; the volumes are deleted when the test ends.
    """

    _serial = itertools.count(1)

    def __init__(self, group: Group) -> None:
        self.group = group
        self._made: dict[str, LogicalUnit] = {}
        self._names: dict[str, str] = {}

    def name(self, kind: str) -> str:
        """The engine's name for this test's volume of ``kind`` (thick, thin, ro, ...)."""
        self.lu(kind)
        return self._names[kind]

    def lu(self, kind: str) -> LogicalUnit:
        if kind not in self._made:
            self._made[kind] = self._make(kind)
        return self._made[kind]

    def _make(self, kind: str) -> LogicalUnit:
        group, number = self.group, next(self._serial)
        if kind == "snap":
            base = self.name("thick")
            group.create_snapshot(base, f"snap{number}")
            group.set_snapshot_online(base, f"snap{number}", True)
            device = group.device(base, f"snap{number}")
        else:
            name = self._names[kind] = f"{kind}{number}"
            group.create_volume(
                name,
                VOLUME_SIZE if kind != "ro" else 15 * MiB,
                thin=kind.startswith("thin"),
                read_only=kind.startswith("ro"),
                snap_reserve=100,
            )
            device = group.device(name)
        naa = bytes.fromhex("6090a0") + number.to_bytes(13, "big")
        return LogicalUnit(device, serial=f"SN{number:06d}", naa=naa, target_name=device.iqn)

    def delete_all(self) -> None:
        for name in self._names.values():
            self.group.set_volume_online(name, False)
            self.group.delete_volume(name)


@pytest.fixture(scope="session")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    with Group.init(tmp_path_factory.mktemp("scsi") / "group", member_size=4 * 1024 * MiB) as opened:
        yield opened


@pytest.fixture
def volumes(group: Group) -> Iterator[Volumes]:
    made = Volumes(group)
    yield made
    made.delete_all()


@pytest.fixture
def thick(volumes: Volumes) -> LogicalUnit:
    return volumes.lu("thick")


@pytest.fixture
def thin(volumes: Volumes) -> LogicalUnit:
    return volumes.lu("thin")


@pytest.fixture
def a(thick: LogicalUnit) -> Initiator:
    """Host A on the thick volume, past its power-on unit attention."""
    return Initiator(thick, HOST_A).clear_ua()


@pytest.fixture
def b(thick: LogicalUnit) -> Initiator:
    return Initiator(thick, HOST_B).clear_ua()


@pytest.fixture
def t(thin: LogicalUnit) -> Initiator:
    """Host A on the thin volume."""
    return Initiator(thin, HOST_A).clear_ua()


@pytest.fixture
def connect() -> type[Initiator]:
    """``connect(lu, nexus)``: another initiator (tests cannot import this module)."""
    return Initiator


@pytest.fixture
def hosts() -> tuple[Nexus, Nexus]:
    return HOST_A, HOST_B
