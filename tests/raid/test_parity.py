"""RAID parity: P/Q against ISA-L (through pyeclib) and a slow pure-Python GF(2^8); every failure set.

Every test runs twice: on the ISA-L kernels (``array_sim.raid.isal``, libisal2, which
``scripts/setup-env`` installs) and on the numpy code, which must give the same bytes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from array_sim.raid import isal
from array_sim.raid.parity import (
    gf_mul_const,
    parity_rows,
    pq_parity,
    pq_update,
    recover_pq,
    recover_xor,
    rewritten_parity,
    xor_parity,
    xor_update,
)

SIZES = (8, 16, 64, 520, 4096, 65536)


@pytest.fixture(autouse=True, params=["isal", "numpy"])
def kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which implementation of the kernels the test runs on."""
    if request.param == "isal":
        assert isal.LIB is not None, "libisal.so.2 is missing: scripts/setup-env installs libisal2"
    else:
        monkeypatch.setattr(isal, "LIB", None)
    return str(request.param)


def _slow_mul(a: int, b: int) -> int:
    """Shift-and-add multiply in GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1, one bit at a time."""
    r = 0
    for _ in range(8):
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a & 0x100:
            a ^= 0x11D
    return r


def _slow_pq(strips: list[bytes]) -> tuple[bytes, bytes]:
    p = bytearray(len(strips[0]))
    q = bytearray(len(strips[0]))
    coeff = 1
    for strip in strips:
        for j, byte in enumerate(strip):
            p[j] ^= byte
            q[j] ^= _slow_mul(coeff, byte)
        coeff = _slow_mul(coeff, 2)
    return bytes(p), bytes(q)


def _strips(k: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(k)]


