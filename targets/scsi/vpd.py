"""Standard INQUIRY data and the vital product data pages (SPC-5 6.7, 7.7; SBC-4 6.6).

``VPD_PAGES`` is the table of pages; the Supported VPD Pages page is made from
it, so a page is listed exactly when it can be read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .spec import Request

if TYPE_CHECKING:
    from .logical_unit import LogicalUnit

__all__ = [
    "VPD_PAGES",
    "standard_inquiry",
    "vpd_page",
    "SPC_VERSION",
    "MAX_TRANSFER_LENGTH",
    "MAX_COMPARE_AND_WRITE_LENGTH",
    "MAX_WRITE_SAME_LENGTH",
    "MAX_UNMAP_LBA_COUNT",
    "MAX_UNMAP_DESCRIPTORS",
    "UNMAP_GRANULARITY",
]

#: VERSION field: 06h, SPC-4. SPC-5's 07h is what the command set is written to,
#: but initiators in the field (libiscsi's conformance test among them) accept
#: only 04h..06h; the version descriptors below name SPC-5 for those that look.
SPC_VERSION = 0x06
#: Version descriptors (SPC-5 table 150): SAM-5, SPC-5, SBC-4, SBC-3. SBC-3 is
#: claimed too because SBC-4 keeps every SBC-3 command we implement and
#: initiators such as libiscsi look for it before using the 16-byte commands.
VERSION_DESCRIPTORS = (0x00A0, 0x05C0, 0x0600, 0x04C0)

#: Block limits (VPD page B0h). A page is 15 MiB = 30720 blocks: the array's allocation unit.
UNMAP_GRANULARITY = 30720
#: Blocks per READ/WRITE: 32 MiB. Large enough for the biggest transfer libiscsi's
#: test-tool sends (65536 blocks in test_writesame16_unmap) and ESXi's 32 MiB I/O;
#: it also bounds the Data-Out a transport has to buffer for one command.
MAX_TRANSFER_LENGTH = 65536
#: Writes are applied in 4 KiB copy-on-write chunks; smaller writes copy a chunk.
OPTIMAL_TRANSFER_GRANULARITY = 8
#: COMPARE AND WRITE of one block: what VMware ATS sends, as most arrays report.
MAX_COMPARE_AND_WRITE_LENGTH = 1
#: 32 pages (480 MiB) per UNMAP and per WRITE SAME, so one command stays short.
MAX_UNMAP_LBA_COUNT = 32 * UNMAP_GRANULARITY
MAX_WRITE_SAME_LENGTH = 32 * UNMAP_GRANULARITY
MAX_UNMAP_DESCRIPTORS = 256

PROTOCOL_ISCSI = 0x5


def _text(value: str, size: int) -> bytes:
    return value.encode("ascii", "replace")[:size].ljust(size, b" ")


def standard_inquiry(lu: LogicalUnit | None) -> bytes:
    """Standard INQUIRY data (SPC-5 6.7.2), 96 bytes with ADDITIONAL LENGTH 91.

    With no logical unit at the LUN: PERIPHERAL QUALIFIER 011b, type 1Fh.
    """
    data = bytearray(96)
    data[0] = 0x00 if lu is not None else 0x7F
    data[2] = SPC_VERSION
    data[3] = 0x10 | 0x02  # HISUP, RESPONSE DATA FORMAT 2
    data[4] = len(data) - 5
    data[7] = 0x02  # CMDQUE: full task management model
    if lu is not None:
        data[8:16] = _text(lu.vendor, 8)
        data[16:32] = _text(lu.product, 16)
        data[32:36] = _text(lu.revision, 4)
    else:
        data[8:36] = b" " * 28
    for index, descriptor in enumerate(VERSION_DESCRIPTORS):
        data[58 + 2 * index : 60 + 2 * index] = descriptor.to_bytes(2, "big")
    return bytes(data)


# ----------------------------------------------------------------------- pages


def _supported(req: Request) -> bytes:
    return bytes(sorted(VPD_PAGES))


def _unit_serial(req: Request) -> bytes:
    return req.unit.serial.encode("ascii", "replace")


def _designator(code_set: int, association: int, kind: int, value: bytes, protocol: int | None = None) -> bytes:
    """One designation descriptor (SPC-5 7.7.6.1): PIV is set when a protocol is named."""
    first = (protocol << 4 if protocol is not None else 0) | code_set
    second = (0x80 if protocol is not None else 0) | association << 4 | kind
    return bytes([first, second, 0, len(value)]) + value


def _name_string(name: str) -> bytes:
    """A SCSI name string: UTF-8, null-terminated, padded to a multiple of 4 (SPC-5 7.7.6.11)."""
    raw = name.encode("utf-8") + b"\x00"
    return raw + bytes(-len(raw) % 4)


def _protocol(name: str) -> int | None:
    return PROTOCOL_ISCSI if name.startswith(("iqn.", "eui.", "naa.")) else None


def _device_identification(req: Request) -> bytes:
    """Device Identification (SPC-5 7.7.6): the LU's NAA name, the target's and port's names.

    Designators: NAA (LU), SCSI name string (target device), SCSI name string
    (target port, the port the command came in on), relative target port,
    target port group.
    """
    lu = req.unit
    protocol = _protocol(lu.target_name)
    return b"".join(
        (
            _designator(1, 0, 3, lu.naa),
            _designator(3, 2, 8, _name_string(lu.target_name), protocol),
            _designator(3, 1, 8, _name_string(req.nexus.target_port), protocol),
            _designator(1, 1, 4, lu.relative_port.to_bytes(4, "big"), protocol),
            _designator(1, 1, 5, lu.port_group.to_bytes(4, "big"), protocol),
        )
    )


def _extended_inquiry(req: Request) -> bytes:
    """Extended INQUIRY Data (SPC-5 7.7.7): no protection information; all task
    attributes accepted (commands run one at a time, in order); V_SUP: there is
    a volatile write cache that SYNCHRONIZE CACHE makes durable."""
    page = bytearray(60)
    page[1] = 0x04 | 0x02 | 0x01  # HEADSUP, ORDSUP, SIMPSUP
    page[2] = 0x01  # V_SUP
    return bytes(page)


def _block_limits(req: Request) -> bytes:
    """Block Limits (SBC-4 6.6.4). The unmap fields are zero when UNMAP is not offered."""
    lu = req.unit
    page = bytearray(60)
    page[0] = 0x01  # WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 is refused
    page[1] = MAX_COMPARE_AND_WRITE_LENGTH
    page[2:4] = OPTIMAL_TRANSFER_GRANULARITY.to_bytes(2, "big")
    page[4:8] = MAX_TRANSFER_LENGTH.to_bytes(4, "big")
    if lu.thin:
        page[16:20] = MAX_UNMAP_LBA_COUNT.to_bytes(4, "big")
        page[20:24] = MAX_UNMAP_DESCRIPTORS.to_bytes(4, "big")
        page[24:28] = UNMAP_GRANULARITY.to_bytes(4, "big")
        page[28:32] = (0x80000000).to_bytes(4, "big")  # UGAVALID, alignment 0: pages start at LBA 0
    page[32:40] = MAX_WRITE_SAME_LENGTH.to_bytes(8, "big")
    return bytes(page)


def _block_device_characteristics(req: Request) -> bytes:
    """Block Device Characteristics (SBC-4 6.6.2): MEDIUM ROTATION RATE 0001h, non-rotating.

    Nothing seeks: a volume is pages on member files behind a network. Hosts
    take 0001h as "not rotational" and skip seek-ordering I/O schedulers, and
    Windows retrims such volumes instead of defragmenting them.
    """
    page = bytearray(60)
    page[0:2] = (0x0001).to_bytes(2, "big")
    return bytes(page)


def _logical_block_provisioning(req: Request) -> bytes:
    """Logical Block Provisioning (SBC-4 6.6.5).

    A thin volume: LBPU, LBPWS, LBPWS10, LBPRZ=001b (unmapped blocks read
    zeros), PROVISIONING TYPE 010b (thin). A thick volume holds its whole size
    in reserve and offers no provisioning management (LBPME=0), so it is fully
    provisioned: PROVISIONING TYPE 000b and no UNMAP.
    """
    if req.unit.thin:
        return bytes([0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0])
    return bytes(4)


VPD_PAGES: dict[int, Callable[[Request], bytes]] = {
    0x00: _supported,
    0x80: _unit_serial,
    0x83: _device_identification,
    0x86: _extended_inquiry,
    0xB0: _block_limits,
    0xB1: _block_device_characteristics,
    0xB2: _logical_block_provisioning,
}


def vpd_page(req: Request, code: int) -> bytes | None:
    """The page with its 4-byte header, or None if there is no such page."""
    builder = VPD_PAGES.get(code)
    if builder is None:
        return None
    body = builder(req)
    return bytes([0x00, code]) + len(body).to_bytes(2, "big") + body
