"""Sizes as a PS Series group counts them.

A PS Series array allocates space in 15 MiB pages and reports sizes in binary
units spelled MB/GB/TB (1GB = 1024 MiB). A volume's SCSI capacity is its
requested size rounded up to whole pages: a "1GB" volume is 69 pages,
1,085,276,160 bytes, shown as ``VolReserve: 1.01GB`` (research/ps-cli.md 2.4).
"""

from __future__ import annotations

import math
import re

__all__ = [
    "MiB",
    "GiB",
    "TiB",
    "PAGE_SIZE",
    "SECTOR_SIZE",
    "CHUNK_SIZE",
    "CHUNKS_PER_PAGE",
    "pages_for",
    "parse_size",
    "format_size",
    "parse_percent",
]

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

#: The array's allocation unit.
PAGE_SIZE = 15 * MiB
#: Logical block size seen by initiators (fixed at 512 on PS Series volumes).
SECTOR_SIZE = 512
#: Copy-on-write granularity inside a page: a small write to a page that a
#: snapshot shares writes only the chunks it touches (as qcow2 subclusters do).
CHUNK_SIZE = 4096
CHUNKS_PER_PAGE = PAGE_SIZE // CHUNK_SIZE

_UNITS = {"": MiB, "M": MiB, "MB": MiB, "G": GiB, "GB": GiB, "T": TiB, "TB": TiB}
# ASCII digits only ("\d" and float() also take other scripts' digits, e.g. Arabic-Indic), and
# few enough of them that the value stays finite (a long digit string made an infinite float).
_SIZE_RE = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?)([A-Za-z]*)")
_PERCENT_RE = re.compile(r"[0-9]{1,6}%?")


def pages_for(size_bytes: int) -> int:
    """Number of 15 MiB pages that hold ``size_bytes`` (rounded up)."""
    return -(-size_bytes // PAGE_SIZE)


def parse_size(text: str) -> int:
    """Parse a CLI size such as ``1G``, ``1GB``, ``500MB`` or ``500`` (MB) to bytes; digits are ASCII.

    Raises:
        ValueError: the text is not a positive size in MB, GB or TB.
    """
    match = _SIZE_RE.fullmatch(text.strip())
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"invalid size '{text}'")
    size = math.ceil(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"invalid size '{text}'")
    return size


def format_size(size_bytes: int) -> str:
    """Format bytes the way the Group Manager prints them: ``0MB``, ``15MB``, ``1.01GB``, ``2TB``.

    Only MB, GB and TB appear, since the Cinder driver's ``_get_space_in_gb``
    understands no other unit.
    """
    for unit, scale in (("TB", TiB), ("GB", GiB)):
        if size_bytes >= scale:
            return _trim(size_bytes / scale) + unit
    return _trim(size_bytes / MiB) + "MB"


def _trim(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_percent(text: str) -> int:
    """Parse ``50%`` or ``50`` (ASCII digits) to an integer percentage (0 or more)."""
    value = text.strip()
    if not _PERCENT_RE.fullmatch(value):
        raise ValueError(f"invalid percentage '{text}'")
    return int(value.removesuffix("%"))
