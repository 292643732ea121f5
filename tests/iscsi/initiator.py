"""A small iSCSI initiator for protocol tests the libiscsi tools cannot do (hostile and odd PDUs).

It talks to a ``Connection`` either in memory (sans-IO, ``MemoryLink``) or
over a real socket (``SocketLink``), using the target's own PDU codec only
to build and parse PDUs; everything it checks is on the wire.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field

from targets.iscsi.framing import Framer, encode_pdu
from targets.iscsi.keys import encode_text, parse_text
from targets.iscsi.pdu import (
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LogoutRequest,
    Pdu,
    ReadyToTransfer,
    ScsiCommand,
    TextRequest,
)


def run_work(connection) -> bool:  # noqa: ANN001 - targets.iscsi.connection.Connection
    """Be the engine owner in this thread: run what the connection handed out, complete it; False if none."""
    work = connection.work_to_run()
    for item in work:
        connection.completed(item, item.run())
    return bool(work)


class MemoryLink:
    """Bytes to and from a sans-IO ``Connection`` in the same process, its engine work run at once."""

    def __init__(self, connection) -> None:  # noqa: ANN001 - targets.iscsi.connection.Connection
        self.connection = connection

    def send(self, data: bytes) -> bytes:
        self.connection.receive(data)
        out = []
        while True:
            out += self.connection.data_to_send()
            if not run_work(self.connection) and not self.connection.resume():
                break
        return b"".join(bytes(p) for p in out)

    @property
    def closed(self) -> bool:
        return self.connection.closing


class SocketLink:
    """Bytes over a TCP socket to a running server."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.closed = False

    def send(self, data: bytes) -> bytes:
        if data:
            self.sock.sendall(data)
        self.sock.settimeout(0.3)
        chunks = []
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    self.closed = True
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        except ConnectionResetError:
            self.closed = True
        return b"".join(chunks)

    def reconnect(self, host: str, port: int) -> None:
        """Connect again elsewhere: where a login redirect (RFC 7143 11.13.5) sent us."""
        timeout = self.sock.gettimeout()
        self.sock.close()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.closed = False

    def close(self) -> None:
        self.sock.close()


