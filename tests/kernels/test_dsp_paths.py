"""Targeted cases for the DSP conv2d fast paths (SMLAD on masked 8-bit codes; packed 2-bit fields):
every K around the 4-element groups and the 7-SMLAD extraction period, all-max operands (the largest
field sums), odd pixel and channel counts (the lone last pixel / channel of a 2x2 block)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from kernel_check import compare

from bitpath.ref import ops
from bitpath.ref.formats import ActFormat, LayerQuant, Window

K_CIN = [1, 3, 4, 5, 7, 27, 28, 29, 31, 56, 57, 64]  # 1x1 convs: K == Cin
# 8-bit codes at the rounding boundaries of the 4-bit (q % 16 == 8) and 2-bit (q % 64 == 32) views,
# next to them, the top codes that saturate (q + 2^(k-1) > 127: 120..127 at 4 bits, 96..127 at 2) and
# the most negative codes.
EDGE8 = np.array([-128, -127, -121, -120, -119, -97, -96, -95, -33, -32, -31, -9, -8, -7, -1, 0, 7, 8, 9, 23, 24,
                  31, 32, 33, 95, 96, 97, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127])
# single codes of the rounded-view cases: saturating tops, boundaries, the most negative
EDGE8_FILLS = (127, 120, 124, 96, 32, 8, -8, -32, -96, -120, -128)


def edge_codes(rng: np.random.Generator, shape: tuple, stored: int = 8) -> np.ndarray:
    """Codes drawn from the rounding edges (8-bit storage) or every code (4/2-bit storage)."""
    if stored == 8:
        return rng.choice(EDGE8, shape)
    return rng.integers(-(2 ** (stored - 1)), 2 ** (stored - 1), shape)


@pytest.mark.parametrize("cin", K_CIN)
@pytest.mark.parametrize("mode", ["random", "max", "min_w", "edges"])
@pytest.mark.parametrize("rnd", [False, True])
def test_packed_2bit_path(cin: int, mode: str, rnd: bool) -> None:
    # rnd: the rounded 2-bit view (QADD8 before the offset code), saturating at the top codes
    rng = np.random.default_rng(cin)
    q = LayerQuant(ActFormat(2), ActFormat(32, True), 8, 2, w_round=rnd)
    x = rng.integers(0, 4, (3, 3, cin)) if mode == "random" else np.full((3, 3, cin), 3)
    if mode == "max":  # view +1 everywhere: w' = 3, the largest field increments
        w = np.full((5, 1, 1, cin), 127)
    elif mode == "min_w":  # view -2 everywhere: w' = 0
        w = np.full((5, 1, 1, cin), -128)
    elif mode == "edges":
        w = edge_codes(rng, (5, 1, 1, cin))
    else:
        w = rng.integers(-128, 128, (5, 1, 1, cin))
    b = rng.integers(-50, 50, 5)
    z = np.zeros(5, np.int64)
    compare("conv2d", x, w, b, z, z, q, Window())


@pytest.mark.parametrize("view", [2, 4, 8])
@pytest.mark.parametrize("in_bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_smlad_path_3x3(view: int, in_bits: int, signed: bool) -> None:
    rng = np.random.default_rng(view * 100 + in_bits)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 8, view)
    lo, hi = q.inp.range
    for cin, cout, hw in ((1, 3, 5), (3, 5, 4), (16, 7, 3)):
        x = rng.integers(lo, hi + 1, (hw, hw, cin))
        w = rng.integers(-128, 128, (cout, 3, 3, cin))
        compare("conv2d", x, w, np.zeros(cout, np.int64), np.zeros(cout), np.zeros(cout), q, Window.same(3))
        # extremes: the largest magnitude the masked products reach before the final shift
        xe = np.full((hw, hw, cin), lo if signed else hi)
        we = np.full((cout, 3, 3, cin), -128)
        compare("conv2d", xe, we, np.zeros(cout, np.int64), np.zeros(cout), np.zeros(cout), q, Window.same(3))


def test_smlad_path_falls_back_when_masked_sums_could_overflow() -> None:
    # K * 255 * 128 > INT32_MAX but K * 255 * 2 fits: a 2-bit view is legal, the masked SMLAD path
    # is not; the kernel must take the generic path and still be exact.
    k = 70_000
    q = LayerQuant(ActFormat(8), ActFormat(32, True), 8, 2)
    x = np.full((1, 1, k), 255)
    w = np.full((2, 1, 1, k), 127)
    z = np.zeros(2, np.int64)
    got = compare("conv2d", x, w, z, z, z, q, Window())
    assert got.ravel().tolist() == [255 * 1 * k] * 2


@pytest.mark.parametrize("view", [2, 4, 8])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("c", [1, 3, 4, 5, 8, 13, 32])
def test_depthwise_fast_path(view: int, signed: bool, c: int) -> None:
    rng = np.random.default_rng(c * 10 + view)
    q = LayerQuant(ActFormat(8, signed), ActFormat(32, True), 8, view)
    lo, hi = q.inp.range
    z = np.zeros(c, np.int64)
    for win in (Window.same(3), Window(2, 2, 1, 0, 0, 1), Window(1, 1, 2, 2, 2, 2)):
        x = rng.integers(lo, hi + 1, (6, 5, c))
        w = rng.integers(-128, 128, (3, 3, c))
        compare("depthwise_conv2d", x, w, rng.integers(-99, 99, c), z, z, q, win)
        compare("depthwise_conv2d", np.full((6, 5, c), lo if signed else hi), np.full((3, 3, c), -128), z, z, z, q, win)


@pytest.mark.parametrize("view", [2, 4, 8])
@pytest.mark.parametrize(("in_bits", "signed"), [(8, False), (8, True), (4, False), (2, False), (4, True)])
@pytest.mark.parametrize("k", [1, 3, 4, 5, 64, 255, 1024])
@pytest.mark.parametrize("rnd", [False, True])
def test_fully_connected_fast_path(view: int, in_bits: int, signed: bool, k: int, rnd: bool) -> None:
    # (4, True): signed sub-byte inputs take the portable loop inside the DSP kernel
    rng = np.random.default_rng(k * 10 + view)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 8, view, w_round=rnd)
    lo, hi = q.inp.range
    for cout in (1, 2, 7):
        z = np.zeros(cout, np.int64)
        compare("fully_connected", rng.integers(lo, hi + 1, k), rng.integers(-128, 128, (cout, k)), z, z, z, q)
        compare("fully_connected", np.full(k, lo if signed else hi), np.full((cout, k), -128), z, z, z, q)
        if rnd:
            compare("fully_connected", rng.integers(lo, hi + 1, k), edge_codes(rng, (cout, k)), z, z, z, q)
            compare("fully_connected", np.full(k, hi), np.full((cout, k), 127), z, z, z, q)


@pytest.mark.parametrize(("bits", "signed"), [(8, False), (8, True), (4, False), (2, False), (4, True)])
@pytest.mark.parametrize("c", [4, 8, 16, 32])
def test_max_pool_fast_path(bits: int, signed: bool, c: int) -> None:
    rng = np.random.default_rng(c)
    fmt = ActFormat(bits, signed)
    lo, hi = fmt.range
    for win, k in ((Window(2, 2), 2), (Window(2, 2, 1, 1, 1, 1), 3), (Window(1, 1, 1, 0, 0, 1), 2)):
        compare("max_pool2d", rng.integers(lo, hi + 1, (7, 6, c)), fmt, k, k, win)
        compare("max_pool2d", rng.choice(np.array([lo, hi]), (7, 6, c)), fmt, k, k, win)


@pytest.mark.parametrize("view", [2, 4])
@pytest.mark.parametrize(("in_bits", "signed"), [(8, False), (8, True), (4, False), (2, False), (4, True)])
@pytest.mark.parametrize("cin", [1, 3, 7, 8, 16, 24])
@pytest.mark.parametrize("rnd", [False, True])
def test_conv_4bit_storage_path(view: int, in_bits: int, signed: bool, cin: int, rnd: bool) -> None:
    # 4-bit storage: nibble planes and the bit-reversed groups of 8; K = 9 * cin covers K % 8 tails.
    # rnd: the rounded 2-bit view (QADD8 on each nibble plane), saturating at codes 6 and 7.
    rng = np.random.default_rng(cin * 10 + view + in_bits)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 4, view, w_round=rnd)
    lo, hi = q.inp.range
    for cout in (1, 2, 5):
        z = np.zeros(cout, np.int64)
        x = rng.integers(lo, hi + 1, (5, 4, cin))
        compare("conv2d", x, rng.integers(-8, 8, (cout, 3, 3, cin)), z, z, z, q, Window.same(3))
        compare("conv2d", np.full((5, 4, cin), lo if signed else hi), np.full((cout, 3, 3, cin), -8), z, z, z, q,
                Window.same(3))
        if rnd:
            for wv in (7, 6, 2, -2, -6, -8):
                compare("conv2d", np.full((5, 4, cin), hi), np.full((cout, 3, 3, cin), wv), z, z, z, q, Window.same(3))


@pytest.mark.parametrize("view", [2, 4])
@pytest.mark.parametrize(("in_bits", "signed"), [(8, False), (8, True), (4, False), (2, False), (4, True)])
@pytest.mark.parametrize("k", [1, 7, 8, 9, 64, 255, 576])
@pytest.mark.parametrize("rnd", [False, True])
def test_fully_connected_4bit_storage_path(view: int, in_bits: int, signed: bool, k: int, rnd: bool) -> None:
    rng = np.random.default_rng(k * 10 + view + in_bits)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 4, view, w_round=rnd)
    lo, hi = q.inp.range
    for cout in (1, 3, 6):
        z = np.zeros(cout, np.int64)
        compare("fully_connected", rng.integers(lo, hi + 1, k), rng.integers(-8, 8, (cout, k)), z, z, z, q)
        compare("fully_connected", np.full(k, lo if signed else hi), np.full((cout, k), -8), z, z, z, q)
        if rnd:
            for wv in (7, 6, -2):
                compare("fully_connected", np.full(k, hi), np.full((cout, k), wv), z, z, z, q)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(("k", "stride"), [(1, 1), (3, 1), (3, 2), (5, 1), (2, 2)])
def test_single_channel_first_layer(signed: bool, k: int, stride: int) -> None:
    # The interior-window fast path of one 8-bit input channel (first layers), padded borders around it.
    rng = np.random.default_rng(k * 10 + stride + signed)
    q = LayerQuant(ActFormat(8, signed), ActFormat(32, True), 8, 8)
    lo, hi = q.inp.range
    for h, w, cout in ((9, 8, 3), (12, 12, 16)):
        z = np.zeros(cout, np.int64)
        x = rng.integers(lo, hi + 1, (h, w, 1))
        compare("conv2d", x, rng.integers(-128, 128, (cout, k, k, 1)), z, z, z, q, Window.same(k, stride))
        compare("conv2d", x, rng.integers(-128, 128, (cout, k, k, 1)), z, z, z, q, Window(stride, stride))


# The depthwise row runs (3-wide kernels, windows inside the input columns, 1..KH valid rows) and the
# per-pixel tap loop for the border columns and other kernel sizes, with 8-bit outputs requantized
# through SMMLA when every shift is >= 33: strides, padding on each edge, inputs narrower than the
# kernel, channel counts around the groups of four, any storage width.
DW_WINDOWS = [
    Window.same(3),
    Window.same(3, 2),
    Window(),
    Window(1, 1, 2, 2, 2, 2),
    Window(2, 1, 0, 1, 1, 0),
    Window(1, 2, 1, 0, 0, 2),
    Window(3, 3, 1, 1, 1, 1),
]
# every window with the 3x3 kernel; the other kernel sizes with a few
DW_CASES = [((3, 3), win) for win in DW_WINDOWS] + [
    (k, win) for k in ((1, 3), (5, 3), (3, 1), (5, 5), (2, 2)) for win in (DW_WINDOWS[0], DW_WINDOWS[4])
]


def _dw_requant(rng: np.random.Generator, c: int, shifts: str) -> tuple[np.ndarray, np.ndarray]:
    m = rng.integers(2**30, 2**31, c) * rng.choice(np.array([1, 1, -1]), c)
    m[: c // 3] = rng.choice(np.array([-(2**31), 2**31 - 1, -1, 0, 1]), c // 3)
    if shifts == "fast":  # every shift >= 33: the SMMLA path; 33 and 62 are its ends
        s = rng.choice(np.array([33, 34, 36, 37, 38, 40, 62]), c)
    else:  # one channel below 33: the whole layer takes bp_emit
        s = rng.choice(np.array([36, 37, 38]), c)
        s[rng.integers(0, c)] = rng.choice(np.array([0, 1, 31, 32]))
    return m.astype(np.int64), s.astype(np.int64)


@pytest.mark.parametrize("c", [4, 7, 13])
@pytest.mark.parametrize(("in_signed", "out_signed", "clamp"),
                         [(False, False, None), (False, False, (0, 100)), (True, False, None), (False, True, None),
                          (True, True, (-5, 90))])
@pytest.mark.parametrize("shifts", ["fast", "mixed"])
def test_depthwise_8bit_out_paths(c: int, in_signed: bool, out_signed: bool, clamp, shifts: str) -> None:
    rng = np.random.default_rng(c * 100 + in_signed * 10 + out_signed + (clamp is not None) * 3 + len(shifts))
    lo, hi = clamp if clamp else (None, None)
    for stored, view in ((8, 8), (8, 4), (4, 2), (2, 2)):
        q = LayerQuant(ActFormat(8, in_signed), ActFormat(8, out_signed), stored, view, lo, hi)
        xlo, xhi = q.inp.range
        wlo, whi = ActFormat(stored, True).range
        for (kh, kw), win in DW_CASES:
            for h, w in ((7, 6), (2, 2), (1, 5)):
                try:
                    win.out_size(h, w, kh, kw)
                except ValueError:
                    continue
                m, s = _dw_requant(rng, c, shifts)
                x = rng.integers(xlo, xhi + 1, (h, w, c))
                wts = rng.integers(wlo, whi + 1, (kh, kw, c))
                bias = rng.integers(-3000, 3000, c)
                compare("depthwise_conv2d", x, wts, bias, m, s, q, win)
                # extremes: the largest accumulators, saturating both ends of the clamp
                xe = np.full((h, w, c), xlo if in_signed else xhi)
                compare("depthwise_conv2d", xe, np.full((kh, kw, c), wlo), bias, m, s, q, win)
                compare("depthwise_conv2d", xe, np.full((kh, kw, c), whi), -bias, m, s, q, win)


@pytest.mark.parametrize("c", [4, 7])
@pytest.mark.parametrize(("in_bits", "in_signed"), [(8, False), (8, True), (4, False), (2, False), (4, True)])
@pytest.mark.parametrize(("out_bits", "out_signed", "tight"), [(8, False, True), (4, False, False), (4, True, True),
                                                               (2, False, False), (2, True, False)])
@pytest.mark.parametrize("shifts", ["fast", "mixed"])
def test_depthwise_packed_paths(c: int, in_bits: int, in_signed: bool, out_bits: int, out_signed: bool, tight: bool,
                                shifts: str) -> None:
    # Unsigned 4/2-bit inputs in the row runs (signed ones take the portable loop), and 2/4/8-bit
    # outputs whose groups of four values fill whole bytes, next to the bp_emit tail channels.
    rng = np.random.default_rng(c * 1000 + in_bits * 100 + in_signed * 50 + out_bits * 10 + out_signed + len(shifts))
    out = ActFormat(out_bits, out_signed)
    lo, hi = out.range
    clamp = (lo + 1, hi - 1) if tight else (None, None)
    for stored, view in ((8, 8), (4, 2)):
        q = LayerQuant(ActFormat(in_bits, in_signed), out, stored, view, *clamp)
        xlo, xhi = q.inp.range
        wlo, whi = ActFormat(stored, True).range
        for (kh, kw), win in DW_CASES:
            for h, w in ((7, 6), (2, 2)):
                try:
                    win.out_size(h, w, kh, kw)
                except ValueError:
                    continue
                m, s = _dw_requant(rng, c, shifts)
                s = np.where((s >= 33) & (s < 60), s + 3, s)  # spread the outputs over the small ranges
                bias = rng.integers(-300, 300, c)
                x = rng.integers(xlo, xhi + 1, (h, w, c))
                compare("depthwise_conv2d", x, rng.integers(wlo, whi + 1, (kh, kw, c)), bias, m, s, q, win)
                xe = np.full((h, w, c), xlo if in_signed else xhi)
                compare("depthwise_conv2d", xe, np.full((kh, kw, c), wlo), bias, m, s, q, win)


@pytest.mark.parametrize(("in_signed", "out_signed", "clamp"),
                         [(False, False, None), (True, False, (0, 100)), (False, True, None), (True, True, (-7, 60))])
@pytest.mark.parametrize("shifts", ["fast", "mixed"])
def test_fully_connected_8bit_out_paths(in_signed: bool, out_signed: bool, clamp, shifts: str) -> None:
    # W8A8 4-row blocks, the 1-3 row tails, and 8-bit outputs through SMMLA (s >= 33) or bp_requant
    rng = np.random.default_rng(in_signed * 8 + out_signed * 4 + (clamp is not None) * 2 + len(shifts))
    lo, hi = clamp if clamp else (None, None)
    for view in (8, 4):
        q = LayerQuant(ActFormat(8, in_signed), ActFormat(8, out_signed), 8, view, lo, hi)
        xlo, xhi = q.inp.range
        for k in (1, 3, 4, 7, 64, 65):
            for cout in (1, 2, 3, 4, 5, 6, 7, 10):
                m, s = _dw_requant(rng, cout, shifts)
                bias = rng.integers(-5000, 5000, cout)
                compare("fully_connected", rng.integers(xlo, xhi + 1, k), rng.integers(-128, 128, (cout, k)), bias,
                        m, s, q)
                compare("fully_connected", np.full(k, xlo if in_signed else xhi), np.full((cout, k), -128), bias, m,
                        s, q)


@pytest.mark.parametrize(("in_bits", "in_signed"), [(8, False), (4, True), (2, True)])
@pytest.mark.parametrize("out_bits", [8, 4, 32])
def test_depthwise_per_channel_fallback(in_bits: int, in_signed: bool, out_bits: int) -> None:
    # More taps than the packed-weight table (8x7 = 56 > 49) with 8-bit input, and signed sub-byte
    # inputs: every channel through the per-channel loop of the DSP kernel.
    rng = np.random.default_rng(in_bits * 10 + out_bits + in_signed)
    q = LayerQuant(ActFormat(in_bits, in_signed), ActFormat(out_bits, out_bits == 32), 8, 8)
    xlo, xhi = q.inp.range
    for (kh, kw), win, c in (((8, 7), Window(1, 1, 3, 4, 3, 3), 5), ((3, 3), Window.same(3), 6)):
        m, s = _dw_requant(rng, c, "fast")
        x = rng.integers(xlo, xhi + 1, (9, 8, c))
        compare("depthwise_conv2d", x, rng.integers(-128, 128, (kh, kw, c)), rng.integers(-99, 99, c), m, s, q, win)


# Weights stored at 2 bits (the view is the code): the table-driven SMLAD path for any input width,
# and the packed 2-bit path (offset codes from a table) for unsigned 2-bit inputs. K = KH*KW*Cin
# covers K % 4 tails (partially used last weight byte), the 7-SMLAD extraction period, odd pixel and
# channel counts, and all-max / all-min operands.
@pytest.mark.parametrize(("in_bits", "signed"), [(8, False), (8, True), (4, False), (4, True), (2, False), (2, True)])
@pytest.mark.parametrize("cin", [1, 2, 3, 4, 5, 8, 16, 29, 32])
def test_conv_2bit_storage_path(in_bits: int, signed: bool, cin: int) -> None:
    rng = np.random.default_rng(cin * 10 + in_bits + signed)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 2, 2)
    lo, hi = q.inp.range
    for cout, hw in ((1, 3), (2, 4), (5, 5)):
        z = np.zeros(cout, np.int64)
        b = rng.integers(-99, 99, cout)
        x = rng.integers(lo, hi + 1, (hw, hw + 1, cin))
        for win in (Window.same(3), Window(2, 1, 0, 1, 1, 0)):
            compare("conv2d", x, rng.integers(-2, 2, (cout, 3, 3, cin)), b, z, z, q, win)
        for xv, wv in ((lo, -2), (hi, -2), (hi, 1), (lo, 1)):
            compare("conv2d", np.full((hw, hw, cin), xv), np.full((cout, 3, 3, cin), wv), z, z, z, q,
                    Window.same(3))
        for kk in (1, 2):  # K = cin and 4 * cin
            compare("conv2d", x, rng.integers(-2, 2, (cout, kk, kk, cin)), b, z, z, q, Window())


@pytest.mark.parametrize("cin", [1, 3, 4, 7, 16, 27, 28, 29, 32, 57, 64])
@pytest.mark.parametrize("out_bits", [2, 4, 8])
def test_conv_2bit_storage_requantized(cin: int, out_bits: int) -> None:
    # Requantized packed outputs (the channels sharing an output byte are stored together).
    rng = np.random.default_rng(cin * 7 + out_bits)
    for in_bits in (2, 8):
        q = LayerQuant(ActFormat(in_bits), ActFormat(out_bits), 2, 2)
        for cout in (3, 4, 8):
            x = rng.integers(0, 2**in_bits, (4, 5, cin))
            w = rng.integers(-2, 2, (cout, 3, 3, cin))
            m = rng.integers(2**30, 2**31, cout)
            s = rng.integers(30 + in_bits // 2, 38, cout)
            compare("conv2d", x, w, rng.integers(-50, 50, cout), m, s, q, Window.same(3))


# 4- and 2-bit views of 8-bit codes on the interleaved-patch W8 loop (masked codes, exact final
# shift): K % 4 tails, odd pixel and channel counts, extreme and low-bit-set codes.
@pytest.mark.parametrize("wv", [4, 2])
@pytest.mark.parametrize(("in_bits", "signed"), [(8, False), (8, True), (4, False), (4, True), (2, False), (2, True)])
@pytest.mark.parametrize("cin", [1, 3, 4, 5, 16, 28, 29, 32, 56])
@pytest.mark.parametrize("rnd", [False, True])
def test_conv_narrow_views_of_8bit(wv: int, in_bits: int, signed: bool, cin: int, rnd: bool) -> None:
    # rnd: the rounded views (QADD8 before the AND; the W8R loop's odd and even group counts),
    # the codes at the rounding edges and the saturating top codes
    rng = np.random.default_rng(wv * 1000 + cin * 10 + in_bits + signed)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 8, wv, w_round=rnd)
    lo, hi = q.inp.range
    for cout, hw in ((1, 3), (2, 4), (5, 5)):
        z = np.zeros(cout, np.int64)
        b = rng.integers(-99, 99, cout)
        x = rng.integers(lo, hi + 1, (hw, hw + 1, cin))
        for win in (Window.same(3), Window(2, 1, 0, 1, 1, 0)):
            compare("conv2d", x, rng.integers(-128, 128, (cout, 3, 3, cin)), b, z, z, q, win)
        for xv, wval in ((lo, -128), (hi, -128), (hi, 127), (lo, 127), (hi, -113)):
            compare("conv2d", np.full((hw, hw, cin), xv), np.full((cout, 3, 3, cin), wval), z, z, z, q,
                    Window.same(3))
        for kk in (1, 2):
            compare("conv2d", x, rng.integers(-128, 128, (cout, kk, kk, cin)), b, z, z, q, Window())
        if rnd:
            compare("conv2d", x, edge_codes(rng, (cout, 3, 3, cin)), b, z, z, q, Window.same(3))
            compare("conv2d", x, edge_codes(rng, (cout, 1, 1, cin)), b, z, z, q, Window())
            for wval in EDGE8_FILLS:
                compare("conv2d", np.full((hw, hw, cin), hi), np.full((cout, 3, 3, cin), wval), z, z, z, q,
                        Window.same(3))


# The first-layer path of the DSP conv2d (one unsigned 8-bit input channel, 3x3, stride 1, an unsigned
# output with the full clamp and every shift >= 33): pixel pairs from one word per kernel row, the
# border columns in C, the vertical padding as zeroed kernel rows (pads up to 3, all rows in the
# padding), widths below 4 (no pairs) and odd, sub-byte outputs ORed channel by channel (Cout not a
# multiple of the values per byte), every view of 8-bit codes. The last cases leave the path (a shift
# below 33, a narrower clamp, a signed output, stride 2) and must give the same results.
C1_WINDOWS = [Window.same(3), Window(), Window(1, 1, 2, 2, 2, 2), Window(1, 1, 0, 1, 1, 0), Window(1, 1, 1, 0, 0, 1),
              Window(1, 1, 3, 0, 3, 0), Window(1, 1, 0, 3, 0, 3), Window(1, 1, 2, 2, 1, 1), Window(1, 1, 0, 0, 1, 1),
              Window(1, 1, 3, 1, 1, 1)]
# even widths >= 4 with pad 1 left and right: the band asm on the board
C1_SIZES = [(3, 3), (3, 4), (4, 5), (5, 8), (7, 9), (6, 2), (9, 28), (4, 6)]


def c1_geometries():
    """(window, h, w) for every C1_WINDOWS x C1_SIZES pair that has an output."""
    for win in C1_WINDOWS:
        for h, w in C1_SIZES:
            try:
                win.out_size(h, w, 3, 3)
            except ValueError:
                continue
            yield win, h, w


def _c1_requant(rng: np.random.Generator, cout: int, out_bits: int, k: str) -> tuple[np.ndarray, np.ndarray]:
    m = rng.integers(2**30, 2**31, cout) * rng.choice(np.array([1, 1, -1]), cout)
    m[: cout // 3] = rng.choice(np.array([-(2**31), 2**31 - 1, -1, 0, 1]), cout // 3)
    # |acc| up to ~2^18 times |M| ~ 2^30.5: shifts 34..47 spread the outputs over 0 .. 2^b - 1 and both ends
    s = rng.integers(34, 48, cout)
    s[: max(1, cout // 4)] = rng.choice(np.array([33, 34, 62]), max(1, cout // 4))
    if k == "mixed":
        s[rng.integers(0, cout)] = rng.choice(np.array([0, 20, 32]))
    return m.astype(np.int64), s.astype(np.int64)


@pytest.mark.parametrize("view", [8, 4, 2])
@pytest.mark.parametrize("out_bits", [8, 4, 2])
@pytest.mark.parametrize("cout", [1, 3, 5, 16])
def test_conv_first_layer_path(view: int, out_bits: int, cout: int) -> None:
    rng = np.random.default_rng(view * 100 + out_bits * 10 + cout)
    q = LayerQuant(ActFormat(8), ActFormat(out_bits), 8, view)
    for win, h, w in c1_geometries():
        m, s = _c1_requant(rng, cout, out_bits, "fast")
        bias = rng.integers(-3000, 3000, cout)
        x = rng.integers(0, 256, (h, w, 1))
        compare("conv2d", x, rng.integers(-128, 128, (cout, 3, 3, 1)), bias, m, s, q, win)
        for xv, wv in ((255, -128), (255, 127), (255, -113), (0, 127)):
            compare("conv2d", np.full((h, w, 1), xv), np.full((cout, 3, 3, 1), wv), bias, m, s, q, win)
            compare("conv2d", np.full((h, w, 1), xv), np.full((cout, 3, 3, 1), wv), -bias, m, s, q, win)
        # one channel per sign: the rows alternate 0 / 255 (each kernel row weighted differently)
        xs = np.where(np.arange(h)[:, None, None] % 2 == 0, 255, 0) * np.ones((h, w, 1), np.int64)
        compare("conv2d", xs, rng.integers(-128, 128, (cout, 3, 3, 1)), bias, m, s, q, win)


@pytest.mark.parametrize("view", [8, 2])
@pytest.mark.parametrize(("out", "clamp", "shifts", "stride"),
                         [(ActFormat(8), None, "mixed", 1), (ActFormat(8), (0, 100), "fast", 1),
                          (ActFormat(4, True), None, "fast", 1), (ActFormat(32, True), None, "fast", 1),
                          (ActFormat(2), None, "fast", 2), (ActFormat(4), (1, 15), "fast", 1)])
def test_conv_first_layer_outside_path(view: int, out: ActFormat, clamp, shifts: str, stride: int) -> None:
    rng = np.random.default_rng(view + out.bits * 3 + stride)
    lo, hi = clamp if clamp else (None, None)
    q = LayerQuant(ActFormat(8), out, 8, view, lo, hi)
    for h, w in ((5, 8), (9, 28)):
        for cout in (3, 16):
            m, s = _c1_requant(rng, cout, 8 if out.bits == 32 else out.bits, shifts)
            bias = rng.integers(-3000, 3000, cout)
            compare("conv2d", rng.integers(0, 256, (h, w, 1)), rng.integers(-128, 128, (cout, 3, 3, 1)), bias, m, s,
                    q, Window.same(3, stride))


# The W8A8 fully connected path: blocks of 5 rows where they remove the tail (out_features % 4 of
# them when 5 * that <= out_features: 5, 9, 10, 13, 14, 15), blocks of 4, a 1-3 row tail; the asm
# loops take two groups of 4 inputs per iteration and enter at the second for an odd group count
# (K = 4, 12, 68), then the K % 4 tail (K = 3, 65). Outputs: 8-bit with the full clamp (USAT/SSAT),
# a narrower clamp, 4 and 2 bits, int32 logits; shifts below and above 33.
FC_W8A8_OUTS = [(ActFormat(8), None), (ActFormat(8, True), None), (ActFormat(8), (0, 100)),
                (ActFormat(8, True), (-9, 90)), (ActFormat(4), None), (ActFormat(2, True), None),
                (ActFormat(32, True), None)]


@pytest.mark.parametrize("in_signed", [False, True])
@pytest.mark.parametrize(("out", "clamp"), FC_W8A8_OUTS)
def test_fully_connected_w8a8_blocks(in_signed: bool, out: ActFormat, clamp) -> None:
    rng = np.random.default_rng(in_signed * 100 + out.bits * 10 + out.signed + (clamp is not None) * 3)
    lo, hi = clamp if clamp else (None, None)
    q = LayerQuant(ActFormat(8, in_signed), out, 8, 8, lo, hi)
    xlo, xhi = q.inp.range
    for k in (3, 4, 8, 12, 64, 65, 68):
        for cout in (1, 3, 4, 5, 9, 10, 13, 14, 15):
            m, s = _dw_requant(rng, cout, "fast" if (k + cout) % 3 else "mixed")
            if out.bits < 8:
                s = np.where((s >= 33) & (s < 60), s + 4, s)
            bias = rng.integers(-5000, 5000, cout)
            compare("fully_connected", rng.integers(xlo, xhi + 1, k), rng.integers(-128, 128, (cout, k)), bias, m, s, q)
            compare("fully_connected", np.full(k, xlo if in_signed else xhi), np.full((cout, k), -128), bias, m, s, q)
            compare("fully_connected", np.full(k, xhi), np.full((cout, k), 127), -bias, m, s, q)


FC_VIEW_CASES = [(4, 8, False), (4, 8, True), (4, 4, False), (2, 8, False), (2, 8, True), (2, 2, False), (4, 2, False)]


def fc_view_layers(view: int, in_bits: int, signed: bool, rnd: bool = False):
    """Fully connected cases for 4/2-bit views of 8-bit codes on 8-bit or unsigned 4/2-bit inputs,
    shared by the host test below and the on-board one: blocks of four rows take the asm loop
    (dot_4rows_view: one AND per weight word, odd and even group counts, K % 4 tails), the 1-3 rows
    after them the C loop; codes with their low bits set (dropped by the view), extreme operands.
    rnd: the rounded views (QADD8 before the AND), plus codes at the rounding edges and the saturating
    top codes. Yields ``(x, w, bias, mult, shift, q)``."""
    rng = np.random.default_rng(view * 100 + in_bits * 2 + signed)
    for out in (ActFormat(32, True), ActFormat(8), ActFormat(4)):
        q = LayerQuant(ActFormat(in_bits, signed), out, 8, view, w_round=rnd)
        lo, hi = q.inp.range
        for k in (3, 4, 5, 8, 12, 63, 64, 258):
            for cout in (4, 5, 8):
                m, s = _dw_requant(rng, cout, "fast")
                bias = rng.integers(-999, 999, cout)
                yield rng.integers(lo, hi + 1, k), rng.integers(-128, 128, (cout, k)), bias, m, s, q
                for xv, wv in ((lo, -128), (hi, -128), (hi, 127), (hi, 63)):
                    yield np.full(k, xv), np.full((cout, k), wv), bias, m, s, q
                if rnd:
                    yield rng.integers(lo, hi + 1, k), edge_codes(rng, (cout, k)), bias, m, s, q
                    for wv in (120, 96, 32, -120):
                        yield np.full(k, hi), np.full((cout, k), wv), bias, m, s, q


@pytest.mark.parametrize(("view", "in_bits", "signed"), FC_VIEW_CASES)
@pytest.mark.parametrize("rnd", [False, True])
def test_fully_connected_views_of_8bit(view: int, in_bits: int, signed: bool, rnd: bool) -> None:
    for layer in fc_view_layers(view, in_bits, signed, rnd):
        compare("fully_connected", *layer)


FC_S2_INPUTS = [(8, False), (8, True), (4, False), (4, True), (2, False), (2, True)]


def fc_s2_layers(in_bits: int, signed: bool):
    """Fully connected cases with weights stored at 2 bits, shared by the host test below and the
    on-board one: 8-bit inputs (signed or not) and unsigned 4/2-bit inputs take the table/SMLAD loop
    (dot_1x4_s2_impl), signed 4/2-bit ones the portable loop; K % 4 tails (a partly used last weight
    byte), Cout not a multiple of 4, extreme codes. Yields ``(x, w, bias, mult, shift, q)``."""
    rng = np.random.default_rng(in_bits * 2 + signed)
    for out in (ActFormat(32, True), ActFormat(8), ActFormat(2)):
        q = LayerQuant(ActFormat(in_bits, signed), out, 2, 2)
        lo, hi = q.inp.range
        for k in (1, 3, 4, 5, 64, 65, 258):
            for cout in (1, 3, 5, 8):
                m, s = _dw_requant(rng, cout, "fast")
                bias = rng.integers(-99, 99, cout)
                yield rng.integers(lo, hi + 1, k), rng.integers(-2, 2, (cout, k)), bias, m, s, q
                for xv, wv in ((lo, -2), (hi, -2), (hi, 1)):
                    yield np.full(k, xv), np.full((cout, k), wv), bias, m, s, q


@pytest.mark.parametrize(("in_bits", "signed"), FC_S2_INPUTS)
def test_fully_connected_2bit_storage(in_bits: int, signed: bool) -> None:
    for layer in fc_s2_layers(in_bits, signed):
        compare("fully_connected", *layer)


# The packed 2-bit path (unsigned 2-bit inputs; 2-bit views of 8-bit codes or 2-bit storage) with
# requantized outputs: K = 9 * Cin puts every count of groups left after the 7-group runs (0..6, the
# TBB entries of the asm) behind Cin % 4 == 0 patches (USADA8 sums; Cin % 16 == 0 inside the image:
# the word-at-a-time patch rows) and Cin % 4 != 0 ones (K % 4 tails); 1x1 with Cin = 1840 crosses the
# 64-run flush of the 16-bit sums. Outputs: USAT at 2/4/8
# bits (every shift >= 33), a narrower clamp, signed outputs, a shift below 33 (bp_requant), Cout not
# a multiple of the values per byte (read-modify-write), int32; pixel counts not a multiple of 4.
PACKED_CIN = [4, 8, 12, 16, 20, 24, 28, 32, 48, 3, 5, 7]
PACKED_OUTS = [("usat", 2), ("usat", 4), ("usat", 8), ("clamp", 4), ("signed", 8), ("signed", 2), ("low_shift", 2),
               ("odd_cout", 2), ("int32", 32)]


def packed_case(rng: np.random.Generator, kind: str, ob: int, cin: int, k: int = 3):
    """(x, w, bias, mult, shift, q) for one packed 2-bit case; kind as in PACKED_OUTS."""
    out = ActFormat(ob, kind in ("signed", "int32"))
    lo_hi = ()
    if kind == "clamp":
        lo_hi = (1, out.range[1] - 2)
    cout = 7 if kind == "odd_cout" else int(rng.choice([4, 8]))
    kk = k * k * cin
    mult = rng.integers(2**30, 2**31, cout) * rng.choice(np.array([1, 1, -1]), cout)
    mult[0] = rng.choice(np.array([-(2**31), 2**31 - 1]))
    # |acc| up to ~9 * K; a shift near 31 + log2(K) spreads the outputs over the range and both ends
    base = 31 + int(np.log2(kk)) - (ob if ob < 32 else 0) + 2
    shift = np.clip(base + rng.integers(-2, 3, cout), 33, 62)
    shift[-1] = rng.choice(np.array([33, 62, base]))
    if kind == "low_shift":
        shift[cout // 2] = 20
    bias = rng.integers(-kk, kk + 1, cout)
    return bias, mult.astype(np.int64), shift.astype(np.int64), out, lo_hi, cout


def packed_layers(stored: int, kind: str, ob: int, rnd: bool = False):
    """The packed 2-bit conv cases shared by the host test below and the on-board test: per geometry,
    random operands, then the largest field sums (x = 3, view +1: w' = 3) and the smallest (view -2:
    w' = 0). rnd (8-bit codes): the rounded 2-bit view, plus codes at the rounding edges and the
    saturating top codes (96..127: view +1). Yields ``(x, w, bias, mult, shift, q, win)``."""
    rng = np.random.default_rng(stored * 100 + ob * 10 + len(kind))
    wlo, whi = (-128, 127) if stored == 8 else (-2, 1)
    cases = [(cin, 3, Window.same(3), (3, 5)) for cin in PACKED_CIN]
    # pixel counts 1 mod 4 (25: the last block is one pixel, dot_1x1_packed_sum) for every count of
    # groups after the runs and Cin = 7, 1 (K % 4 tails; interior windows of Cin % 4 != 0 patches),
    # and 2 mod 4 (18)
    cases += [(cin, 3, Window.same(3), (5, 5)) for cin in (4, 8, 12, 16, 20, 24, 28, 7, 1)]
    cases += [(cin, 3, Window.same(3), (3, 6)) for cin in (8, 28)]
    cases += [(12, 3, Window.same(3, 2), (5, 6)), (16, 3, Window.same(3, 2), (6, 7)),
              (8, 3, Window(1, 1, 2, 2, 2, 2), (2, 3)), (1840, 1, Window(), (2, 2))]
    # 1x1 with K < 28 (no whole run: bp_pk_blk_* goes from the rem groups' entry straight to the
    # requantization) and K = 28 (one run, no rem groups); 3x3 pixels = blocks of 4, 4, 1. K = 112 (4
    # runs) and 228 (8 runs + 1 group): the entries of the unrolled runs loop at runs % 8 == 4 and 0
    # (the other residues come from the 3x3 cases above)
    cases += [(cin, 1, Window(), (3, 3)) for cin in (4, 12, 24, 28, 112, 228)]
    for cin, k, win, (h, w) in cases:
        bias, mult, shift, out, lo_hi, cout = packed_case(rng, kind, ob, cin, k)
        q = LayerQuant(ActFormat(2), out, stored, 2, *lo_hi, w_round=rnd)
        x = rng.integers(0, 4, (h, w, cin))
        yield x, rng.integers(wlo, whi + 1, (cout, k, k, cin)), bias, mult, shift, q, win
        for wv in (whi, wlo):
            yield np.full((h, w, cin), 3), np.full((cout, k, k, cin), wv), bias, mult, shift, q, win
        if rnd:
            yield x, edge_codes(rng, (cout, k, k, cin)), bias, mult, shift, q, win
            yield np.full((h, w, cin), 3), np.full((cout, k, k, cin), 96), bias, mult, shift, q, win


@pytest.mark.parametrize(("stored", "rnd"), [(8, False), (2, False), (8, True)])
@pytest.mark.parametrize(("kind", "ob"), PACKED_OUTS)
def test_conv_packed_2bit_requantized(stored: int, kind: str, rnd: bool, ob: int) -> None:
    for layer in packed_layers(stored, kind, ob, rnd):
        compare("conv2d", *layer)


# Lifted shifts: the DSP fast paths requantize with SMMLA, which needs a shift s >= 33; a channel with
# s < 33 takes acc << j, j = 33 - s, and the shift 33 (exactly equal) where |acc| * 2^j fits int32.
# The packed 2-bit conv, the first-layer conv (conv_c1) and the depthwise groups check the layer once
# ((|bias| + K * xmax * wmax) * 2^j <= INT32_MAX per channel, and j <= 16 - view where the weights are
# int16 times 2^j) and otherwise take their general path; the FC requantization checks each value (the
# W8/W8R conv loops keep bp_requant for s < 33: the "w8" group checks them next to the lifted ones).
# Modes: "small" biases; "edge": each lifted channel's |bias| at its limit
# (accumulators near 2^31 after the lift, multipliers so small that the outputs stay inside the range);
# "over": one channel's bias one past its limit, one so far past it that any lift would overflow: the
# refusal; "wide" (conv_c1, depthwise): one j = 33 - s past 16 - view, the refusal of int16 overflow.
LIFT_MODES = ("small", "edge", "over")
FOLD_MODES = ("small", "edge", "over", "wide")
INT32_MAX = 2**31 - 1


def _lift_requant(rng: np.random.Generator, cout: int, products: int, out_max: int, mode: str, jmax: int = 31,
                  lifted: tuple = (29, 30, 31, 32)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bias, mult, shift) with shifts below 33 mixed with >= 33 (at least one 32 and one 33);
    ``products`` = K * xmax * wmax, ``jmax`` the largest j the path folds."""
    s = rng.choice(np.array([*lifted, 33, 34, 35]), cout)
    s[0], s[-1] = 32, 33
    if cout > 2:
        s[1] = min(lifted)
    typical = max(products // 4, 1)
    m = (out_max * 2.0 ** s / typical * rng.uniform(0.3, 3.0, cout)).clip(1, INT32_MAX).astype(np.int64)
    m *= rng.choice(np.array([1, 1, 1, -1]), cout)
    bias = rng.integers(-typical, typical + 1, cout)
    if mode in ("edge", "over"):
        for c in np.flatnonzero(s < 33):
            j = 33 - int(s[c])
            limit = INT32_MAX // 2**j - products
            if limit <= 0:
                continue
            bias[c] = limit * rng.choice(np.array([1, -1]))
            # acc * M / 2^s ~ 2^31 / 2^33 * M = M / 4: outputs inside the range
            m[c] = rng.integers(1, 4 * out_max + 2) * rng.choice(np.array([1, 1, -1]))
        if mode == "over":
            # the last lifted channel one past its limit; channel 1 so far past it that acc << j
            # overflows whatever the sum: a lift there would be wrong
            c = int(np.flatnonzero(s < 33)[-1])
            j = 33 - int(s[c])
            bias[c] = np.sign(bias[c] or 1) * (INT32_MAX // 2**j - products + 1)
            if cout > 2 and s[1] < 33:
                bias[1] = np.sign(bias[1] or 1) * (INT32_MAX // 2 ** (33 - int(s[1])) + products + 1)
    if mode == "wide":  # one shift beyond the path's largest j (jmax), small biases
        s[2] = 32 - jmax
    return bias, m, s.astype(np.int64)


def _spread(op: str, args: tuple, rng: np.random.Generator) -> tuple:
    """args with the bias and multiplier of every channel not at its headroom limit (|bias| < 2^20)
    chosen from the layer's int32 accumulators, so that its outputs cover the clamp range (a few
    saturating at each end) and each rounding step shows."""
    x, w, bias, m, s, q, *win = args
    q32 = LayerQuant(q.inp, ActFormat(32, True), q.w_stored, q.w_view, w_round=q.w_round)
    z = np.zeros(len(bias), np.int64)
    acc = getattr(ops, op)(x, w, z, z, z, q32, *win).reshape(-1, len(bias))
    lo, hi = q.clamp
    bias, m = bias.copy(), m.copy()
    for c in np.flatnonzero(np.abs(bias) < 2**20):
        a = acc[:, c]
        if len(a) == 1:  # one value per channel (FC): a random target output, half-step jitter
            m[c] = min(max(int(rng.integers(2**29, 2**31) * 2.0 ** (min(int(s[c]), 33) - 33)), 1), INT32_MAX)
            target = rng.uniform(lo - 0.5, hi + 0.5)
            bias[c] = int(round(target * 2.0 ** int(s[c]) / m[c])) - int(a[0])
            continue
        r = max(int(a.max() - a.min()), 1)
        bias[c] = -int(a.min()) + rng.integers(-r // 8, r // 8 + 1)
        scale = (hi - lo + 1) / r * rng.uniform(0.8, 1.2)  # output = lo .. hi over the accumulators
        mc = int(round(scale * 2.0 ** int(s[c])))
        bias[c] += int(lo / scale) if scale > 0 else 0
        m[c] = min(max(mc, 1), INT32_MAX)
    return (x, w, bias, m, s, q, *win)


def lift_layers(group: str, board: bool = False):
    """lift_layers_raw with spread outputs (_spread)."""
    rng = np.random.default_rng(99)
    for op, args in lift_layers_raw(group, board):
        yield op, _spread(op, args, rng)


def lift_layers_raw(group: str, board: bool = False):
    """Cases with lifted shifts, yields ``(op, args)``. group: "packed" (the packed 2-bit conv: asm
    for whole groups, the one-pixel block, the C loop for K % 4 != 0), "c1" (conv_c1), "dw" (depthwise
    groups), "fc" (FC views and W8A8) or "w8" (the W8/W8R conv loops, bp_requant below 33). ``board``: the
    few cases of the on-board test."""
    rng = np.random.default_rng(len(group) * 7 + board)
    modes = LIFT_MODES
    if group == "packed":
        stores = ((8, False), (2, False), (8, True))
        outs = (("usat", 2), ("usat", 8), ("clamp", 4)) if not board else (("usat", 2), ("clamp", 4))
        geos = ((16, (5, 5)), (7, (3, 6)), (32, (4, 4))) if not board else ((16, (5, 5)),)
        for (stored, rnd), (kind, ob), (cin, (h, w)), mode in itertools.product(stores, outs, geos, modes):
            if board and (stored, rnd) != (8, False) and mode == "small":
                continue
            out = ActFormat(ob)
            lo_hi = (1, out.range[1] - 2) if kind == "clamp" else ()
            q = LayerQuant(ActFormat(2), out, stored, 2, *lo_hi, w_round=rnd)
            cout = 8
            kk = 9 * cin
            bias, m, s = _lift_requant(rng, cout, kk * 6, out.range[1], mode)
            wlo, whi = (-128, 127) if stored == 8 else (-2, 1)
            x = rng.integers(0, 4, (h, w, cin))
            yield "conv2d", (x, rng.integers(wlo, whi + 1, (cout, 3, 3, cin)), bias, m, s, q, Window.same(3))
            if not board:
                yield "conv2d", (np.full((h, w, cin), 3), np.full((cout, 3, 3, cin), whi), bias, m, s, q,
                                 Window.same(3))
    elif group == "c1":
        views = ((8, False), (2, False), (4, True))
        for (view, rnd), ob, mode in itertools.product(views, (8, 2) if not board else (2,), FOLD_MODES):
            q = LayerQuant(ActFormat(8), ActFormat(ob), 8, view, w_round=rnd)
            jmax = 16 - view
            lifted = tuple(range(max(33 - jmax, 2), 33))
            cout = 5
            bias, m, s = _lift_requant(rng, cout, 9 * 255 * 2 ** (view - 1), 2**ob - 1, mode, jmax, lifted)
            for h, w in ((6, 8), (5, 5)) if not board else ((6, 8),):
                x = rng.integers(0, 256, (h, w, 1))
                yield "conv2d", (x, rng.integers(-128, 128, (cout, 3, 3, 1)), bias, m, s, q, Window.same(3))
    elif group == "dw":
        cases = ((8, 8, 8), (2, 8, 2), (8, 4, 4)) if not board else ((8, 8, 8), (2, 8, 2))
        for (ib, view, ob), mode in itertools.product(cases, FOLD_MODES):
            q = LayerQuant(ActFormat(ib), ActFormat(ob), 8, view)
            c = 8
            jmax = 16 - view
            lifted = tuple(range(max(33 - jmax, 2), 33))
            bias, m, s = _lift_requant(rng, c, 9 * (2**ib - 1) * 2 ** (view - 1), 2**ob - 1, mode, jmax, lifted)
            for h, w in ((6, 7), (3, 2)) if not board else ((6, 7),):
                x = rng.integers(0, 2**ib, (h, w, c))
                yield "depthwise_conv2d", (x, rng.integers(-128, 128, (3, 3, c)), bias, m, s, q, Window.same(3))
    elif group == "fc":
        cases = ((8, 8, 8, 8), (2, 8, 2, 2), (2, 2, 2, 8), (4, 8, 4, 4)) if not board else ((8, 8, 8, 8),
                                                                                              (2, 2, 2, 8))
        for (ib, stored, view, ob), mode in itertools.product(cases, modes):
            q = LayerQuant(ActFormat(ib), ActFormat(ob), stored, view)
            for k, cout in ((64, 10), (576, 7)) if not board else ((576, 10),):
                bias, m, s = _lift_requant(rng, cout, k * (2**ib - 1) * 2 ** (view - 1), 2**ob - 1, mode,
                                           lifted=(2, 20, 29, 30, 31, 32))
                wlo, whi = ActFormat(stored, True).range
                yield "fully_connected", (rng.integers(0, 2**ib, k), rng.integers(wlo, whi + 1, (cout, k)), bias, m, s,
                                          q)
    else:  # "w8": 8-bit codes at their 8-bit view and 4-bit views (the W8 and W8R loops)
        cases = ((8, 8, False, 8), (4, 4, True, 4), (8, 4, False, 2)) if not board else ((8, 8, False, 8),)
        for (ib, view, rnd, ob), mode in itertools.product(cases, modes):
            q = LayerQuant(ActFormat(ib), ActFormat(ob), 8, view, w_round=rnd)
            cin, cout = 8, 6
            bias, m, s = _lift_requant(rng, cout, 9 * cin * (2**ib - 1) * 2 ** (view - 1), 2**ob - 1, mode,
                                       lifted=(10, 29, 31, 32))
            x = rng.integers(0, 2**ib, (5, 4, cin))
            yield "conv2d", (x, rng.integers(-128, 128, (cout, 3, 3, cin)), bias, m, s, q, Window.same(3))


@pytest.mark.parametrize("group", ["packed", "c1", "dw", "fc", "w8"])
def test_lifted_shifts(group: str) -> None:
    for op, args in lift_layers(group):
        compare(op, *args)


# Depthwise with unsigned 4/2-bit inputs: each group of four channels unpacks the input rows it needs
# into a stack ring of bytes (2*KH rows of IW pixels, 4 bytes each, at most DW_RING bytes) and runs the
# unsigned 8-bit row runs on it (the 3x3 asm block, the border pixels); layers whose ring would not fit
# keep unpacking per tap. Full-range unsigned 8/4/2-bit outputs store through USAT. Cases: KH 1..7 and
# KW != KH, strides 1..3 (stride_h > KH skips input rows), padding 0..2 (output rows and columns wholly
# in the padding), widths at the ring's limit and one past it, C % 4 tails, odd C at 4 bits (pixels at odd
# byte addresses), every output kind, all-max inputs against all-min and all-max weights.
DW_RING = 1024  # BP_DW_RING in kernels/src/opt/dsp/bp_depthwise_conv2d.c
DW_RING_KERNELS = ((1, 1), (1, 3), (2, 2), (3, 3), (3, 5), (4, 2), (5, 3), (6, 1), (7, 7))
DW_RING_WINDOWS = (Window(), Window(1, 1, 1, 1, 1, 1), Window(2, 2, 1, 0, 1, 0), Window(1, 2, 2, 2, 2, 2),
                   Window(3, 1, 0, 2, 2, 0), Window(2, 3, 2, 1, 0, 2))
# (out format, clamp): USAT at 8, 4 and 2 bits, a narrower clamp, signed outputs, int32 (no fast path)
DW_RING_OUTS = ((ActFormat(8), None), (ActFormat(4), None), (ActFormat(2), None), (ActFormat(8), (3, 200)),
                (ActFormat(4, True), (-7, 6)), (ActFormat(2, True), None), (ActFormat(32, True), None))
DW_RING_STORES = ((8, 8, False), (8, 4, True), (4, 2, False), (2, 2, False), (8, 2, False))


def dw_ring_widths(kh: int) -> tuple[int, ...]:
    """Input widths for kernel height kh: narrow ones, the widest whose ring fits, one past it."""
    widest = DW_RING // (8 * kh)
    return (1, 5, 6, widest, widest + 1)


def dw_ring_layers(in_bits: int, outs: tuple, board: bool = False):
    """Depthwise cases of unsigned ``in_bits`` inputs, as args tuples; ``outs``: (format, clamp) pairs,
    one layer each in turn. ``board``: two widths per kernel and window (a narrow one, and the widest
    that fits the ring or one past it) and one of the two all-max cases."""
    seed = in_bits * 1000 + sum(o.bits * 2 + o.signed + 7 * (cl is not None) for o, cl in outs) + board
    rng = np.random.default_rng(seed)
    q_in = ActFormat(in_bits)
    cs = (4, 8, 12, 5, 7, 13, 6)
    k = 0
    for (kh, kw), win in itertools.product(DW_RING_KERNELS, DW_RING_WINDOWS):
        widths = dw_ring_widths(kh)
        if board:
            widths = (widths[k % 3], widths[3 + k % 2])
        for w in widths:
            h = int(rng.integers(1, 8)) if w < 40 else int(rng.integers(kh, kh + 3))
            try:
                win.out_size(h, w, kh, kw)
            except ValueError:
                continue
            c = cs[k % len(cs)]
            stored, view, rnd = DW_RING_STORES[k % len(DW_RING_STORES)]
            out, clamp = outs[k % len(outs)]
            k += 1
            q = LayerQuant(q_in, out, stored, view, *(clamp or ()), w_round=rnd)
            wlo, whi = ActFormat(stored, True).range
            m, s = _dw_requant(rng, c, "fast")
            bias = rng.integers(-300, 300, c)
            x = rng.integers(0, 2**in_bits, (h, w, c))
            args = (x, rng.integers(wlo, whi + 1, (kh, kw, c)), bias, m, s, q, win)
            # outputs spread over the clamp range (_spread: its one-value case assumes s <= 33)
            spread = out.bits != 32 and np.prod(win.out_size(h, w, kh, kw)) > 1
            yield _spread("depthwise_conv2d", args, rng) if spread else args
            xe = np.full((h, w, c), 2**in_bits - 1)
            for wfill in (wlo, whi) if not board else ((wlo, whi)[k % 2],):
                args = (xe, np.full((kh, kw, c), wfill), bias, m, s, q, win)
                yield _spread("depthwise_conv2d", args, rng) if spread else args


@pytest.mark.parametrize("in_bits", [4, 2])
@pytest.mark.parametrize(("out", "clamp"), DW_RING_OUTS)
def test_depthwise_subbyte_ring(in_bits: int, out: ActFormat, clamp) -> None:
    for args in dw_ring_layers(in_bits, ((out, clamp),)):
        compare("depthwise_conv2d", *args)


def depthwise_batch(x: np.ndarray, w, bias, m, s, q: LayerQuant, win: Window, variant: str) -> np.ndarray:
    """bp_depthwise_conv2d on a batch x of shape (N, H, W, C) in one call (the cffi wrapper takes N = 1)."""
    from bitpath.ckernels import _Call
    from bitpath.ref.packing import pack, unpack

    n, h, wd, c = x.shape
    kh, kw, _ = np.shape(w)
    oh, ow = win.out_size(h, wd, kh, kw)
    call = _Call(variant)
    obytes = (c * q.out.bits + 7) // 8
    out = np.zeros((n * oh * ow, obytes), np.uint8)
    st = call.mod.lib.bp_depthwise_conv2d(
        call.window(win), call.quant(q), call.requant(np.asarray(m, np.int32), np.asarray(s, np.int32)),
        call.dims(n, h, wd, c), call.ptr(pack(x.reshape(-1, c), q.inp.bits, q.inp.signed), "uint8_t *"),
        call.dims(1, kh, kw, c), call.ptr(pack(np.reshape(w, (kh * kw, c)), q.w_stored, True), "uint8_t *"),
        call.ptr(np.asarray(bias, np.int32), "int32_t *"), call.dims(n, oh, ow, c), call.ptr(out, "void *"))
    assert st == 0
    return unpack(out, q.out.bits, q.out.signed, c).reshape(n, oh, ow, c)


def dw_batch_layers(board: bool = False):
    """Batches of 3 images (the ring restarts on each image), 4/2-bit inputs, every kind of output."""
    rng = np.random.default_rng(31 + board)
    for in_bits, (out, clamp), ((kh, kw), win) in itertools.product(
            (4, 2), DW_RING_OUTS[:5] if not board else DW_RING_OUTS[:3],
            (((3, 3), Window.same(3)), ((3, 2), Window(2, 1, 1, 0, 0, 1)), ((5, 5), Window(1, 1, 2, 2, 2, 2)))):
        c = 8 if kh == 3 else 7
        q = LayerQuant(ActFormat(in_bits), out, 8, 8, *(clamp or ()))
        m, s = _dw_requant(rng, c, "fast")
        x = rng.integers(0, 2**in_bits, (3, 6, 7, c))
        x[1] = 2**in_bits - 1
        yield x, rng.integers(-128, 128, (kh, kw, c)), rng.integers(-300, 300, c), m, np.minimum(s + 3, 62), q, win


def test_depthwise_subbyte_ring_batches() -> None:
    for x, w, bias, m, s, q, win in dw_batch_layers():
        want = np.stack([ops.depthwise_conv2d(xi, w, bias, m, s, q, win) for xi in x])
        for variant in ("ref", "dsp"):
            got = depthwise_batch(x, w, bias, m, s, q, win, variant)
            np.testing.assert_array_equal(got, want, err_msg=f"batch, C variant {variant!r}")
