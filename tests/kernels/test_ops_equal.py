"""Exact equality of every C kernel with the numpy reference, for every bit combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from kernel_check import compare
from strategies import BITS, bias_for, int_array, layer_quant, requant_params, window_for

from bitpath.ref.formats import ActFormat, Window

# Every (weight view, input, output) width combination, plus int32 logits out.
COMBOS = list(itertools.product(BITS, BITS, (*BITS, 32)))


def _weighted_layer(data, q, products: int, n_out: int):
    bias = data.draw(bias_for(n_out, products, q))
    typical = products * q.inp.max_abs * q.w_max_abs / 8
    out_max = 1 if q.out.bits == 32 else q.out.range[1]
    mult, shift = data.draw(requant_params(n_out, typical, out_max))
    return bias, mult, shift


@pytest.mark.parametrize(("w_bits", "in_bits", "out_bits"), COMBOS)
@given(data=st.data())
def test_conv2d(w_bits: int, in_bits: int, out_bits: int, data) -> None:
    q = data.draw(layer_quant(w_bits, in_bits, out_bits))
    h, w = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    cin, cout = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    win = data.draw(window_for(h, w, kh, kw))
    x = data.draw(int_array((h, w, cin), *q.inp.range))
    wts = data.draw(int_array((cout, kh, kw, cin), *ActFormat(q.w_stored, True).range))
    bias, mult, shift = _weighted_layer(data, q, kh * kw * cin, cout)
    compare("conv2d", x, wts, bias, mult, shift, q, win)


@pytest.mark.parametrize(("w_bits", "in_bits", "out_bits"), COMBOS)
@given(data=st.data())
def test_depthwise_conv2d(w_bits: int, in_bits: int, out_bits: int, data) -> None:
    q = data.draw(layer_quant(w_bits, in_bits, out_bits))
    h, w, c = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8)), data.draw(st.integers(1, 13))
    kh, kw = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    win = data.draw(window_for(h, w, kh, kw))
    x = data.draw(int_array((h, w, c), *q.inp.range))
    wts = data.draw(int_array((kh, kw, c), *ActFormat(q.w_stored, True).range))
    bias, mult, shift = _weighted_layer(data, q, kh * kw, c)
    compare("depthwise_conv2d", x, wts, bias, mult, shift, q, win)


@pytest.mark.parametrize(("w_bits", "in_bits", "out_bits"), COMBOS)
@given(data=st.data())
def test_fully_connected(w_bits: int, in_bits: int, out_bits: int, data) -> None:
    q = data.draw(layer_quant(w_bits, in_bits, out_bits))
    cin, cout = data.draw(st.integers(1, 70)), data.draw(st.integers(1, 17))
    x = data.draw(int_array((cin,), *q.inp.range))
    wts = data.draw(int_array((cout, cin), *ActFormat(q.w_stored, True).range))
    bias, mult, shift = _weighted_layer(data, q, cin, cout)
    compare("fully_connected", x, wts, bias, mult, shift, q)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("signed", [False, True])
@given(data=st.data())
def test_max_pool2d(bits: int, signed: bool, data) -> None:
    fmt = ActFormat(bits, signed)
    h, w, c = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 11))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    # PyTorch's rule (padding <= kernel/2) guarantees every window holds a real input.
    win = Window(
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(0, kh // 2)),
        data.draw(st.integers(0, kh // 2)),
        data.draw(st.integers(0, kw // 2)),
        data.draw(st.integers(0, kw // 2)),
    )
    assume(kh <= h + win.pad_top + win.pad_bottom and kw <= w + win.pad_left + win.pad_right)
    x = data.draw(int_array((h, w, c), *fmt.range))
    compare("max_pool2d", x, fmt, kh, kw, win)


@pytest.mark.parametrize("bits", BITS)
@given(data=st.data())
def test_avg_pool2d(bits: int, data) -> None:
    fmt = ActFormat(bits)
    h, w, c = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 11))
    if data.draw(st.booleans()):  # global average pooling
        kh, kw, sh, sw = h, w, 1, 1
    else:
        kh, kw = data.draw(st.integers(1, h)), data.draw(st.integers(1, w))
        sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    x = data.draw(int_array((h, w, c), *fmt.range))
    compare("avg_pool2d", x, fmt, kh, kw, sh, sw)


@pytest.mark.parametrize(("a_bits", "b_bits", "out_bits"), list(itertools.product(BITS, BITS, BITS)))
@given(data=st.data())
def test_add(a_bits: int, b_bits: int, out_bits: int, data) -> None:
    a_fmt = ActFormat(a_bits, data.draw(st.booleans()))
    b_fmt = ActFormat(b_bits, data.draw(st.booleans()))
    out = ActFormat(out_bits, data.draw(st.sampled_from([False, False, True])))
    shape = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 9)))
    a = data.draw(int_array(shape, *a_fmt.range))
    b = data.draw(int_array(shape, *b_fmt.range))
    mults, shifts = data.draw(requant_params(2, 255.0, out.range[1]))
    compare("add", a, a_fmt, b, b_fmt, int(mults[0]), int(mults[1]), int(shifts[0]), out)


@pytest.mark.parametrize("out_bits", BITS)
@pytest.mark.parametrize("signed", [False, True])
@given(data=st.data())
def test_requantize(out_bits: int, signed: bool, data) -> None:
    out = ActFormat(out_bits, signed)
    rows, ch = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 12))
    acc = data.draw(int_array((rows, ch), -(2**31), 2**31 - 1))
    mult, shift = data.draw(requant_params(ch, 2.0**20, out.range[1]))
    lo, hi = out.range
    got = compare("requantize", acc, mult, shift, lo, hi, out=out)
    assert got.min() >= lo and got.max() <= hi


def test_conv2d_all_max_int8_extremes() -> None:
    """All-max inputs against -128 weights: the most negative accumulator a 3x3x64 a8w8 conv can make."""
    from bitpath.ref.formats import LayerQuant

    q = LayerQuant(ActFormat(8), ActFormat(32, True), 8, 8)
    x = np.full((3, 3, 64), 255)
    w = np.full((2, 3, 3, 64), -128)
    got = compare("conv2d", x, w, np.zeros(2, np.int64), np.zeros(2), np.zeros(2), q)
    assert got.ravel().tolist() == [-(3 * 3 * 64 * 255 * 128)] * 2
