"""Cutting a byte stream into iSCSI PDUs, and PDUs back into bytes (RFC 7143 section 11.2).

A PDU on the wire is: BHS (48 bytes), AHS (TotalAHSLength words), header
digest (4 bytes, if negotiated), data segment padded to 4 bytes, data digest
(4 bytes, if negotiated and the segment is not empty). Digests are CRC32C
(section 13.1), sent least significant byte first as in the RFC's examples.

``Framer`` receives into one buffer that the asyncio edge fills in place
(``get_buffer``/``buffer_updated``, as ``asyncio.BufferedProtocol`` wants);
``frames()`` parses PDUs where they lie and hands out their data segment as
a memoryview, so a payload is copied once, straight to where it belongs.
The buffer grows only for a PDU whose data segment is within
``max_data_segment``; a longer one is a ``FramingError`` as soon as its
header is in, before any of its data is awaited.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import crc32c

from .pdu import BHS_LENGTH, PDU_TYPES, Pdu

__all__ = ["Framer", "Frame", "FramingError", "DigestError", "encode_pdu", "digest"]

_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


class FramingError(Exception):
    """The stream cannot be parsed any further: the connection must be dropped."""


class DigestError(Exception):
    """A data digest did not match; the PDU header is intact (section 7.8)."""

    def __init__(self, bhs: bytes) -> None:
        super().__init__("data digest error")
        self.bhs = bhs


def digest(*parts: bytes | bytearray | memoryview) -> bytes:
    value = 0
    for part in parts:
        value = crc32c.crc32c(part, value)
    return value.to_bytes(4, "little")


@dataclass
class Frame:
    """One received PDU; ``data`` is a view into the receive buffer, valid until the next receive."""

    bhs: memoryview
    ahs: bytes
    data: memoryview

    @property
    def opcode(self) -> int:
        return self.bhs[0] & 0x3F

    def decode(self) -> Pdu:
        """The typed PDU (raises KeyError for an unknown opcode)."""
        return PDU_TYPES[self.opcode].decode(self.bhs, self.ahs, self.data)


class Framer:
    """Receive-side framing with optional digests."""

    def __init__(self, size: int = 1 << 20) -> None:
        self.buffer = bytearray(size)
        self.start = 0
        self.end = 0
        self.header_digest = False
        self.data_digest = False
        #: Our MaxRecvDataSegmentLength: a longer data segment is a protocol error.
        self.max_data_segment = 1 << 24

    def get_buffer(self, size_hint: int = -1) -> memoryview:
        """Free space to receive into (compacting, or growing for a large pending PDU)."""
        pending = self.end - self.start
        # A PDU longer than allowed is refused by frames(): no room is made for it (at most a BHS more).
        needed = max(min(self._pending_size(), self._largest()), 65536)
        if self.start and (len(self.buffer) - self.end < needed or pending == 0):
            self.buffer[:pending] = self.buffer[self.start : self.end]
            self.start, self.end = 0, pending
        if len(self.buffer) - self.end < needed:
            grown = bytearray(max(len(self.buffer) * 2, pending + needed))
            grown[:pending] = self.buffer[self.start : self.end]
            self.buffer, self.start, self.end = grown, 0, pending
        return memoryview(self.buffer)[self.end :]

    def buffer_updated(self, count: int) -> None:
        self.end += count

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes (for callers that do not receive in place)."""
        view = memoryview(data)
        while view:
            space = self.get_buffer(len(view))
            count = min(len(space), len(view))
            space[:count] = view[:count]
            self.buffer_updated(count)
            view = view[count:]

    def _pending_size(self) -> int:
        """Bytes the next PDU needs in all, or a BHS's worth if its header is not in yet."""
        if self.end - self.start < BHS_LENGTH:
            return BHS_LENGTH
        return self._total(memoryview(self.buffer)[self.start : self.start + BHS_LENGTH])

    def _largest(self) -> int:
        """The longest PDU allowed: BHS, the largest AHS, digests and the longest data segment."""
        return BHS_LENGTH + 255 * 4 + 4 + (self.max_data_segment + 3) // 4 * 4 + 4

    def _total(self, bhs: memoryview) -> int:
        ahs = bhs[4] * 4
        length = int.from_bytes(bhs[5:8], "big")
        size = BHS_LENGTH + ahs + (length + 3) // 4 * 4
        if self.header_digest:
            size += 4
        if self.data_digest and length:
            size += 4
        return size

    def frames(self) -> Iterator[Frame]:
        """Every complete PDU received so far.

        Raises:
            FramingError: header digest mismatch or an oversized data segment.
            DigestError: data digest mismatch (that PDU is consumed).
        """
        view = memoryview(self.buffer)
        while self.end - self.start >= BHS_LENGTH:
            at = self.start
            bhs = view[at : at + BHS_LENGTH]
            length = int.from_bytes(bhs[5:8], "big")
            if length > self.max_data_segment:
                raise FramingError(f"data segment of {length} bytes exceeds MaxRecvDataSegmentLength")
            total = self._total(bhs)
            if self.end - at < total:
                return
            cursor = at + BHS_LENGTH + bhs[4] * 4
            ahs = bytes(view[at + BHS_LENGTH : cursor])
            if self.header_digest:
                if view[cursor : cursor + 4] != digest(view[at:cursor]):
                    raise FramingError("header digest error")
                cursor += 4
            padded = (length + 3) // 4 * 4
            data = view[cursor : cursor + length]
            self.start = at + total
            if self.data_digest and length and (
                view[cursor + padded : cursor + padded + 4] != digest(view[cursor : cursor + padded])
            ):
                raise DigestError(bytes(bhs))
            yield Frame(bhs, ahs, data)


def encode_pdu(pdu: Pdu, header_digest: bool = False, data_digest: bool = False) -> list[bytes | memoryview]:
    """The pieces to send for one PDU (header, digests, data, padding), without joining the data."""
    header = pdu.encode()
    pieces: list[bytes | memoryview] = [header]
    if header_digest:
        pieces.append(digest(header))
    data = pdu.data
    if data:
        pad = _PAD[len(data) % 4]
        pieces.append(data if isinstance(data, bytes | memoryview) else bytes(data))
        if pad:
            pieces.append(pad)
        if data_digest:
            pieces.append(digest(data, pad))
    return pieces