def _equal(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    return len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


# -- the oracle: ISA-L's Vandermonde RS through pyeclib (rows [1]*k and [1, 2, 4, ...]) --------

_DRIVERS: dict[int, object] = {}


def _isal_pq(strips: list[np.ndarray]) -> tuple[bytes, bytes]:
    ec_iface = pytest.importorskip("pyeclib.ec_iface")  # only the oracle tests skip without it
    k = len(strips)
    if k not in _DRIVERS:
        _DRIVERS[k] = ec_iface.ECDriver(k=k, m=2, ec_type="isa_l_rs_vand")
    driver = _DRIVERS[k]
    size = strips[0].size
    fragments = driver.encode(b"".join(s.tobytes() for s in strips))
    assert len(fragments) == k + 2
    # pyeclib cuts the input into k consecutive pieces of ceil(len / k) bytes (padding the last)
    # behind a header of its own; with len = k * size each fragment payload is exactly one strip.
    # The header size is not assumed: the data fragments must end with the strip they carry.
    header = len(fragments[0]) - size
    assert header == 80, f"pyeclib fragment header is {header} bytes, expected 80"
    for i, strip in enumerate(strips):
        assert fragments[i][header:] == strip.tobytes(), f"fragment {i} is not data strip {i}"
    return fragments[k][header:], fragments[k + 1][header:]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("k", [2, 3, 4, 5, 8, 12, 16])
def test_pq_equals_isal(k: int, size: int) -> None:
    strips = _strips(k, size, seed=k * 1000 + size)
    p, q = pq_parity(strips)
    want_p, want_q = _isal_pq(strips)
    assert p.dtype == np.uint8 and q.dtype == np.uint8
    assert p.tobytes() == want_p
    assert q.tobytes() == want_q
    assert xor_parity(strips).tobytes() == want_p


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("k", [2, 9, 12])
def test_parity_rows_equals_isal(k: int, size: int) -> None:
    """The whole-stripe form: strips as the rows of one array, parity into the rows of another."""
    stripe = np.stack(_strips(k, size, seed=k * 7 + size))
    want_p, want_q = _isal_pq(list(stripe))
    both = np.full((2, size), 0x5A, np.uint8)  # every byte written, whatever was there
    parity_rows(stripe, both)
    assert (both[0].tobytes(), both[1].tobytes()) == (want_p, want_q)
    only_p = np.full((1, size), 0xA5, np.uint8)
    parity_rows(stripe, only_p)
    assert only_p[0].tobytes() == want_p


@pytest.mark.parametrize("size", (8, 520, 65536))
@pytest.mark.parametrize("rewrite", [(0,), (3,), (0, 1, 8), (2, 5, 6, 7)])
def test_rewritten_parity_equals_encoding_the_new_stripe(rewrite: tuple[int, ...], size: int) -> None:
    """Read-modify-write of several strips at once gives the parity of the stripe as it now is."""
    old = _strips(9, size, seed=size + len(rewrite))
    new = [s.copy() for s in old]
    for j, fresh in zip(rewrite, _strips(len(rewrite), size, seed=size * 3 + 1), strict=True):
        new[j] = fresh
    p, q = pq_parity(old)
    want_p, want_q = _isal_pq(new)
    changes = [(j, old[j], new[j]) for j in rewrite]
    both = rewritten_parity([p, q], changes)
    assert (both[0].tobytes(), both[1].tobytes()) == (want_p, want_q)
    (only_p,) = rewritten_parity([p], changes)
    assert only_p.tobytes() == want_p


@pytest.mark.parametrize(("k", "size"), [(2, 8), (3, 16), (7, 64), (16, 40)])
def test_pq_equals_slow_python_reference(k: int, size: int) -> None:
    strips = _strips(k, size, seed=k + size)
    want_p, want_q = _slow_pq([s.tobytes() for s in strips])
    p, q = pq_parity([s.tobytes() for s in strips])  # bytes in, as well as arrays
    assert p.tobytes() == want_p
    assert q.tobytes() == want_q


def test_pq_chunked_long_strips() -> None:
    """Strips longer than one internal chunk (64 KiB), and not a multiple of it."""
    strips = _strips(4, 3 * 65536 + 24, seed=5)
    p, q = pq_parity(strips)
    want_p, want_q = _isal_pq(strips)
    assert p.tobytes() == want_p and q.tobytes() == want_q


def test_gf_mul_const_against_slow_multiply() -> None:
    data = np.arange(256, dtype=np.uint8)
    for c in range(256):
        want = bytes(_slow_mul(c, b) for b in range(256))
        assert gf_mul_const(c, data).tobytes() == want, c
    with pytest.raises(ValueError):
        gf_mul_const(256, data)


@pytest.mark.parametrize("size", [1, 3, 1001, 4096])
def test_gf_mul_const_any_length_and_every_byte_pair(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    for c in (0, 1, 2, 0x1D, 0x8E, 255):
        want = bytes(_slow_mul(c, b) for b in data.tobytes())
        assert gf_mul_const(c, data.tobytes()).tobytes() == want, c
    pairs = np.arange(65536, dtype=np.uint16).view(np.uint8)  # every (byte, byte) pair once
    got = gf_mul_const(0x53, pairs)
    table = bytes(_slow_mul(0x53, b) for b in range(256))
    assert got.tobytes() == pairs.tobytes().translate(table)


def test_results_are_new_arrays() -> None:
    strips = _strips(3, 64, seed=1)
    before = [s.copy() for s in strips]
    p, q = pq_parity(strips)
    assert not any(np.shares_memory(p, s) or np.shares_memory(q, s) for s in strips)
    assert _equal(strips, before)


@pytest.mark.parametrize("k", [1, 2, 11])
def test_xor_into_a_given_buffer(k: int) -> None:
    strips = _strips(k, 4096, seed=k)
    buffer = np.full(4096, 0xAA, np.uint8)
    assert xor_parity(strips, out=buffer) is buffer
    assert np.array_equal(buffer, np.bitwise_xor.reduce(np.stack(strips)))
    with pytest.raises(ValueError):
        xor_parity(strips, out=np.empty(4088, np.uint8))
    with pytest.raises(ValueError):
        xor_parity(strips, out=np.frombuffer(bytes(4096), np.uint8))


@pytest.mark.parametrize("bad", [[b"12345678", b"1234567812345678"], [b"1234", b"5678"], []])
def test_bad_strips_rejected(bad: list[bytes]) -> None:
    with pytest.raises(ValueError):
        pq_parity(bad)
    with pytest.raises(ValueError):
        xor_parity(bad)


# -- every failure set up to the tolerance -----------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_raid5_every_single_failure(k: int) -> None:
    strips = _strips(k, 4096, seed=k)
    stripe = [*strips, xor_parity(strips)]
    for lost in range(k + 1):
        damaged: list[np.ndarray | None] = list(stripe)
        damaged[lost] = None
        assert np.array_equal(recover_xor(damaged), stripe[lost]), lost


def test_raid5_needs_exactly_one_missing() -> None:
    strips = _strips(3, 64, seed=2)
    stripe: list[np.ndarray | None] = [*strips, xor_parity(strips)]
    with pytest.raises(ValueError):
        recover_xor(stripe)
    with pytest.raises(ValueError):
        recover_xor([None, None, *stripe[2:]])


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8, 16])
def test_raid6_every_single_and_pair(k: int) -> None:
    """Like md's raid6test: lose every single strip and every pair (i, j) of the k + 2, recover."""
    data = _strips(k, 512, seed=100 + k)
    p, q = pq_parity(data)
    stripe = [*data, p, q]
    failure_sets = [(i,) for i in range(k + 2)] + list(itertools.combinations(range(k + 2), 2))
    for lost in failure_sets:
        damaged: list[np.ndarray | None] = list(stripe)
        for i in lost:
            damaged[i] = None
        got_data, got_p, got_q = recover_pq(damaged[:k], damaged[k], damaged[k + 1])
        assert _equal(got_data, data), lost
        assert np.array_equal(got_p, p) and np.array_equal(got_q, q), lost


