"""Targeted cases for the DSP conv2d fast paths (SMLAD on masked 8-bit codes; packed 2-bit fields):
every K around the 4-element groups and the 7-SMLAD extraction period, all-max operands (the largest
field sums), odd pixel and channel counts (the lone last pixel / channel of a 2x2 block)."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_check import compare

from bitpath.ref.formats import ActFormat, LayerQuant, Window

K_CIN = [1, 3, 4, 5, 7, 27, 28, 29, 31, 56, 57, 64]  # 1x1 convs: K == Cin


@pytest.mark.parametrize("cin", K_CIN)
@pytest.mark.parametrize("mode", ["random", "max", "min_w"])
def test_packed_2bit_path(cin: int, mode: str) -> None:
    rng = np.random.default_rng(cin)
    q = LayerQuant(ActFormat(2), ActFormat(32, True), 8, 2)
    x = rng.integers(0, 4, (3, 3, cin)) if mode == "random" else np.full((3, 3, cin), 3)
    if mode == "max":  # view +1 everywhere: w' = 3, the largest field increments
        w = np.full((5, 1, 1, cin), 127)
    elif mode == "min_w":  # view -2 everywhere: w' = 0
        w = np.full((5, 1, 1, cin), -128)
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
def test_fully_connected_fast_path(view: int, in_bits: int, signed: bool, k: int) -> None:
    # (4, True): signed sub-byte inputs take the portable loop inside the DSP kernel
    rng = np.random.default_rng(k * 10 + view)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 8, view)
    lo, hi = q.inp.range
    for cout in (1, 2, 7):
        z = np.zeros(cout, np.int64)
        compare("fully_connected", rng.integers(lo, hi + 1, k), rng.integers(-128, 128, (cout, k)), z, z, z, q)
        compare("fully_connected", np.full(k, lo if signed else hi), np.full((cout, k), -128), z, z, z, q)


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
def test_conv_4bit_storage_path(view: int, in_bits: int, signed: bool, cin: int) -> None:
    # 4-bit storage: nibble planes and the bit-reversed groups of 8; K = 9 * cin covers K % 8 tails
    rng = np.random.default_rng(cin * 10 + view + in_bits)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 4, view)
    lo, hi = q.inp.range
    for cout in (1, 2, 5):
        z = np.zeros(cout, np.int64)
        x = rng.integers(lo, hi + 1, (5, 4, cin))
        compare("conv2d", x, rng.integers(-8, 8, (cout, 3, 3, cin)), z, z, z, q, Window.same(3))
        compare("conv2d", np.full((5, 4, cin), lo if signed else hi), np.full((cout, 3, 3, cin), -8), z, z, z, q,
                Window.same(3))


@pytest.mark.parametrize("view", [2, 4])
@pytest.mark.parametrize(("in_bits", "signed"), [(8, False), (8, True), (4, False), (2, False), (4, True)])
@pytest.mark.parametrize("k", [1, 7, 8, 9, 64, 255, 576])
def test_fully_connected_4bit_storage_path(view: int, in_bits: int, signed: bool, k: int) -> None:
    rng = np.random.default_rng(k * 10 + view + in_bits)
    q = LayerQuant(ActFormat(in_bits, signed), ActFormat(32, True), 4, view)
    lo, hi = q.inp.range
    for cout in (1, 3, 6):
        z = np.zeros(cout, np.int64)
        compare("fully_connected", rng.integers(lo, hi + 1, k), rng.integers(-8, 8, (cout, k)), z, z, z, q)
        compare("fully_connected", np.full(k, lo if signed else hi), np.full((cout, k), -8), z, z, z, q)


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
