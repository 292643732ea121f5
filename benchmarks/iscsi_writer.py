#!/usr/bin/env python3
"""A small iSCSI initiator over a plain TCP socket, for writers that must know when each write
was acknowledged: the collection-snapshot consistency test and ``collection_snapshot.py``.

    python benchmarks/iscsi_writer.py --port P --target IQN [--host H] [--depth N] [--size BYTES]
        [--blocks N] [--seconds S] --out FILE

run as a program, it logs in and keeps ``--depth`` WRITE(10)s of ``--size`` bytes at random
offsets of the first ``--blocks`` blocks in flight for ``--seconds`` (or until SIGTERM), and writes the monotonic time
(``time.monotonic``, comparable between processes) of every completion to ``--out`` as float64.

It is written from RFC 7143 alone (nothing of ``targets/`` is used): login (AuthMethod None; a
login redirect, status 0101h, is followed), SCSI Command with immediate data, R2T and Data-Out for
the rest, SCSI Response, Data-In, NOP-In pings answered, Logout. Digests are off.
"""

from __future__ import annotations

import argparse
import array
import os
import random
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterable

__all__ = ["Initiator", "IscsiError"]

BHS = 48
NO_TAG = 0xFFFFFFFF
# Opcodes (RFC 7143 section 11.1.1); the initiator's with the I bit where they are immediate.
NOP_OUT, SCSI_COMMAND, LOGIN, DATA_OUT, LOGOUT = 0x00, 0x01, 0x03, 0x05, 0x06
NOP_IN, SCSI_RESPONSE, LOGIN_RESPONSE, DATA_IN, LOGOUT_RESPONSE, R2T, ASYNC, REJECT = (
    0x20, 0x21, 0x23, 0x25, 0x26, 0x31, 0x32, 0x3F,
)  # fmt: skip
IMMEDIATE = 0x40
GOOD = 0
#: What this initiator offers (RFC 7143 section 13); the target's answers decide.
OPERATIONAL = {
    "HeaderDigest": "None", "DataDigest": "None", "MaxRecvDataSegmentLength": "262144",
    "InitialR2T": "No", "ImmediateData": "Yes", "FirstBurstLength": "262144", "MaxBurstLength": "1048576",
    "MaxOutstandingR2T": "1", "DataPDUInOrder": "Yes", "DataSequenceInOrder": "Yes", "ErrorRecoveryLevel": "0",
    "MaxConnections": "1", "DefaultTime2Wait": "0", "DefaultTime2Retain": "0",
}  # fmt: skip


class IscsiError(Exception):
    """The target refused something, or the connection broke."""


