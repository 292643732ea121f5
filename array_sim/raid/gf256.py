"""Arithmetic in GF(2^8) for RAID 6: the field's tables and the product of a strip by a constant.

Rules of this module:

1. **The field is md's and ISA-L's**: generator g = 2, polynomial x^8 + x^4 + x^3 + x^2 + 1
   (0x11d), so a Q computed with these tables is the Q of Linux ``lib/raid6`` and of ISA-L.
2. **Tables are built once, at import, and read-only**: exp (doubled, so exp[log a + log b] needs
   no modulo), log, inverse and the 256 x 256 product table (Linux ``lib/raid6/mktables.c`` builds
   the same ones).
3. **A product by a constant** (two-data recovery, Q read-modify-write) is one ISA-L call with a
   one-coefficient matrix when the system has ``libisal.so.2`` and the strip is long enough to pay
   for the call, and otherwise numpy gathers from a table of byte-pair products; the same bytes
   either way.

Reference: H. Peter Anvin, "The mathematics of RAID-6" (kernel.org, 2004-2011), sections 2 and 3.
"""

from __future__ import annotations

import functools

import numpy as np

from . import isal

__all__ = ["EXP", "GF_EXP", "GF_INV", "GF_LOG", "GF_MUL", "POLYNOMIAL", "mul"]

#: The GF(2^8) field polynomial x^8 + x^4 + x^3 + x^2 + 1 (md, ISA-L, Anvin's paper).
POLYNOMIAL = 0x11D

#: Products by a constant shorter than this stay in numpy: for them one ctypes call (its pointer
#: arrays) costs more than numpy's gather (measured on the development VM).
_ISAL_MUL_MIN = 16384


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    exp = np.zeros(510, dtype=np.uint8)  # doubled so exp[log a + log b] needs no modulo
    log = np.zeros(256, dtype=np.int16)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= POLYNOMIAL
    exp[255:] = exp[:255]
    # mul[a, b] = exp[log a + log b], with a row and a column of zeros for 0.
    mul = np.zeros((256, 256), dtype=np.uint8)
    mul[1:, 1:] = exp[log[1:, None] + log[None, 1:]]
    inv = np.zeros(256, dtype=np.uint8)  # inv[0] = 0 by convention; never used
    inv[1:] = exp[(255 - log[1:]) % 255]
    for table in (exp, log, mul, inv):
        table.flags.writeable = False
    return exp, log, mul, inv


#: GF_EXP[i] = g^i (i in 0..509, period 255); GF_LOG[a] = i with g^i = a (a != 0; GF_LOG[0] = 0).
#: GF_MUL[a, b] = a * b; GF_INV[a] = 1 / a (GF_INV[0] = 0). All read-only.
GF_EXP, GF_LOG, GF_MUL, GF_INV = _build_tables()
#: g^i for i in 0..254 as Python ints: the coefficients of Q, for the per-call paths.
EXP = tuple(int(v) for v in GF_EXP[:255])


@functools.lru_cache(maxsize=64)
def _pair_table(c: int) -> np.ndarray:
    """c * (two bytes at once): entry (h << 8) | l holds (c*h << 8) | c*l; 128 KiB, built in ~30 us.

    numpy's gather costs per element, not per byte, so looking up byte pairs halves its cost.
    The table treats both bytes alike, so it is independent of the machine's byte order.
    """
    row = GF_MUL[c].astype(np.uint16)
    table = (row[None, :] | (row[:, None] << 8)).reshape(-1)
    table.flags.writeable = False
    return table


def mul(c: int, d: np.ndarray) -> np.ndarray:
    """c * d for a flat uint8 array d, as a new array (0 <= c <= 255, checked by the caller)."""
    if c == 0:
        return np.zeros_like(d)
    if c == 1:
        return d.copy()
    out = np.empty_like(d)
    if isal.LIB is not None and d.size >= _ISAL_MUL_MIN:
        isal.encode(((c,),), [d], [out])
        return out
    even = d.size & ~1
    if even:
        np.take(_pair_table(c), d[:even].view(np.uint16), out=out[:even].view(np.uint16), mode="clip")
    if d.size & 1:
        out[-1] = GF_MUL[c, d[-1]]
    return out
