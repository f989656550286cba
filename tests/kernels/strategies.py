"""Hypothesis strategies for kernel operands: shapes, values with saturation edges, requant constants."""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from bitpath.ref.formats import INT32_MAX, INT32_MIN, ActFormat, LayerQuant, Window

BITS = (2, 4, 8)
EXTREME_MULTS = (INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX)


@st.composite
def int_array(draw: st.DrawFn, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """Random values, or all-max, all-min, or only the two extremes (saturation edges)."""
    mode = draw(st.sampled_from(["random", "random", "max", "min", "extremes"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "max":
        return np.full(shape, hi, np.int64)
    if mode == "min":
        return np.full(shape, lo, np.int64)
    if mode == "extremes":
        return rng.choice(np.array([lo, hi], np.int64), shape)
    return rng.integers(lo, hi + 1, shape, dtype=np.int64)


@st.composite
def layer_quant(draw: st.DrawFn, w_view: int, in_bits: int, out_bits: int) -> LayerQuant:
    """A LayerQuant with the given widths; storage width, view rounding, signedness and clamp drawn."""
    stored = draw(st.sampled_from([b for b in BITS if b >= w_view]))
    rnd = draw(st.booleans())
    inp = ActFormat(in_bits, draw(st.booleans()))
    if out_bits == 32:
        return LayerQuant(inp, ActFormat(32, True), stored, w_view, w_round=rnd)
    out = ActFormat(out_bits, draw(st.sampled_from([False, False, True])))
    lo, hi = out.range
    if draw(st.booleans()):
        return LayerQuant(inp, out, stored, w_view, w_round=rnd)
    a = draw(st.integers(lo, hi))
    b = draw(st.integers(a, hi))
    return LayerQuant(inp, out, stored, w_view, a, b, rnd)


@st.composite
def requant_params(draw: st.DrawFn, n: int, typical_acc: float, out_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (M, s): mostly scales that map typical accumulators into range, some extremes."""
    mode = draw(st.sampled_from(["scaled", "scaled", "scaled", "random", "extreme"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "random":
        return rng.integers(INT32_MIN, INT32_MAX + 1, n, dtype=np.int64), rng.integers(0, 63, n, dtype=np.int64)
    if mode == "extreme":
        m = rng.choice(np.array(EXTREME_MULTS, np.int64), n)
        s = rng.choice(np.array([0, 1, 31, 61, 62], np.int64), n)
        return m, s
    m = rng.integers(2**30, 2**31, n, dtype=np.int64) * rng.choice(np.array([1, 1, 1, -1], np.int64), n)
    # |acc| * M / 2^s ~ out_max  =>  s ~ 31 + log2(typical_acc / out_max)
    centre = 31 + int(np.log2(max(typical_acc, 1.0) / max(out_max, 1)))
    s = np.clip(centre + rng.integers(-2, 3, n), 0, 62).astype(np.int64)
    return m, s


@st.composite
def bias_for(draw: st.DrawFn, n: int, products: int, q: LayerQuant) -> np.ndarray:
    """Bias mostly inside the accumulator bound; sometimes at INT32 extremes (both sides must refuse)."""
    room = INT32_MAX - products * q.inp.max_abs * q.w_max_abs
    mode = draw(st.sampled_from(["small", "small", "small", "edge", "overflow"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "overflow":
        return rng.choice(np.array([INT32_MIN, INT32_MAX], np.int64), n)
    if mode == "edge" and room >= 0:
        return rng.choice(np.array([-room, room], np.int64), n)
    lim = max(0, min(room, 4 * products * q.inp.max_abs * q.w_max_abs // 8 + 1))
    return rng.integers(-lim, lim + 1, n, dtype=np.int64)


@st.composite
def window_for(draw: st.DrawFn, h: int, w: int, kh: int, kw: int) -> Window:
    win = Window(
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        *(draw(st.integers(0, 2)) for _ in range(4)),
    )
    assume(kh <= h + win.pad_top + win.pad_bottom and kw <= w + win.pad_left + win.pad_right)
    return win
