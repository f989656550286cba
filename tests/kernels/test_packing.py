"""Packed layouts: hand-checked bytes, round trips, Python pack <-> C read/write, nested views."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitpath import ckernels
from bitpath.ref.formats import ActFormat, Window
from bitpath.ref.packing import pack, row_bytes, unpack, weight_view

BITS = (2, 4, 8)


def test_documented_layouts() -> None:
    # The drawings in docs/integer-semantics.md, checked byte by byte.
    assert pack(np.array([1, 2, 3, 4]), 4, True).tolist() == [0x21, 0x43]  # CMSIS-NN's int4 example
    assert pack(np.array([1, 2, 3, 0]), 2, False).tolist() == [0b00_11_10_01]
    assert pack(np.array([-1, 0, 1, -2]), 2, True).tolist() == [0b10_01_00_11]
    assert pack(np.array([-128, 127]), 8, True).tolist() == [0x80, 0x7F]
    # A row of 5 four-bit values takes 3 bytes; the padding nibble is zero.
    assert pack(np.array([15, 15, 15, 15, 15]), 4, False).tolist() == [0xFF, 0xFF, 0x0F]
    # Every row starts on a byte boundary.
    assert pack(np.array([[3, 3, 3], [1, 1, 1]]), 2, False).tolist() == [[0x3F], [0x15]]


@given(
    bits=st.sampled_from(BITS),
    signed=st.booleans(),
    rows=st.integers(1, 4),
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_pack_unpack_round_trip(bits: int, signed: bool, rows: int, n: int, seed: int) -> None:
    lo, hi = ActFormat(bits, signed).range
    v = np.random.default_rng(seed).integers(lo, hi + 1, (rows, n))
    p = pack(v, bits, signed)
    assert p.shape == (rows, row_bytes(n, bits)) and p.dtype == np.uint8
    np.testing.assert_array_equal(unpack(p, bits, signed, n), v)


@given(bits=st.sampled_from(BITS), signed=st.booleans(), n=st.integers(1, 33), seed=st.integers(0, 2**32 - 1))
def test_c_reads_and_writes_python_packing(bits: int, signed: bool, n: int, seed: int) -> None:
    # A 1x1 max pool is the identity: Python packs, C unpacks (bp_read) and repacks (bp_write),
    # Python unpacks. The C output bytes must equal Python's packing, padding bits included.
    fmt = ActFormat(bits, signed)
    lo, hi = fmt.range
    x = np.random.default_rng(seed).integers(lo, hi + 1, (2, 3, n))
    out = ckernels.max_pool2d(x, fmt, 1, 1, Window())
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize(("stored", "view"), [(8, 8), (8, 4), (8, 2), (4, 4), (4, 2), (2, 2)])
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 10.0))
def test_nested_view_equals_independent_floor_quantization(stored: int, view: int, seed: int, scale: float) -> None:
    # The doc's claim: the view of codes floor-quantized at step s equals floor-quantizing the same
    # real weights at step s * 2^(stored - view), clamped to the view's range, computed independently.
    w = np.random.default_rng(seed).normal(0, 40 * scale, 500)
    lo_b, hi_b = ActFormat(stored, True).range
    q_stored = np.clip(np.floor(w / scale), lo_b, hi_b).astype(np.int64)
    lo_v, hi_v = ActFormat(view, True).range
    q_direct = np.clip(np.floor(w / (scale * 2.0 ** (stored - view))), lo_v, hi_v).astype(np.int64)
    np.testing.assert_array_equal(weight_view(q_stored, stored, view), q_direct)


@pytest.mark.parametrize(("stored", "view"), [(8, 8), (8, 4), (8, 2), (4, 4), (4, 2), (2, 2)])
def test_rounded_view_is_round_half_up_clamped(stored: int, view: int) -> None:
    # The doc's definition, computed independently over every code: round q / 2^k half up with
    # exact rational arithmetic, then clamp to the view's range (the saturation at the top code).
    lo, hi = ActFormat(stored, True).range
    q = np.arange(lo, hi + 1)
    k = stored - view
    lo_v, hi_v = ActFormat(view, True).range
    expect = [min(max(math.floor(Fraction(int(c), 2**k) + Fraction(1, 2)), lo_v), hi_v) for c in q]
    assert weight_view(q, stored, view, round=True).tolist() == expect
    # floor and round differ exactly where the dropped bits are at least half a step
    if k:
        half = ((q & ((1 << k) - 1)) >= (1 << (k - 1))) & (q >> k < hi_v)
        assert ((weight_view(q, stored, view, round=True) != weight_view(q, stored, view)) == half).all()


@pytest.mark.parametrize("rnd", [False, True], ids=["floor", "round"])
@pytest.mark.parametrize(("stored", "view"), [(8, 4), (8, 2), (4, 2)])
def test_c_kernels_read_the_nested_view(stored: int, view: int, rnd: bool) -> None:
    # One-hot inputs through a fully connected layer return one weight column: the C kernel must
    # read exactly weight_view() of the stored codes (every code of the stored width is covered).
    from bitpath.ref.formats import LayerQuant

    lo, hi = ActFormat(stored, True).range
    codes = np.arange(lo, hi + 1)[None, :].repeat(3, axis=0)
    q = LayerQuant(ActFormat(8), ActFormat(32, True), stored, view, w_round=rnd)
    zeros = np.zeros(3, np.int64)
    for i in range(codes.shape[1]):
        x = np.zeros(codes.shape[1], np.int64)
        x[i] = 1
        got = ckernels.fully_connected(x, codes, zeros, zeros, zeros, q)
        assert got.tolist() == [int(weight_view(codes[0, i], stored, view, rnd))] * 3
