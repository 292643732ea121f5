"""RAID 5 and RAID 6 parity over equal-length strips: encode, read-modify-write, recovery.

Rules of this module:

1. **Layout is Linux md's and ISA-L's.** For data strips D_0 .. D_{k-1} (D_0 the first):
   P = D_0 ^ D_1 ^ ... ^ D_{k-1}, and Q = sum over i of g^i * D_i in GF(2^8) with generator
   g = 2 and field polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d). This is md's lib/raid6 syndrome
   and what ISA-L's ``pq_gen`` / ``gf_gen_rs_matrix`` (``isa_l_rs_vand``) produce, so parity written
   here can be checked by, or handed to, either of them.
2. **ISA-L when the system has it, numpy otherwise, the same bytes either way.** With
   ``libisal.so.2`` (``isal``), RAID 6 syndromes and products of 16 KiB or more by a constant
   are one ISA-L ``ec_encode_data`` call (about twice numpy's speed here, measured in
   ``benchmarks/raid_encode.py``). Plain XOR stays in numpy, as fast as ISA-L on cache-sized
   strips, except the XOR into a given buffer (``xor_parity(out=...)``, reconstruction's
   megabyte-long strips), and the write path's two bulk forms, ``parity_rows`` (a whole stripe's
   P, or P and Q) and ``rewritten_parity`` (read-modify-write of several strips), where one ISA-L
   pass beats a numpy pass per strip. The numpy code computes Q with md's ``int.uc`` trick: Horner's
   rule from the highest index (q = 2*q ^ D_i), where the multiply by 2 shifts every byte left by
   one and xors 0x1d into the bytes whose top bit fell off, byte-wise on whole uint8 arrays, in
   cache-sized chunks of the strips.
3. **The field's arithmetic is ``gf256``'s**: its tables, and its product of a strip by a
   constant (two-data recovery, Q read-modify-write).
4. **Strips are equal-length buffers whose length is a multiple of 8** (numpy uint8 arrays or any
   contiguous bytes-like object). Results are new numpy uint8 arrays unless a docstring says
   otherwise; the ``*_update`` functions write into the parity arrays given.

References: Linux ``lib/raid6/`` (``int.uc`` for the syndrome, ``recov.c`` for
``raid6_2data_recov`` / ``raid6_datap_recov``, ``mktables.c`` for the tables) and H. Peter Anvin,
"The mathematics of RAID-6" (kernel.org, 2004-2011).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import gf256, isal
from .gf256 import EXP, GF_EXP, GF_INV, POLYNOMIAL

__all__ = [
    "gf_mul_const",
    "parity_rows",
    "pq_parity",
    "pq_update",
    "recover_pq",
    "recover_xor",
    "rewritten_parity",
    "xor_parity",
    "xor_update",
]

Buffer = Any  # numpy uint8 array or a contiguous bytes-like object

_POLY_LOW = np.uint8(POLYNOMIAL & 0xFF)  # 0x1d

#: Bytes of each strip per chunk. Smaller chunks lose more to numpy's per-call overhead than they
#: gain in cache hits (measured on the 2-vCPU development VM).
_CHUNK = 65536


def _u8(buf: Buffer, name: str = "strip") -> np.ndarray:
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise TypeError(f"{name} must be a uint8 array, not {buf.dtype}")
        return np.ascontiguousarray(buf).reshape(-1)
    try:
        return np.frombuffer(buf, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a uint8 array or a contiguous bytes-like object") from exc


def _strips_u8(strips: Sequence[Buffer | None]) -> tuple[list[np.ndarray | None], int]:
    """Views of the strips as flat uint8 arrays (None kept) and their common length."""
    views = [None if s is None else _u8(s) for s in strips]
    sizes = {v.size for v in views if v is not None}
    if not sizes:
        raise ValueError("no strips given")
    if len(sizes) != 1:
        raise ValueError(f"strips differ in length: {sorted(sizes)}")
    (size,) = sizes
    if size % 8:
        raise ValueError(f"strip length {size} is not a multiple of 8")
    return views, size


def _mul2(q: np.ndarray, scratch: np.ndarray) -> None:
    """q = 2 * q in GF(2^8) for every byte of q (uint8), in place; scratch: a uint8 array like q.

    md's int.uc does this on a machine word as SHLBYTE(v) ^ (MASK(v) & 0x1d). Working on the bytes
    directly needs fewer numpy passes: the sign of each byte read as int8 says whether its top bit
    falls off, and the byte-wise add q + q is the shift with no carry into the neighbouring byte.
    """
    np.less(q.view(np.int8), 0, out=scratch.view(np.bool_))  # 1 where the top bit is set
    np.add(q, q, out=q)
    np.multiply(scratch, _POLY_LOW, out=scratch)  # ... 0x1d there, 0 elsewhere
    np.bitwise_xor(q, scratch, out=q)


def _syndrome(
    strips: Sequence[np.ndarray | None], size: int, want_p: bool, want_q: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """P and/or Q of the strips (flat uint8), a missing strip (None) counting as zeros.

    P and Q are the rows of one (2, size) array, so each data strip is folded into both with one
    numpy call; Q's row is multiplied by 2 between strips (Horner, highest index first).
    """
    present = [(i, d) for i, d in enumerate(strips) if d is not None]
    if isal.LIB is not None and present and want_q:
        rows = ([(1,) * len(present)] if want_p else []) + ([tuple(EXP[i] for i, _ in present)] if want_q else [])
        result = np.empty((len(rows), size), dtype=np.uint8)
        isal.encode(tuple(rows), [d for _, d in present], list(result))
        return (result[0] if want_p else None), (result[-1] if want_q else None)
    top = present[-1][0] if present else -1
    alloc = np.zeros if top < 0 else np.empty  # otherwise the top strip is copied in first
    out = alloc((int(want_p) + int(want_q), size), dtype=np.uint8)
    scratch = np.empty(min(size, _CHUNK), dtype=np.uint8)
    for start in range(0, size, _CHUNK):
        stop = min(start + _CHUNK, size)
        chunk = out[:, start:stop]
        qc = chunk[-1] if want_q else None
        sc = scratch[: stop - start]
        for i in range(top, -1, -1):
            if qc is not None and i != top:
                _mul2(qc, sc)
            d = strips[i]
            if d is None:
                continue
            if i == top:
                chunk[...] = d[start:stop]
            else:
                np.bitwise_xor(chunk, d[start:stop], out=chunk)
    return (out[0] if want_p else None), (out[-1] if want_q else None)


def xor_parity(strips: Sequence[Buffer], out: np.ndarray | None = None) -> np.ndarray:
    """RAID 5 parity: the XOR of the strips.

    Args:
        strips: one or more equal-length strips, length a multiple of 8.
        out: a writable uint8 array of the strips' length to hold the result (reconstruction
            reuses one buffer), or None for a new array.

    Returns:
        P (``out`` when given).
    """
    views, size = _strips_u8(strips)
    if any(v is None for v in views):
        raise ValueError("xor_parity: a strip is None")
    if out is None:
        p, _ = _syndrome(views, size, want_p=True, want_q=False)
        return p
    _writable(out, "out")
    if out.size != size or not out.flags.c_contiguous:
        raise ValueError(f"out must be a contiguous array of {size} bytes")
    if isal.LIB is not None:
        isal.encode(((1,) * len(views),), views, [out.reshape(-1)])
        return out
    out[...] = views[0]
    for v in views[1:]:
        np.bitwise_xor(out, v, out=out)
    return out


def pq_parity(strips: Sequence[Buffer]) -> tuple[np.ndarray, np.ndarray]:
    """RAID 6 parity P and Q of the data strips, in md / ISA-L layout (see the module header).

    Args:
        strips: the data strips D_0 .. D_{k-1}, k >= 1 (k <= 255), equal length, a multiple of 8.

    Returns:
        (P, Q) as new uint8 arrays.
    """
    views, size = _strips_u8(strips)
    if any(v is None for v in views):
        raise ValueError("pq_parity: a strip is None")
    if len(views) > 255:
        raise ValueError(f"RAID 6 over GF(2^8) takes at most 255 data strips, not {len(views)}")
    p, q = _syndrome(views, size, want_p=True, want_q=True)
    return p, q


def parity_rows(strips: np.ndarray, out: np.ndarray) -> None:
    """P (``out`` of one row) or P and Q (two rows) of the rows of ``strips``, written into ``out``.

    The whole-stripe write's form: a stripe's data strips are the rows of one (k, n) C-contiguous
    uint8 view of the initiator's buffer and its parity the rows of one (1 or 2, n) array, so ISA-L
    gets every address from two lookups (``isal`` rule 4).
    """
    k = strips.shape[0]
    if isal.LIB is not None:
        rows = ((1,) * k, tuple(EXP[:k]))[: out.shape[0]]
        isal.encode_rows(rows, strips, out)
        return
    p, q = _syndrome(list(strips), strips.shape[1], want_p=True, want_q=out.shape[0] == 2)
    out[0] = p
    if q is not None:
        out[1] = q


def rewritten_parity(parity: Sequence[Buffer], changes: Sequence[tuple[int, Buffer, Buffer]]) -> np.ndarray:
    """Read-modify-write of several data strips at once: the new P (and Q) of a stripe.

    ``parity`` is the old P, or the old P and Q; ``changes`` are (index, old, new) of the data strips
    rewritten. Returns the new parity as the rows of one (1 or 2, n) array:
    P' = P ^ sum(old ^ new), Q' = Q ^ sum g^index * (old ^ new), which ISA-L computes as one linear
    combination of every strip given (one ``ec_encode_data`` call), where ``pq_update`` would take
    a handful of numpy passes per strip.
    """
    views, size = _strips_u8([*parity, *(old for _, old, _ in changes), *(new for _, _, new in changes)])
    two = len(parity) == 2
    out = np.empty((len(parity), size), np.uint8)
    if isal.LIB is not None:
        doubled = tuple(EXP[j] for j, _, _ in changes) * 2
        rows = ((1,) + (0,) * two + (1,) * len(doubled),) + (((0, 1) + doubled,) if two else ())
        isal.encode(rows, views, list(out))  # type: ignore[arg-type]
        return out
    out[0] = views[0]
    if two:
        out[1] = views[1]
    for j, old, new in changes:
        delta = _delta(out[0], old, new)
        np.bitwise_xor(out[0], delta, out=out[0])
        if two:
            np.bitwise_xor(out[1], gf256.mul(EXP[j], delta) if j else delta, out=out[1])
    return out


def gf_mul_const(c: int, data: Buffer) -> np.ndarray:
    """Multiply every byte of ``data`` by the constant ``c`` in GF(2^8) (poly 0x11d).

    Table lookup (``np.take``) on byte pairs; see ``gf256.GF_MUL`` for the single-byte table.

    Args:
        c: the constant, 0..255.
        data: any uint8 array or bytes-like object (no length rule here).

    Returns:
        A new uint8 array of the same length.
    """
    if not 0 <= c <= 255:
        raise ValueError(f"GF(2^8) constant out of range: {c}")
    return gf256.mul(int(c), _u8(data, "data"))


def _writable(a: Any, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 numpy array")
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return a


def _delta(target: np.ndarray, old: Buffer, new: Buffer) -> np.ndarray:
    o = _u8(old, "old")
    n = _u8(new, "new")
    if not (o.size == n.size == target.size):
        raise ValueError(f"lengths differ: parity {target.size}, old {o.size}, new {n.size}")
    delta = np.bitwise_xor(o, n)
    return delta if target.ndim == 1 else delta.reshape(target.shape)


def xor_update(p: np.ndarray, old: Buffer, new: Buffer) -> None:
    """RAID 5 read-modify-write, in place: P ^= old ^ new.

    Args:
        p: the parity strip, a writable uint8 array.
        old: the data strip's old contents; new: its new contents (same length as p).
    """
    _writable(p, "p")
    np.bitwise_xor(p, _delta(p, old, new), out=p)


def pq_update(p: np.ndarray, q: np.ndarray, index: int, old: Buffer, new: Buffer) -> None:
    """RAID 6 read-modify-write of data strip ``index``, in place: P ^= delta, Q ^= g^index * delta.

    Args:
        p, q: the parity strips, writable uint8 arrays of one length.
        index: the data strip's position, 0 for the first (0 <= index < 255).
        old: the strip's old contents; new: its new contents (both the parity strips' length).
    """
    _writable(p, "p")
    _writable(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q differ in shape: {p.shape} and {q.shape}")
    if not 0 <= index < 255:
        raise ValueError(f"data strip index out of range: {index}")
    delta = _delta(p, old, new)
    np.bitwise_xor(p, delta, out=p)
    if index:
        delta = gf256.mul(EXP[index], delta.reshape(-1))
        if q.ndim != 1:
            delta = delta.reshape(q.shape)
    np.bitwise_xor(q, delta, out=q)


def recover_xor(strips: list[Buffer | None]) -> np.ndarray:
    """RAID 5 recovery: the one missing strip (None) is the XOR of all the others.

    Args:
        strips: every strip of the stripe, data and P in any order, exactly one of them None.

    Returns:
        The missing strip as a new uint8 array.

    Raises:
        ValueError: if not exactly one strip is None.
    """
    missing = [i for i, s in enumerate(strips) if s is None]
    if len(missing) != 1:
        raise ValueError(f"RAID 5 recovers exactly one missing strip, {len(missing)} missing")
    views, size = _strips_u8(strips)
    p, _ = _syndrome(views, size, want_p=True, want_q=False)
    return p


def recover_pq(
    data: list[Buffer | None], p: Buffer | None, q: Buffer | None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """RAID 6 recovery of up to two missing strips among the data strips, P and Q.

    Cases (md ``lib/raid6/recov.c``): one data strip (from P, or from Q if P is missing too),
    two data strips (``raid6_2data_recov``), and P and/or Q (recomputed from the data).

    Args:
        data: the data strips D_0 .. D_{k-1}, a missing one as None.
        p, q: the parity strips, or None if missing.

    Returns:
        (data strips, P, Q), all complete. Strips that were given come back as uint8 views of
        the buffers passed in (no copy, read-only if the buffer was); recovered ones are new arrays.

    Raises:
        ValueError: if more than two strips are missing, or the strips differ in length.
    """
    views, size = _strips_u8([*data, p, q])
    dviews, pv, qv = views[:-2], views[-2], views[-1]
    lost = [i for i, v in enumerate(dviews) if v is None]
    n_missing = len(lost) + (pv is None) + (qv is None)
    if n_missing > 2:
        raise ValueError(f"RAID 6 recovers at most two missing strips, {n_missing} missing")
    if len(dviews) > 255:
        raise ValueError(f"RAID 6 over GF(2^8) takes at most 255 data strips, not {len(dviews)}")
    if lost:
        # Syndromes of the surviving data; P ^ Pxy and Q ^ Qxy are then the missing strips' share.
        want_p = pv is not None
        want_q = pv is None or len(lost) == 2
        ps, qs = _syndrome(dviews, size, want_p, want_q)
        if len(lost) == 2:
            x, y = lost
            pxy = np.bitwise_xor(ps, pv, out=ps)
            qxy = np.bitwise_xor(qs, qv, out=qs)
            # Anvin §4 / raid6_2data_recov: D_y = A*Pxy ^ B*Qxy, D_x = D_y ^ Pxy, with
            # A = 1 / (g^(y-x) + 1) and B = 1 / (g^x + g^y).
            a = int(GF_INV[GF_EXP[y - x] ^ 1])
            b = int(GF_INV[GF_EXP[x] ^ GF_EXP[y]])
            dy = gf256.mul(a, pxy)
            np.bitwise_xor(dy, gf256.mul(b, qxy), out=dy)
            dviews[y] = dy
            dviews[x] = np.bitwise_xor(dy, pxy, out=pxy)
        else:
            (x,) = lost
            if pv is not None:
                dviews[x] = np.bitwise_xor(ps, pv, out=ps)
            else:
                # raid6_datap_recov: Q ^ Qx = g^x * D_x.
                qx = np.bitwise_xor(qs, qv, out=qs)
                dviews[x] = gf256.mul(int(GF_INV[GF_EXP[x]]), qx)
    if pv is None or qv is None:
        pn, qn = _syndrome(dviews, size, want_p=pv is None, want_q=qv is None)
        if pv is None:
            pv = pn
        if qv is None:
            qv = qn
    return list(dviews), pv, qv
