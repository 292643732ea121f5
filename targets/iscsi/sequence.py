"""Sequence numbers: serial arithmetic modulo 2**32 (RFC 7143 section 4.2.2.1, RFC 1982)."""

from __future__ import annotations

__all__ = ["sn_add", "sn_lt", "sn_in_window"]

_MOD = 1 << 32
_HALF = 1 << 31


def sn_add(sn: int, n: int) -> int:
    return (sn + n) % _MOD


def sn_lt(a: int, b: int) -> bool:
    """``a < b`` in serial number arithmetic."""
    return a != b and ((a < b and b - a < _HALF) or (a > b and a - b > _HALF))


def sn_in_window(sn: int, low: int, high: int) -> bool:
    """``low <= sn <= high`` in serial number arithmetic."""
    return not sn_lt(sn, low) and not sn_lt(high, sn)
