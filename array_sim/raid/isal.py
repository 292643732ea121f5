"""Intel ISA-L's erasure-code kernels through ctypes: the fast path for RAID 6 parity.

Rules of this module:

1. **Optional and equal.** The kernels come from the system's ``libisal.so.2`` (Debian/Ubuntu
   package ``libisal2``, which ``scripts/setup-env`` installs). Without it, or with
   ``ARRAY_SIM_PARITY=numpy`` in the environment, ``LIB`` is None and ``parity`` uses its numpy
   code. Both produce the same bytes: the tests run every parity test on both.
2. **One kernel, ``ec_encode_data``**: out_r = sum over i of a[r][i] * src_i in GF(2^8) with the
   polynomial 0x11d, for up to a few output rows, from a coefficient matrix expanded once by
   ``ec_init_tables`` (32 bytes per coefficient). P is the row of ones, Q the row g^i, a product
   by a constant one row of one coefficient. Unlike ``pq_gen`` it asks no alignment of the
   buffers, so strips sliced out of an iSCSI data segment are used where they lie.
3. The caller passes C-contiguous uint8 numpy arrays of one length; outputs are written in full.
   ctypes releases the GIL for the call, so the event loop runs while parity is computed.
4. **Addresses cost.** Asking numpy for one array's address takes about 2 us of Python, as long as
   ISA-L takes to encode 40 KiB: ``encode_rows`` takes the strips as the rows of one 2-D array, so a
   stripe's eleven addresses come from two lookups and arithmetic.

Reference: ISA-L ``include/erasure_code.h`` (``ec_init_tables``, ``ec_encode_data``).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Sequence

import numpy as np

__all__ = ["LIB", "encode", "encode_rows"]

_VOIDP = ctypes.c_void_p


def _load() -> ctypes.CDLL | None:
    if os.environ.get("ARRAY_SIM_PARITY", "") == "numpy":
        return None
    try:
        lib = ctypes.CDLL("libisal.so.2")
    except OSError:
        return None
    lib.ec_init_tables.argtypes = [ctypes.c_int, ctypes.c_int, _VOIDP, _VOIDP]
    lib.ec_init_tables.restype = None
    lib.ec_encode_data.argtypes = [
        ctypes.c_int, ctypes.c_int, ctypes.c_int, _VOIDP, ctypes.POINTER(_VOIDP), ctypes.POINTER(_VOIDP)
    ]  # fmt: skip
    lib.ec_encode_data.restype = None
    return lib


#: The loaded library, or None (rule 1).
LIB = _load()


@functools.lru_cache(maxsize=1024)
def _expanded(rows: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, int]:
    """ISA-L's expanded tables for the coefficient matrix ``rows`` (each row one output), and their address."""
    assert LIB is not None
    matrix = np.array(rows, dtype=np.uint8)
    out = np.zeros(32 * matrix.size, dtype=np.uint8)
    LIB.ec_init_tables(matrix.shape[1], matrix.shape[0], matrix.ctypes.data, out.ctypes.data)
    out.flags.writeable = False
    return out, out.ctypes.data


def encode(rows: tuple[tuple[int, ...], ...], sources: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> None:
    """outputs[r] = sum over i of rows[r][i] * sources[i], every byte (rule 2)."""
    assert LIB is not None
    k, n = len(sources), len(outputs)
    src = (_VOIDP * k)(*[s.ctypes.data for s in sources])
    dst = (_VOIDP * n)(*[o.ctypes.data for o in outputs])
    LIB.ec_encode_data(sources[0].size, k, n, _expanded(rows)[1], src, dst)


def encode_rows(rows: tuple[tuple[int, ...], ...], sources: np.ndarray, outputs: np.ndarray) -> None:
    """``encode`` with the strips as the rows of C-contiguous 2-D uint8 arrays (rule 4)."""
    assert LIB is not None
    k, length = sources.shape
    n = outputs.shape[0]
    src_at, dst_at = sources.ctypes.data, outputs.ctypes.data
    src = (_VOIDP * k)(*range(src_at, src_at + k * length, length))
    dst = (_VOIDP * n)(*range(dst_at, dst_at + n * length, length))
    LIB.ec_encode_data(length, k, n, _expanded(rows)[1], src, dst)
