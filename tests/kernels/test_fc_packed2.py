"""The packed 2-bit fully connected path (unsigned 2-bit inputs, 2-bit weights stored at 2 bits or
viewed from 8-bit codes, floor or rounded): two products per 16-bit half of SMLAD, a field extracted
every 7 groups of 4 values. These cases sit where that loop can go wrong: K at and around the run
length (28 values) and its multiples, K % 4 tails, the operands that fill every field (x = 3 with
w' = 3, the largest offset code, and with w' = 0), Cout around the blocks of four rows, and every
output format, on the host (both C variants) and on the emulated board."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from kernel_check import compare
from test_dsp_paths import FOLD_MODES, _dw_requant, _lift_requant, edge_codes
from test_on_board import _check, board  # noqa: F401  (the emulated board fixture)

from bitpath.ref.formats import ActFormat, LayerQuant

K_RUNS = (1, 3, 4, 5, 27, 28, 29, 31, 32, 55, 56, 57, 60, 196, 197, 576)
# (stored bits, rounded view): 2-bit storage, the floor and the rounded 2-bit view of 8-bit codes
KINDS = ((2, False), (8, False), (8, True))
# weight values with offset code 3 (w = 1) and 0 (w = -2) in each storage; for rounded views of 8-bit
# codes, 96 and above round to 1 (127 saturates), -128..-97 to -2
W_TOP = {(2, False): 1, (8, False): 127, (8, True): 96}
W_BOTTOM = {(2, False): -2, (8, False): -128, (8, True): -97}


def weights(rng: np.random.Generator, stored: int, rnd: bool, shape: tuple) -> np.ndarray:
    if stored == 2:
        return rng.integers(-2, 2, shape)
    return edge_codes(rng, shape) if rnd else rng.integers(-128, 128, shape)


def packed_fc_cases(stored: int, rnd: bool, ks=K_RUNS, couts=(1, 4, 5, 7, 12)) -> Iterator[tuple]:
    """Yields ``(x, w, bias, mult, shift, q)`` for one weight kind."""
    rng = np.random.default_rng(stored * 10 + rnd)
    for out in (ActFormat(32, True), ActFormat(8), ActFormat(4), ActFormat(2), ActFormat(8, True)):
        q = LayerQuant(ActFormat(2), out, stored, 2, w_round=rnd)
        for k in ks:
            for cout in couts:
                m, s = _dw_requant(rng, cout, "fast" if rng.integers(0, 2) else "mixed")
                bias = rng.integers(-999, 999, cout)
                yield rng.integers(0, 4, k), weights(rng, stored, rnd, (cout, k)), bias, m, s, q
                for xv, wv in ((3, W_TOP[stored, rnd]), (3, W_BOTTOM[stored, rnd]), (0, W_TOP[stored, rnd])):
                    yield np.full(k, xv), np.full((cout, k), wv), bias, m, s, q
                x = rng.integers(0, 4, k)
                x[rng.random(k) < 0.5] = 3
                yield x, rng.choice(np.array([W_TOP[stored, rnd], W_BOTTOM[stored, rnd]]), (cout, k)), bias, m, s, q


@pytest.mark.parametrize(("stored", "rnd"), KINDS)
def test_packed_2bit_fully_connected(stored: int, rnd: bool) -> None:
    for case in packed_fc_cases(stored, rnd):
        compare("fully_connected", *case)


def test_packed_2bit_fully_connected_sums() -> None:
    # all-max operands: each output is the sum itself, K * 3 * 1 (+ bias 0, int32 logits)
    q = LayerQuant(ActFormat(2), ActFormat(32, True), 2, 2)
    for k in (28, 29, 576):
        z = np.zeros(5, np.int64)
        got = compare("fully_connected", np.full(k, 3), np.full((5, k), 1), z, z, z, q)
        assert list(got) == [3 * k] * 5
        got = compare("fully_connected", np.full(k, 3), np.full((5, k), -2), z, z, z, q)
        assert list(got) == [-6 * k] * 5


@pytest.mark.emulator
@pytest.mark.parametrize(("stored", "rnd"), KINDS)
def test_packed_2bit_fully_connected_on_board(board, stored: int, rnd: bool) -> None:  # noqa: F811
    for case in packed_fc_cases(stored, rnd, ks=(3, 28, 29, 32, 56, 57, 60, 197, 576), couts=(4, 7)):
        _check(board, "fully_connected", *case)


def lifted_fc_cases(on_board: bool = False) -> Iterator[tuple]:
    """Shifts below 33 beside >= 33 with biases at, one past and far past the lift's limit (the
    asm blocks take a layer only when every such lift is exact for any sum, the rest the C loop),
    for every weight kind and unsigned output width, Cout with and without the 1-3 row tail."""
    rng = np.random.default_rng(77)
    for (stored, rnd), ob, mode in itertools.product(KINDS, (2, 4, 8), FOLD_MODES):
        q = LayerQuant(ActFormat(2), ActFormat(ob), stored, 2, w_round=rnd)
        for k, cout in ((28, 8), (32, 4), (57 * 4, 9)) if on_board else ((28, 8), (228, 9), (576, 12), (5460, 5)):
            bias, m, s = _lift_requant(rng, cout, 6 * k, 2**ob - 1, mode, lifted=(2, 20, 29, 30, 31, 32))
            yield rng.integers(0, 4, k), weights(rng, stored, rnd, (cout, k)), bias, m, s, q


def test_packed_2bit_fully_connected_lifted() -> None:
    for case in lifted_fc_cases():
        compare("fully_connected", *case)


def test_packed_2bit_fully_connected_k_limit() -> None:
    # 6K <= 32767 (K <= 5461) takes the asm blocks; K = 5464 the C loop (sums past 16 bits)
    rng = np.random.default_rng(5)
    for (stored, rnd), k in itertools.product(KINDS, (5460, 5464)):
        for out in (ActFormat(32, True), ActFormat(2)):
            q = LayerQuant(ActFormat(2), out, stored, 2, w_round=rnd)
            m, s = _dw_requant(rng, 6, "fast")
            bias = rng.integers(-999, 999, 6)
            compare("fully_connected", np.full(k, 3), np.full((6, k), W_BOTTOM[stored, rnd]), bias, m, s, q)
            compare("fully_connected", rng.integers(0, 4, k), weights(rng, stored, rnd, (6, k)), bias, m, s, q)


@pytest.mark.emulator
def test_packed_2bit_fully_connected_lifted_on_board(board) -> None:  # noqa: F811
    for case in lifted_fc_cases(on_board=True):
        _check(board, "fully_connected", *case)