def test_raid6_nothing_missing_returns_the_strips() -> None:
    data = _strips(3, 64, seed=3)
    p, q = pq_parity(data)
    got_data, got_p, got_q = recover_pq([s.tobytes() for s in data], p.tobytes(), q.tobytes())
    assert _equal(got_data, data) and np.array_equal(got_p, p) and np.array_equal(got_q, q)


@pytest.mark.parametrize("lost", [(0, 1, 2), (0, 1, "p"), (0, "p", "q"), (0, 1, 2, "p", "q")])
def test_raid6_more_than_two_missing_raises(lost: tuple[int | str, ...]) -> None:
    data: list[np.ndarray | None] = list(_strips(4, 64, seed=4))
    p, q = pq_parity(data)
    pp: np.ndarray | None = p
    qq: np.ndarray | None = q
    for i in lost:
        if i == "p":
            pp = None
        elif i == "q":
            qq = None
        else:
            data[i] = None
    with pytest.raises(ValueError, match="at most two"):
        recover_pq(data, pp, qq)


# -- read-modify-write ---------------------------------------------------------------------------


def test_update_rejects_read_only_and_wrong_lengths() -> None:
    data = _strips(2, 64, seed=6)
    p, q = pq_parity(data)
    with pytest.raises(ValueError):
        pq_update(p, q, 0, data[0], data[1][:32])
    with pytest.raises(ValueError):
        pq_update(p, q, 255, data[0], data[1])
    with pytest.raises(TypeError):
        xor_update(bytearray(64), data[0], data[1])  # type: ignore[arg-type]
    p.flags.writeable = False
    with pytest.raises(ValueError):
        xor_update(p, data[0], data[1])


@st.composite
def _rmw_cases(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int, int, int]], tuple[int, ...]]:
    k = draw(st.integers(1, 12))
    size = 8 * draw(st.integers(1, 64))
    # (strip index, start, stop, seed) of each write: a byte range of one data strip rewritten.
    writes = draw(
        st.lists(
            st.tuples(
                st.integers(0, k - 1),
                st.integers(0, size - 1),
                st.integers(1, size),
                st.integers(0, 2**32 - 1),
            ),
            max_size=12,
        )
    )
    n_lost = draw(st.integers(0, 2))
    lost = tuple(sorted(draw(st.lists(st.integers(0, k + 1), min_size=n_lost, max_size=n_lost, unique=True))))
    return k, size, writes, lost


RmwCase = tuple[int, int, list[tuple[int, int, int, int]], tuple[int, ...]]
_RMW = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@settings(max_examples=50, **_RMW)
@given(_rmw_cases())
def test_rmw_history_then_recovery(case: RmwCase) -> None:
    """The fast loop's run: 50 histories; the whole suite also runs 150 (``..._full``)."""
    _rmw_history_then_recovery(case)


@pytest.mark.slow
@settings(max_examples=150, **_RMW)
@given(_rmw_cases())
def test_rmw_history_then_recovery_full(case: RmwCase) -> None:
    _rmw_history_then_recovery(case)


def _rmw_history_then_recovery(case: RmwCase) -> None:
    """After any history of partial writes, RMW parity equals a fresh encode and still recovers."""
    k, size, writes, lost = case
    data = _strips(k, size, seed=k * 7919 + size)
    p, q = pq_parity(data)
    p5 = xor_parity(data)
    for index, a, b, seed in writes:
        start, stop = min(a, b - 1), max(a + 1, b)
        old = data[index].copy()
        new = old.copy()
        new[start:stop] = np.random.default_rng(seed).integers(0, 256, stop - start, dtype=np.uint8)
        pq_update(p, q, index, old, new)
        xor_update(p5, old, new)
        data[index] = new
    fresh_p, fresh_q = pq_parity(data)
    assert np.array_equal(p, fresh_p) and np.array_equal(q, fresh_q)
    assert np.array_equal(p5, fresh_p)

    stripe: list[np.ndarray | None] = [*data, p, q]
    for i in lost:
        stripe[i] = None
    got_data, got_p, got_q = recover_pq(stripe[:k], stripe[k], stripe[k + 1])
    assert _equal(got_data, data)
    assert np.array_equal(got_p, p) and np.array_equal(got_q, q)
    if len(lost) == 1 and lost[0] <= k:  # RAID 5 view of the same stripe: data + P, one lost
        raid5: list[np.ndarray | None] = [*data, p5]
        raid5[lost[0]] = None
        assert np.array_equal(recover_xor(raid5), [*data, p5][lost[0]])