@dataclass
class Initiator:
    link: MemoryLink | SocketLink
    name: str = "iqn.2026-11.test:initiator"
    isid: bytes = bytes.fromhex("400001370001")
    cmd_sn: int = 1
    exp_stat_sn: int = 0
    itt: int = 0
    header_digest: bool = False
    data_digest: bool = False
    framer: Framer = field(default_factory=Framer)

    def exchange(self, *pdus: Pdu, raw: bytes = b"") -> list[Pdu]:
        """Send PDUs (and raw bytes), return every PDU that came back."""
        data = raw + b"".join(
            bytes(p) for pdu in pdus for p in encode_pdu(pdu, self.header_digest, self.data_digest)
        )
        self.framer.feed(self.link.send(data))
        replies = [frame.decode() for frame in self.framer.frames()]
        for reply in replies:
            # Only responses that consume a StatSN move ExpStatSN on (RFC 7143 section 4.2.2.2).
            if isinstance(reply, DataIn) and not reply.flags & 0x01:
                continue
            if isinstance(reply, ReadyToTransfer | AsyncMessage) or getattr(reply, "itt", 0) == 0xFFFFFFFF:
                continue
            if hasattr(reply, "stat_sn"):
                self.exp_stat_sn = (reply.stat_sn + 1) & 0xFFFFFFFF
        return replies

    def next_itt(self) -> int:
        self.itt += 1
        return self.itt

    def login(
        self, target: str | None, chap: tuple[str, str] | None = None, extra: list[tuple[str, str]] | None = None,
        discovery: bool = False,
    ) -> list[Pdu]:  # fmt: skip
        """A complete login; returns the last response (status checked by the caller)."""
        keys = [("InitiatorName", self.name), ("SessionType", "Discovery" if discovery else "Normal")]
        if target:
            keys.append(("TargetName", target))
        keys.append(("AuthMethod", "CHAP,None" if chap else "None"))
        replies = self.exchange(self._login_pdu(0, 1, keys, transit=chap is None))
        response = replies[-1]
        if response.status_class == 1 and isinstance(self.link, SocketLink):
            # Redirected (the group IP sends a normal session to a member port): log in there, as
            # libiscsi and open-iscsi do. A MemoryLink has nowhere to go: its caller sees the redirect.
            host, _, port = dict(parse_text(response.data))["TargetAddress"].split(",")[0].rpartition(":")
            self.link.reconnect(host, int(port))
            self.exp_stat_sn = 0
            replies = self.exchange(self._login_pdu(0, 1, keys, transit=chap is None))
            response = replies[-1]
        if response.status_class or not chap:
            return self._operational(replies, extra)
        replies = self.exchange(self._login_pdu(0, 1, [("CHAP_A", "5")], transit=False))
        offer = dict(parse_text(replies[-1].data))
        if replies[-1].status_class:
            return replies
        identifier, challenge = int(offer["CHAP_I"]), bytes.fromhex(offer["CHAP_C"][2:])
        answer = hashlib.md5(bytes([identifier]) + chap[1].encode() + challenge).hexdigest()
        replies = self.exchange(self._login_pdu(0, 1, [("CHAP_N", chap[0]), ("CHAP_R", "0x" + answer)], True))
        return self._operational(replies, extra)

    def _operational(self, replies: list[Pdu], extra: list[tuple[str, str]] | None) -> list[Pdu]:
        response = replies[-1]
        if response.status_class or self.link.closed:
            return replies
        keys = extra or []
        replies = self.exchange(self._login_pdu(1, 3, keys, transit=True))
        if replies and not replies[-1].status_class:
            values = dict(parse_text(replies[-1].data))
            self.header_digest = values.get("HeaderDigest") == "CRC32C"
            self.data_digest = values.get("DataDigest") == "CRC32C"
            self.framer.header_digest, self.framer.data_digest = self.header_digest, self.data_digest
        return replies

    def _login_pdu(self, current: int, wanted: int, keys: list[tuple[str, str]], transit: bool) -> LoginRequest:
        flags = (0x80 if transit else 0) | (current << 2) | (wanted if transit else 0)
        return LoginRequest(
            flags=flags, immediate=True, isid=self.isid, itt=self.next_itt(), cmd_sn=self.cmd_sn,
            exp_stat_sn=self.exp_stat_sn, data=encode_text(keys),
        )  # fmt: skip

    def command(self, cdb: bytes, read: int = 0, write: bytes = b"", length: int | None = None) -> list[Pdu]:
        """A SCSI command; ``write`` goes as immediate data, ``length`` overrides the EDTL."""
        flags = 0x80 | (0x40 if read else 0) | (0x20 if write or length else 0) | 1
        pdu = ScsiCommand(
            flags=flags, itt=self.next_itt(), expected_length=length or read or len(write), cmd_sn=self.cmd_sn,
            exp_stat_sn=self.exp_stat_sn, cdb=cdb.ljust(16, b"\0"), data=write,
        )  # fmt: skip
        self.cmd_sn += 1
        return self.exchange(pdu)

    def data_out(self, itt: int, ttt: int, offset: int, data: bytes, final: bool = True) -> list[Pdu]:
        return self.exchange(
            DataOut(flags=0x80 if final else 0, itt=itt, ttt=ttt, exp_stat_sn=self.exp_stat_sn,
                    buffer_offset=offset, data=data)  # fmt: skip
        )

    def text(self, keys: list[tuple[str, str]]) -> list[Pdu]:
        pdu = TextRequest(itt=self.next_itt(), cmd_sn=self.cmd_sn, exp_stat_sn=self.exp_stat_sn, data=encode_text(keys))
        self.cmd_sn += 1
        return self.exchange(pdu)

    def logout(self) -> list[Pdu]:
        pdu = LogoutRequest(flags=0x80, itt=self.next_itt(), cmd_sn=self.cmd_sn, exp_stat_sn=self.exp_stat_sn)
        self.cmd_sn += 1
        return self.exchange(pdu)
