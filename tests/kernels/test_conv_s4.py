"""conv2d with weights stored at 4 bits (the DSP variant's nibble-plane path: im2col_s16_g8 patches of two
pixels interleaved per group of 8, dot_2x2_s4's asm loop for whole groups, C for the K % 8 tail), against
the numpy reference bit for bit. Host: the DSP variant's C logic (and the portable one) through cffi;
board: the real asm on the emulated Cortex-M4.

Covered: K % 8 = 0..7 (1x1 convs, K = Cin) and large K, odd pixel counts (the lone last pixel of a
2-pixel block) and odd Cout, every code, all-max / all-min codes (7 and -8; nibble 8 = -8 is the sign
edge, in both nibble planes), the rounding edges of the 2-bit view (codes = 2 mod 4 and the saturating
6 and 7), 8-bit and 4-bit inputs (signed and unsigned) and unsigned 2-bit, the full 4-bit view and the
floor and rounded 2-bit views, 8/4/2-bit and int32 outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from kernel_check import compare
from s4_cases import INPUTS, OUTS, VIEWS, inputs4, weights4
from test_on_board import _check, _requant, board  # noqa: F401  (board: the fixture)

from bitpath.ref.formats import ActFormat, LayerQuant, Window

# (cin, cout, (h, w), k, window): 1x1 convs with K = Cin = 1..17 (every K % 8, below and above one
# group), 3x3 patches with the vector im2col (Cin % 8 == 0) and the scalar one, odd pixel counts
# (3x3, 5x3, 1x1: a lone last pixel) and odd Cout, large K (576, 1800, 1023), stride and padding.
GEOMETRIES = (
    *(((c, 1 + c % 5, (3, 3), 1, Window())) for c in range(1, 18)),
    (1, 4, (4, 4), 3, Window.same(3)),
    (3, 5, (3, 5), 3, Window.same(3)),
    (5, 2, (3, 3), 3, Window.same(3)),
    (7, 3, (2, 2), 3, Window.same(3)),
    (8, 3, (5, 3), 3, Window.same(3)),
    (9, 2, (3, 3), 3, Window.same(3, 2)),
    (16, 7, (4, 3), 3, Window.same(3)),
    (24, 2, (1, 1), 3, Window.same(3)),
    (32, 5, (3, 4), 3, Window(1, 1, 2, 2, 2, 2)),
    (13, 4, (4, 5), 2, Window()),
    (64, 3, (3, 3), 3, Window.same(3)),
    (200, 2, (2, 3), 3, Window.same(3)),
    (1023, 3, (1, 3), 1, Window()),
)
# a few of them for the board (each case crosses the emulated UART)
BOARD_GEOMETRIES = tuple(GEOMETRIES[i] for i in (0, 6, 7, 8, 15, 16, 18, 21, 23, 25, 26))




def _layers(view: int, rnd: bool, ib: int, signed: bool, outs: tuple, geometries, seed: int):
    """(conv2d args) per geometry and weight / input mode, every mode on every geometry; the output
    width of case i is outs[i % len(outs)]."""
    rng = np.random.default_rng(seed)
    modes = (("random", "random"), ("edges", "random"), ("min", "hi"), ("min", "lo"), ("max", "hi"), ("alt", "hi"),
             ("alt", "lo"))
    for i, ((cin, cout, (h, w), k, win), (wmode, xmode)) in enumerate(itertools.product(geometries, modes)):
        ob = outs[i % len(outs)]
        out = ActFormat(32, True) if ob == 32 else ActFormat(ob, bool(signed and ob == 8))
        q = LayerQuant(ActFormat(ib, signed), out, 4, view, w_round=rnd)
        bias, mult, shift = _requant(rng, cout, k * k * cin, q)
        yield (inputs4(rng, (h, w, cin), q, xmode), weights4(rng, (cout, k, k, cin), wmode), bias, mult, shift, q,
               win)


@pytest.mark.parametrize("ob", OUTS)
@pytest.mark.parametrize(("ib", "signed"), INPUTS)
@pytest.mark.parametrize(("view", "rnd"), VIEWS)
def test_conv_4bit_storage(view: int, rnd: bool, ib: int, signed: bool, ob: int) -> None:
    for args in _layers(view, rnd, ib, signed, (ob,), GEOMETRIES, view * 1000 + rnd * 100 + ib * 10 + ob + signed):
        compare("conv2d", *args)


def test_conv_4bit_storage_int32_sums() -> None:
    # no bias, int32 outputs: the raw sums, so a wrong product anywhere shows (the requantized
    # outputs above can hide a small error under the rounding)
    rng = np.random.default_rng(7)
    for (view, rnd), (ib, signed), (cin, cout, (h, w), k, win) in itertools.product(VIEWS, INPUTS, GEOMETRIES):
        q = LayerQuant(ActFormat(ib, signed), ActFormat(32, True), 4, view, w_round=rnd)
        z = np.zeros(cout, np.int64)
        for wmode in ("random", "alt"):
            compare("conv2d", inputs4(rng, (h, w, cin), q, "random"), weights4(rng, (cout, k, k, cin), wmode), z, z,
                    z, q, win)


@pytest.mark.emulator
@pytest.mark.parametrize(("ib", "signed"), INPUTS)
@pytest.mark.parametrize(("view", "rnd"), VIEWS)
def test_conv_4bit_storage_on_board(board, view: int, rnd: bool, ib: int, signed: bool) -> None:  # noqa: F811
    for args in _layers(view, rnd, ib, signed, tuple(OUTS), BOARD_GEOMETRIES, view * 100 + rnd * 10 + ib + signed):
        _check(board, "conv2d", *args)
