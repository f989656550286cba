"""The first-layer conv path (conv_c1: one unsigned input channel, 3x3, stride 1) with 4-bit and 2-bit
inputs. With one channel every input pixel is a row of one byte holding its value in the low bits, so
the path reads them as uint8 values 0 .. 2^b - 1; only its headroom bound (which shifts it may lift)
depends on the input width. Host: the DSP variant's C logic against the numpy reference; board: the
band asm on the emulated Cortex-M4."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from kernel_check import compare
from test_dsp_paths import FOLD_MODES, INT32_MAX, _c1_requant, _lift_requant, _spread, c1_geometries
from test_on_board import _C1_CASES, _check, _values, board  # noqa: F401  (board: the fixture)

from bitpath.ref.formats import ActFormat, LayerQuant, Window


def _inputs(rng: np.random.Generator, in_bits: int, h: int, w: int) -> list[np.ndarray]:
    """Random pixels, the largest and smallest pixel everywhere, rows alternating max / 0."""
    top = 2**in_bits - 1
    rows = np.where(np.arange(h)[:, None, None] % 2 == 0, top, 0) * np.ones((h, w, 1), np.int64)
    return [rng.integers(0, top + 1, (h, w, 1)), np.full((h, w, 1), top), np.zeros((h, w, 1), np.int64), rows]


@pytest.mark.parametrize("in_bits", [4, 2])
@pytest.mark.parametrize(("stored", "view", "rnd"), [(8, 8, False), (8, 4, False), (8, 2, True), (4, 4, False),
                                                     (2, 2, False)])
@pytest.mark.parametrize("out_bits", [8, 2])
def test_first_layer_subbyte_input(in_bits: int, stored: int, view: int, rnd: bool, out_bits: int) -> None:
    rng = np.random.default_rng(in_bits * 1000 + stored * 100 + view * 10 + out_bits)
    q = LayerQuant(ActFormat(in_bits), ActFormat(out_bits), stored, view, w_round=rnd)
    wlo, whi = ActFormat(stored, True).range
    for win, h, w in c1_geometries():
        for cout in (3, 16):  # the one-channel band, 4 groups of 4
            m, s = _c1_requant(rng, cout, out_bits, "fast")
            bias = rng.integers(-300, 300, cout)
            for x in _inputs(rng, in_bits, h, w):
                compare("conv2d", x, rng.integers(wlo, whi + 1, (cout, 3, 3, 1)), bias, m, s, q, win)
            for wv in (wlo, whi):
                compare("conv2d", np.full((h, w, 1), 2**in_bits - 1), np.full((cout, 3, 3, 1), wv), -bias, m, s, q,
                        win)


def _lifted_layers(in_bits: int, on_board: bool = False):
    """Shifts below 33 lifted to 33 with the headroom of a sub-byte input (9 * (2^b - 1) * 2^(view-1)):
    biases at, one past and far past the limit, and a shift past the int16 limit of the weights."""
    rng = np.random.default_rng(in_bits * 7 + on_board)
    views = ((8, False), (2, False), (4, True))
    for (view, rnd), ob, mode in itertools.product(views, (8, 2) if not on_board else (2,), FOLD_MODES):
        q = LayerQuant(ActFormat(in_bits), ActFormat(ob), 8, view, w_round=rnd)
        jmax = 16 - view
        lifted = tuple(range(max(33 - jmax, 2), 33))
        bias, m, s = _lift_requant(rng, 5, 9 * (2**in_bits - 1) * 2 ** (view - 1), 2**ob - 1, mode, jmax, lifted)
        for h, w in ((6, 8), (5, 5)) if not on_board else ((6, 8),):
            x = rng.integers(0, 2**in_bits, (h, w, 1))
            args = (x, rng.integers(-128, 128, (5, 3, 3, 1)), bias, m, s, q, Window.same(3))
            yield "conv2d", _spread("conv2d", args, rng)
        # the whole bound reached: every pixel at its top, the weights at -128 (an interior accumulator
        # is bias - 9 * (2^b - 1) * 2^(view-1)); "over": each lifted channel's bias half the products
        # past its limit, so that a lift allowed by too loose a bound overflows
        products = 9 * (2**in_bits - 1) * 2 ** (view - 1)
        bx = -np.abs(bias)
        if mode == "over":
            for c in np.flatnonzero(s < 33):
                bx[c] = -(INT32_MAX // 2 ** (33 - int(s[c])) - products // 2)
        wx = np.full((5, 3, 3, 1), -128)
        yield "conv2d", (np.full((5, 6, 1), 2**in_bits - 1), wx, bx, m, s, q, Window.same(3))


@pytest.mark.parametrize("in_bits", [4, 2])
def test_first_layer_subbyte_lifted_shifts(in_bits: int) -> None:
    for op, args in _lifted_layers(in_bits):
        compare(op, *args)


@pytest.mark.parametrize("in_bits", [4, 2])
def test_first_layer_signed_subbyte_input_takes_the_general_path(in_bits: int) -> None:
    # signed codes in the low bits need a sign extension the uint8 path does not do
    rng = np.random.default_rng(in_bits)
    q = LayerQuant(ActFormat(in_bits, True), ActFormat(8), 8, 8)
    lo, hi = q.inp.range
    for h, w in ((6, 8), (28, 28)):
        m, s = _c1_requant(rng, 16, 8, "fast")
        for x in (rng.integers(lo, hi + 1, (h, w, 1)), np.full((h, w, 1), lo)):
            compare("conv2d", x, rng.integers(-128, 128, (16, 3, 3, 1)), rng.integers(-300, 300, 16), m, s, q,
                    Window.same(3))


@pytest.mark.emulator
@pytest.mark.parametrize("in_bits", [4, 2])
@pytest.mark.parametrize(("stored", "view", "rnd"), [(8, 8, False), (8, 2, True), (4, 4, False), (2, 2, False)])
@pytest.mark.parametrize("out_bits", [8, 4, 2])
def test_first_layer_subbyte_input_on_board(board, in_bits: int, stored: int, view: int, rnd: bool,  # noqa: F811
                                            out_bits: int) -> None:
    rng = np.random.default_rng(in_bits * 1000 + stored * 100 + view * 10 + out_bits)
    q = LayerQuant(ActFormat(in_bits), ActFormat(out_bits), stored, view, w_round=rnd)
    wlo, whi = ActFormat(stored, True).range
    top = 2**in_bits - 1
    for (h, w), win in _C1_CASES:
        for cout in (16, 6):
            mult = rng.integers(2**30, 2**31, cout) * rng.choice(np.array([1, 1, -1]), cout)
            mult[:2] = [-(2**31), 2**31 - 1]
            shift = rng.integers(30 - 2 * (8 - view), 44 - 2 * (8 - view), cout).clip(33, 62)
            shift[-2:] = [33, 62]
            bias = rng.integers(-300, 300, cout)
            _check(board, "conv2d", rng.integers(0, top + 1, (h, w, 1)), _values(rng, (cout, 3, 3, 1), wlo, whi),
                   bias, mult, shift, q, win)
            for xv, wv in ((top, wlo), (top, whi)):
                _check(board, "conv2d", np.full((h, w, 1), xv), np.full((cout, 3, 3, 1), wv), bias, mult, shift, q,
                       win)


@pytest.mark.emulator
@pytest.mark.parametrize("in_bits", [4, 2])
def test_first_layer_subbyte_lifted_shifts_on_board(board, in_bits: int) -> None:  # noqa: F811
    for op, args in _lifted_layers(in_bits, on_board=True):
        _check(board, op, *args)