def _keys(pairs: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{key}={value}".encode() + b"\0" for key, value in pairs)


def _parse_keys(data: bytes) -> dict[str, str]:
    return dict(item.split("=", 1) for item in data.decode(errors="replace").split("\0") if "=" in item)


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _after(a: int, b: int) -> bool:
    """Serial number arithmetic (RFC 1982): ``a`` is later than ``b``."""
    return a != b and (a - b) & 0xFFFFFFFF < 0x80000000


class Initiator:
    """One session, one connection, LUN 0; used from one thread."""

    def __init__(
        self, host: str, port: int, target: str, name: str = "iqn.2026-12.org.array-sim:writer",
        timeout: float = 30.0,
    ) -> None:  # fmt: skip
        self.target, self.name, self.timeout = target, name, timeout
        self.isid = bytes([0x80]) + os.urandom(5)  # random format (RFC 7143 section 10.12.5)
        self.cmd_sn, self.exp_stat_sn, self.max_cmd_sn, self.itt = 1, 0, 1, 0
        self.immediate_most, self.send_most = 0, 8192
        #: Write data by task tag, until its status comes (R2Ts ask for parts of it).
        self._data: dict[int, bytes] = {}
        #: Data-In received so far, by task tag.
        self._reading: dict[int, bytes] = {}
        self._buffer = bytearray()
        self._sock = self._connect(host, port)
        self._login(host, port)

    # ------------------------------------------------------------------ wire

    def _connect(self, host: str, port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _send(self, header: bytes, data: bytes = b"") -> None:
        assert len(header) == BHS
        header = header[:5] + len(data).to_bytes(3, "big") + header[8:]
        self._sock.sendall(header + _pad(data))

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise IscsiError("the target closed the connection")
            self._buffer += chunk
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def _receive(self) -> tuple[bytes, bytes]:
        """The next PDU: its header and its data segment."""
        header = self._read(BHS)
        ahs, length = header[4] * 4, int.from_bytes(header[5:8], "big")
        body = self._read(ahs + length + (-length % 4))
        return header, body[ahs : ahs + length]

    def _numbers(self, header: bytes, status: bool = True) -> None:
        """ExpCmdSN/MaxCmdSN, and StatSN when the PDU carries a status (RFC 7143 section 4.2.2.2)."""
        stat_sn, _exp_cmd_sn, max_cmd_sn = struct.unpack(">III", header[24:36])
        if status:
            self.exp_stat_sn = (stat_sn + 1) & 0xFFFFFFFF
        if _after(max_cmd_sn, self.max_cmd_sn) or max_cmd_sn == self.max_cmd_sn:
            self.max_cmd_sn = max_cmd_sn

    def _next_itt(self) -> int:
        self.itt = (self.itt + 1) & 0x7FFFFFFF
        return self.itt

    # ----------------------------------------------------------------- login

    def _login_pdu(self, csg: int, nsg: int, keys: bytes, tsih: int) -> None:
        flags = 0x80 | (csg << 2) | nsg
        header = struct.pack(
            ">BBBBB3s6sHIHHIIQQ", LOGIN | IMMEDIATE, flags, 0, 0, 0, b"", self.isid, tsih, self._next_itt(), 0, 0,
            self.cmd_sn, self.exp_stat_sn, 0, 0,
        )  # fmt: skip
        self._send(header, keys)

    def _login(self, host: str, port: int) -> None:
        for _ in range(4):  # redirects
            self._login_pdu(0, 1, _keys([("InitiatorName", self.name), ("SessionType", "Normal"),
                                         ("TargetName", self.target), ("AuthMethod", "None")]), 0)  # fmt: skip
            header, data = self._receive()
            status = header[36], header[37]
            if status[0] == 1:
                address = _parse_keys(data)["TargetAddress"].split(",")[0]
                host, _, port_text = address.rpartition(":")
                self._sock.close()
                self._sock, self._buffer = self._connect(host.strip("[]"), int(port_text)), bytearray()
                continue
            if status != (0, 0):
                raise IscsiError(f"login refused: status {status[0]:02x}{status[1]:02x}")
            break
        else:
            raise IscsiError("too many login redirects")
        self._numbers(header)
        tsih = int.from_bytes(header[14:16], "big")
        self._login_pdu(1, 3, _keys(OPERATIONAL.items()), tsih)
        header, data = self._receive()
        if (header[36], header[37]) != (0, 0) or not header[1] & 0x80 or header[1] & 3 != 3:
            raise IscsiError(f"operational negotiation failed: {header[36]:02x}{header[37]:02x} {data!r}")
        self._numbers(header)
        agreed = {**OPERATIONAL, **_parse_keys(data)}
        self.send_most = int(_parse_keys(data).get("MaxRecvDataSegmentLength", "8192"))
        if agreed["ImmediateData"] == "Yes":
            self.immediate_most = min(self.send_most, int(agreed["FirstBurstLength"]))

    # -------------------------------------------------------------- commands

    def _command(self, cdb: bytes, write: bytes = b"", read: int = 0) -> int:
        while _after(self.cmd_sn, self.max_cmd_sn):  # the command window is shut: wait for it to open
            self._handle(*self._receive())
        itt = self._next_itt()
        immediate = write[: self.immediate_most]
        flags = 0x80 | (0x40 if read else 0) | (0x20 if write else 0) | 1  # F, R, W, SIMPLE
        header = struct.pack(
            ">BBH4sQIIII16s", SCSI_COMMAND, flags, 0, b"", 0, itt, len(write) or read, self.cmd_sn,
            self.exp_stat_sn, cdb.ljust(16, b"\0"),
        )  # fmt: skip
        self.cmd_sn = (self.cmd_sn + 1) & 0xFFFFFFFF
        if write:
            self._data[itt] = write
        self._send(header, immediate)
        return itt

    def send_write(self, lba: int, data: bytes) -> int:
        """WRITE(10) of ``data`` (whole 512-byte blocks) at ``lba``; returns its task tag."""
        return self._command(struct.pack(">BBIBHB", 0x2A, 0, lba, 0, len(data) // 512, 0), write=data)

    def send_read(self, lba: int, blocks: int) -> int:
        return self._command(struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0), read=blocks * 512)

    def completion(self) -> tuple[int, int, bytes]:
        """The next command to complete: (task tag, SCSI status, data read)."""
        while True:
            done = self._handle(*self._receive())
            if done is not None:
                return done

    def _handle(self, header: bytes, data: bytes) -> tuple[int, int, bytes] | None:
        opcode, itt = header[0] & 0x3F, int.from_bytes(header[16:20], "big")
        if opcode == SCSI_RESPONSE:
            self._numbers(header)
            self._data.pop(itt, None)
            return itt, header[3], self._reading.pop(itt, b"")
        if opcode == DATA_IN:
            status = bool(header[1] & 0x01)
            self._numbers(header, status)
            self._reading[itt] = self._reading.get(itt, b"") + data
            return (itt, header[3], self._reading.pop(itt)) if status else None
        if opcode == R2T:
            self._numbers(header, False)
            ttt, offset, length = struct.unpack(">I", header[20:24])[0], *struct.unpack(">II", header[40:48])
            self._data_out(itt, ttt, self._data[itt][offset : offset + length], offset)
            return None
        if opcode == NOP_IN:
            self._numbers(header, itt != NO_TAG)
            ttt = int.from_bytes(header[20:24], "big")
            if ttt != NO_TAG:  # a ping from the target: answer it (RFC 7143 section 11.18)
                self._send(struct.pack(">BBH4s8sIIII16s", NOP_OUT | IMMEDIATE, 0x80, 0, b"", header[8:16], NO_TAG,
                                       ttt, self.cmd_sn, self.exp_stat_sn, b""))  # fmt: skip
            return None
        if opcode == ASYNC:
            self._numbers(header, False)
            return None
        if opcode == REJECT:
            raise IscsiError(f"the target rejected a PDU: reason {header[2]:02x}")
        raise IscsiError(f"unexpected PDU, opcode {opcode:02x}")

    def _data_out(self, itt: int, ttt: int, data: bytes, offset: int) -> None:
        for n, start in enumerate(range(0, len(data), self.send_most)):
            piece = data[start : start + self.send_most]
            final = 0x80 if start + self.send_most >= len(data) else 0
            self._send(struct.pack(">BBH4sQIIIIIII4s", DATA_OUT, final, 0, b"", 0, itt, ttt, 0, self.exp_stat_sn,
                                   0, n, offset + start, b""), piece)  # fmt: skip

    def write(self, lba: int, data: bytes) -> None:
        """A write, acknowledged when this returns."""
        itt = self.send_write(lba, data)
        got, status, _ = self.completion()
        if got != itt or status != GOOD:
            raise IscsiError(f"write at {lba}: task {got} status {status:02x}")

    def read(self, lba: int, blocks: int) -> bytes:
        itt = self.send_read(lba, blocks)
        got, status, data = self.completion()
        if got != itt or status != GOOD:
            raise IscsiError(f"read at {lba}: task {got} status {status:02x}")
        return data

    def logout(self) -> None:
        try:
            self._send(struct.pack(">BBH4sQIIII16s", LOGOUT | IMMEDIATE, 0x80, 0, b"", 0, self._next_itt(), 0,
                                   self.cmd_sn, self.exp_stat_sn, b""))  # fmt: skip
            while self._receive()[0][0] & 0x3F != LOGOUT_RESPONSE:
                pass
        except (OSError, IscsiError):
            pass
        finally:
            self._sock.close()


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--blocks", type=int, default=1 << 16, help="the writes land in the first N blocks")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    initiator = Initiator(args.host, args.port, args.target)
    payload, sectors = os.urandom(args.size), args.size // 512
    rng, times = random.Random(os.getpid()), array.array("d")
    end = [time.monotonic() + args.seconds]
    signal.signal(signal.SIGTERM, lambda *_: end.__setitem__(0, 0.0))  # stop sending, let the rest complete
    in_flight = 0
    while True:
        while in_flight < args.depth and time.monotonic() < end[0]:
            initiator.send_write(rng.randrange(args.blocks // sectors) * sectors, payload)
            in_flight += 1
        if not in_flight:
            break
        _, status, _ = initiator.completion()
        times.append(time.monotonic())
        in_flight -= 1
        if status != GOOD:
            print(f"a write ended with status {status:02x}", file=sys.stderr)
            return 1
    initiator.logout()
    with open(args.out, "wb") as out:
        times.tofile(out)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
