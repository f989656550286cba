"""The kernels as built for the emulated Cortex-M4 (the DSP variants: real SMLAD/SXTB16/SEL, the
board's compiler and flags) against the numpy reference, bit for bit, through the kernel-test
firmware (firmware/ktest). BITPATH_KTEST_CASES sets the random cases per kernel and bit combination
(default 4 in CI; the issue's long run is BITPATH_KTEST_CASES=500)."""

from __future__ import annotations

import base64
import itertools
import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest
from board_kernels import Board, BoardError, packbits
from hypothesis import given
from hypothesis import strategies as st
from kernel_check import COUNTS
from test_dsp_paths import (
    DW_RING_OUTS,
    EDGE8_FILLS,
    FC_S2_INPUTS,
    FC_VIEW_CASES,
    PACKED_OUTS,
    dw_batch_layers,
    dw_ring_layers,
    edge_codes,
    fc_s2_layers,
    fc_view_layers,
    lift_layers,
    packed_layers,
)

from bitpath.ref import ops
from bitpath.ref.formats import ActFormat, LayerQuant, Window
from bitpath.ref.packing import pack
from bitpath.ref.requant import AccumulatorOverflow

pytestmark = pytest.mark.emulator
CASES = int(os.environ.get("BITPATH_KTEST_CASES", "4"))
BITS = (2, 4, 8)
COMBOS = list(itertools.product(BITS, BITS, (*BITS, 32)))


@pytest.fixture(scope="module")
def board() -> Iterator[Board]:
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "pio") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: bash host/run.sh setup")
    from bitpath.device import build
    from bitpath.device.client import Client
    from bitpath.device.emulate import Emulator

    elf = build.build("ktest_qemu")
    with Emulator(elf) as emu, Client(emu.url, timeout=30.0) as dev:
        assert "m-ktest-kernels-[dsp]" in emu.boot_lines
        dev.sync()
        yield Board(dev)


def _values(rng: np.random.Generator, shape: tuple, lo: int, hi: int) -> np.ndarray:
    mode = rng.integers(0, 5)
    if mode == 0:
        return np.full(shape, hi)
    if mode == 1:
        return np.full(shape, lo)
    if mode == 2:
        return rng.choice(np.array([lo, hi]), shape)
    return rng.integers(lo, hi + 1, shape)


def _quant(rng: np.random.Generator, wv: int, ib: int, ob: int) -> LayerQuant:
    stored = int(rng.choice([b for b in BITS if b >= wv]))
    inp = ActFormat(ib, bool(rng.integers(0, 4) == 0))
    out = ActFormat(32, True) if ob == 32 else ActFormat(ob, bool(rng.integers(0, 4) == 0))
    return LayerQuant(inp, out, stored, wv, w_round=bool(rng.integers(0, 2)))  # rounded views half the time


def _requant(rng: np.random.Generator, n: int, k: int, q: LayerQuant) -> tuple:
    typical = max(k * q.inp.max_abs * q.w_max_abs / 8, 1)
    out_max = 1 if q.out.bits == 32 else q.out.range[1]
    mult = rng.integers(2**30, 2**31, n) * rng.choice(np.array([1, 1, 1, -1]), n)
    shift = np.clip(31 + int(np.log2(typical / out_max)) + rng.integers(-2, 3, n), 0, 62)
    bias = rng.integers(-(k * 4), k * 4 + 1, n)
    return bias, mult, shift


def _check(board: Board, op: str, *args) -> None:
    try:
        want = getattr(ops, op)(*args)
    except AccumulatorOverflow:
        with pytest.raises(BoardError) as exc:
            getattr(board, op)(*args)
        assert exc.value.status == -6
        COUNTS[op + " (board)", "refused"] += 1
        return
    got = getattr(board, op)(*args)
    COUNTS[op + " (board)", "cases"] += 1
    if not np.array_equal(got, want):
        COUNTS[op + " (board)", "mismatches"] += 1
    np.testing.assert_array_equal(got, want, err_msg=f"{op} on the board")



# (cin, cout, (h, w), k, window, output bits): K % 4 tails, odd pixel and channel counts, packed outputs
_NARROW_CASES = ((1, 16, (6, 5), 3, Window.same(3), 8), (3, 5, (4, 4), 3, Window.same(3), 4),
                 (16, 8, (5, 3), 3, Window.same(3, 2), 2), (5, 3, (3, 3), 1, Window(), 32),
                 (32, 7, (3, 4), 3, Window(1, 1, 2, 2, 2, 2), 8), (29, 4, (2, 3), 2, Window(), 4))
_VIEW_EXTRA_CASES = ((64, 3, (3, 3), 3, Window.same(3), 32), (28, 5, (3, 3), 1, Window(), 8),
                     (56, 3, (2, 2), 1, Window(), 2), (4, 6, (3, 5), 3, Window.same(3), 4))

@pytest.mark.parametrize(("wv", "ib", "ob"), COMBOS)
def test_conv_dw_fc_on_board(board: Board, wv: int, ib: int, ob: int) -> None:
    rng = np.random.default_rng(wv * 100 + ib * 10 + ob)
    for _ in range(CASES):
        q = _quant(rng, wv, ib, ob)
        lo, hi = q.inp.range
        wlo, whi = ActFormat(q.w_stored, True).range
        h, w = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        cin = int(rng.choice([1, 3, 4, 8, 16]))
        cout = int(rng.integers(1, 9))
        k = int(rng.choice([1, 3]))
        win = Window.same(k, int(rng.integers(1, 3)))
        bias, mult, shift = _requant(rng, cout, k * k * cin, q)
        _check(board, "conv2d", _values(rng, (h, w, cin), lo, hi), _values(rng, (cout, k, k, cin), wlo, whi),
               bias, mult, shift, q, win)
        bias, mult, shift = _requant(rng, cin, k * k, q)
        _check(board, "depthwise_conv2d", _values(rng, (h, w, cin), lo, hi), _values(rng, (k, k, cin), wlo, whi),
               bias, mult, shift, q, win)
        n_in = int(rng.choice([1, 4, 7, 16, 64, 200]))
        bias, mult, shift = _requant(rng, cout, n_in, q)
        _check(board, "fully_connected", _values(rng, (n_in,), lo, hi), _values(rng, (cout, n_in), wlo, whi),
               bias, mult, shift, q)


@pytest.mark.parametrize(("bits", "signed"), [(8, False), (8, True), (4, False), (2, False), (4, True), (2, True)])
def test_max_pool_on_board(board: Board, bits: int, signed: bool) -> None:
    rng = np.random.default_rng(bits * 2 + signed)
    fmt = ActFormat(bits, signed)
    for _ in range(CASES * 3):
        c = int(rng.choice([1, 3, 4, 8, 16, 32]))
        k = int(rng.integers(2, 4))
        win = Window(k, k) if rng.integers(0, 2) else Window(2, 2, 1, 1, 1, 1)
        _check(board, "max_pool2d", _values(rng, (6, 7, c), *fmt.range), fmt, k, k, win)


@pytest.mark.parametrize(("in_signed", "out_signed", "clamp"),
                         [(False, False, None), (False, False, (0, 100)), (True, False, None), (True, True, (-5, 90))])
def test_depthwise_smmla_paths_on_board(board: Board, in_signed: bool, out_signed: bool, clamp) -> None:
    # The depthwise row runs and border pixels with 8-bit outputs and every shift >= 33 (SMMLA, then
    # USAT or a clamp): real instructions, extreme multipliers, shifts 33 and 62, C % 4 tails.
    rng = np.random.default_rng(in_signed * 4 + out_signed * 2 + (clamp is not None))
    lo, hi = clamp if clamp else (None, None)
    for c, (kh, kw), win, view in ((4, (3, 3), Window.same(3), 8), (13, (3, 3), Window.same(3, 2), 4),
                                   (8, (3, 3), Window(1, 1, 2, 2, 2, 2), 8), (5, (5, 3), Window(2, 1, 0, 1, 1, 0), 2),
                                   (16, (3, 3), Window(), 8)):
        q = LayerQuant(ActFormat(8, in_signed), ActFormat(8, out_signed), 8, view, lo, hi)
        xlo, xhi = q.inp.range
        mult = rng.integers(2**30, 2**31, c) * rng.choice(np.array([1, 1, -1]), c)
        mult[:2] = [-(2**31), 2**31 - 1]
        shift = rng.choice(np.array([33, 34, 37, 38, 40, 62]), c)
        bias = rng.integers(-3000, 3000, c)
        for x in (rng.integers(xlo, xhi + 1, (7, 6, c)), np.full((7, 6, c), xlo if in_signed else xhi)):
            _check(board, "depthwise_conv2d", x, rng.integers(-128, 128, (kh, kw, c)), bias, mult, shift, q, win)
            _check(board, "depthwise_conv2d", x, np.full((kh, kw, c), -128), bias, mult, shift, q, win)


@pytest.mark.parametrize("in_signed", [False, True])
@pytest.mark.parametrize("out_bits", [8, 4, 32])
def test_fully_connected_w8a8_paths_on_board(board: Board, in_signed: bool, out_bits: int) -> None:
    # W8A8: the 5-row and 4-row asm loops (two groups of 4 inputs per iteration, an odd group count
    # entering at the second; K % 4 tails), the 1-3 row tail, 8-bit outputs through SMMLA (s >= 33)
    # with USAT/SSAT or bp_requant (s < 33), packed 4-bit outputs, extreme weights and inputs.
    rng = np.random.default_rng(in_signed * 2 + out_bits)
    out = ActFormat(out_bits, out_bits == 32 or bool(rng.integers(0, 2)))
    q = LayerQuant(ActFormat(8, in_signed), out, 8, 8)
    xlo, xhi = q.inp.range
    for k, cout in ((1, 1), (3, 5), (4, 4), (5, 10), (8, 3), (63, 7), (64, 10), (256, 6), (4, 9), (12, 5),
                    (8, 10), (68, 13), (64, 15), (20, 14)):
        mult = rng.integers(2**30, 2**31, cout) * rng.choice(np.array([1, 1, -1]), cout)
        shift = rng.choice(np.array([33, 36, 40, 41, 62] if k % 2 else [20, 32, 33, 40]), cout)
        bias = rng.integers(-5000, 5000, cout)
        for x in (rng.integers(xlo, xhi + 1, k), np.full(k, xlo if in_signed else xhi)):
            _check(board, "fully_connected", x, rng.integers(-128, 128, (cout, k)), bias, mult, shift, q)
            _check(board, "fully_connected", x, np.full((cout, k), -128), bias, mult, shift, q)


# 4/2-bit views of 8-bit codes: the asm loop on blocks of four rows (8-bit inputs signed or not,
# unsigned 4/2-bit inputs), the cases of test_dsp_paths.test_fully_connected_views_of_8bit.
# rnd: the rounded views (QADD8 before the AND immediate in the asm; QADD8 in the C rows), with codes
# at the rounding edges and the saturating top codes.
@pytest.mark.parametrize(("view", "in_bits", "signed"), FC_VIEW_CASES)
@pytest.mark.parametrize("rnd", [False, True])
def test_fully_connected_views_of_8bit_on_board(board: Board, view: int, in_bits: int, signed: bool,
                                                rnd: bool) -> None:
    for layer in fc_view_layers(view, in_bits, signed, rnd):
        _check(board, "fully_connected", *layer)


# Weights stored at 2 bits: the table/SMLAD loop (8-bit inputs, unsigned 4/2-bit inputs) and the
# portable one (signed 4/2-bit inputs), the cases of test_dsp_paths.test_fully_connected_2bit_storage.
@pytest.mark.parametrize(("in_bits", "signed"), FC_S2_INPUTS)
def test_fully_connected_2bit_storage_on_board(board: Board, in_bits: int, signed: bool) -> None:
    for layer in fc_s2_layers(in_bits, signed):
        _check(board, "fully_connected", *layer)


@pytest.mark.parametrize(("in_bits", "out_bits"), [(4, 4), (2, 2), (4, 8), (8, 4), (8, 2)])
def test_depthwise_packed_paths_on_board(board: Board, in_bits: int, out_bits: int) -> None:
    # Unsigned 4/2-bit inputs in the row runs, and outputs packed a group of four values at a time
    # (8-bit input: the asm 3x3 block), every shift >= 33.
    rng = np.random.default_rng(in_bits * 10 + out_bits)
    for c, win, signed_out in ((4, Window.same(3), False), (12, Window.same(3, 2), True), (7, Window(), False)):
        out = ActFormat(out_bits, signed_out)
        q = LayerQuant(ActFormat(in_bits), out, 8, 8, *((out.range[0] + 1, out.range[1] - 1) if signed_out else ()))
        xlo, xhi = q.inp.range
        mult = rng.integers(2**30, 2**31, c) * rng.choice(np.array([1, 1, -1]), c)
        shift = rng.choice(np.array([36, 38, 40, 42]), c)
        bias = rng.integers(-300, 300, c)
        for x in (rng.integers(xlo, xhi + 1, (7, 6, c)), np.full((7, 6, c), xhi)):
            _check(board, "depthwise_conv2d", x, rng.integers(-128, 128, (3, 3, c)), bias, mult, shift, q, win)


# Unsigned 4/2-bit inputs through the ring of unpacked rows (its asm unpacking loop, the 3x3 asm block
# and the row runs on it), USAT #8/#4/#2 stores, and layers one pixel too wide for the ring: the
# kernels, windows and outputs of test_dsp_paths.test_depthwise_subbyte_ring, two widths each (int32
# outputs, which never take the ring, left out: the widest would not fit the firmware's buffer).
@pytest.mark.parametrize("in_bits", [4, 2])
def test_depthwise_subbyte_ring_on_board(board: Board, in_bits: int) -> None:
    for args in dw_ring_layers(in_bits, DW_RING_OUTS[:-1], board=True):
        _check(board, "depthwise_conv2d", *args)


def _depthwise_batch_on_board(board: Board, x, w, bias, mult, shift, q: LayerQuant, win: Window) -> np.ndarray:
    """One bp_depthwise_conv2d call on a batch x of shape (N, H, W, C) (Board.depthwise_conv2d sends N = 1)."""
    n, h, wd, c = x.shape
    kh, kw, _ = w.shape
    oh, ow = win.out_size(h, wd, kh, kw)
    hdr = {0: 1, 1: n, 2: h, 3: wd, 4: c, 5: 1, 6: kh, 7: kw, 8: c, 9: n, 10: oh, 11: ow, 12: c,
           **board._win_words(win), **board._quant_words(q)}
    blobs = [pack(x.reshape(-1, c), q.inp.bits, q.inp.signed).tobytes(),
             pack(w.reshape(kh * kw, c), q.w_stored, True).tobytes(), b""]
    raw = board._call(hdr, blobs, board._requant(q, bias, mult, shift, c), board._out_bytes(n * oh * ow, c, q.out))
    return board._out(raw, n * oh * ow, c, q.out).reshape(n, oh, ow, c)


def test_depthwise_subbyte_ring_batches_on_board(board: Board) -> None:
    # N = 3 images in one call: the ring starts again on each image.
    for x, w, bias, m, s, q, win in dw_batch_layers(board=True):
        want = np.stack([ops.depthwise_conv2d(xi, w, bias, m, s, q, win) for xi in x])
        np.testing.assert_array_equal(_depthwise_batch_on_board(board, x, w, bias, m, s, q, win), want)


@pytest.mark.parametrize(("ib", "signed"), [(8, False), (8, True), (4, False), (4, True), (2, False), (2, True)])
def test_conv_2bit_storage_on_board(board: Board, ib: int, signed: bool) -> None:
    # Weights stored at 2 bits: the table-driven SMLAD asm loop on interleaved patches (any input) and
    # the packed 2-bit path (unsigned 2-bit inputs), with K % 4 tails, odd pixel and channel counts,
    # extreme operands and packed outputs.
    rng = np.random.default_rng(ib * 2 + signed)
    for cin, cout, (h, w), k, win, ob in _NARROW_CASES:
        q = LayerQuant(ActFormat(ib, signed), ActFormat(32, True) if ob == 32 else ActFormat(ob), 2, 2)
        lo, hi = q.inp.range
        bias, mult, shift = _requant(rng, cout, k * k * cin, q)
        _check(board, "conv2d", _values(rng, (h, w, cin), lo, hi), _values(rng, (cout, k, k, cin), -2, 1),
               bias, mult, shift, q, win)
        _check(board, "conv2d", np.full((h, w, cin), lo if signed else hi), np.full((cout, k, k, cin), -2),
               bias, mult, shift, q, win)


@pytest.mark.parametrize("wv", [4, 2])
@pytest.mark.parametrize(("ib", "signed"), [(8, False), (8, True), (4, False), (4, True), (2, False), (2, True)])
@pytest.mark.parametrize("rnd", [False, True])
def test_conv_narrow_views_of_8bit_on_board(board: Board, wv: int, ib: int, signed: bool, rnd: bool) -> None:
    # 4- and 2-bit views of 8-bit codes: the W8 asm loop with one AND per weight word and an exact
    # final shift (the packed 2-bit path for w_view 2 with unsigned 2-bit inputs), with K % 4 tails,
    # odd pixel and channel counts, extreme codes (-128, 127, codes with low bits set) and packed outputs.
    # rnd: the rounded views (QADD8 before the AND: the W8R loop with odd and even group counts, the
    # packed path's W8R groups), codes at the rounding edges and the saturating top codes 120..127.
    rng = np.random.default_rng(wv * 100 + ib * 2 + signed)
    for cin, cout, (h, w), k, win, ob in (*_NARROW_CASES, *_VIEW_EXTRA_CASES):
        q = LayerQuant(ActFormat(ib, signed), ActFormat(32, True) if ob == 32 else ActFormat(ob), 8, wv,
                       w_round=rnd)
        lo, hi = q.inp.range
        bias, mult, shift = _requant(rng, cout, k * k * cin, q)
        _check(board, "conv2d", _values(rng, (h, w, cin), lo, hi), _values(rng, (cout, k, k, cin), -128, 127),
               bias, mult, shift, q, win)
        for xv, wval in ((lo if signed else hi, -128), (hi, 127), (hi, -113), (lo, 15)):
            _check(board, "conv2d", np.full((h, w, cin), xv), np.full((cout, k, k, cin), wval), bias, mult, shift,
                   q, win)
        if rnd:
            _check(board, "conv2d", _values(rng, (h, w, cin), lo, hi), edge_codes(rng, (cout, k, k, cin)), bias,
                   mult, shift, q, win)
            for wval in EDGE8_FILLS[::2]:  # 127, 124, 32, -8, -96, -128
                _check(board, "conv2d", np.full((h, w, cin), hi), np.full((cout, k, k, cin), wval), bias, mult,
                       shift, q, win)


@pytest.mark.parametrize(("ib", "signed"), [(8, False), (8, True), (4, False), (2, False), (4, True)])
def test_4bit_storage_rounded_views_on_board(board: Board, ib: int, signed: bool) -> None:
    # Weights stored at 4 bits read at a rounded 2-bit view: conv2d's nibble-plane SMLAD path (QADD8
    # on each plane before the mask, K % 8 tails) and the fully connected nibble-plane rows, every
    # code, the saturating ones (6, 7) and the most negative (-8).
    rng = np.random.default_rng(ib * 2 + signed + 1000)
    for cin, cout, (h, w), k, win, ob in _NARROW_CASES:
        q = LayerQuant(ActFormat(ib, signed), ActFormat(32, True) if ob == 32 else ActFormat(ob), 4, 2,
                       w_round=True)
        lo, hi = q.inp.range
        bias, mult, shift = _requant(rng, cout, k * k * cin, q)
        _check(board, "conv2d", _values(rng, (h, w, cin), lo, hi), rng.integers(-8, 8, (cout, k, k, cin)), bias,
               mult, shift, q, win)
        for wval in (7, 6, -8):
            _check(board, "conv2d", np.full((h, w, cin), hi), np.full((cout, k, k, cin), wval), bias, mult, shift,
                   q, win)
        for n_in in (7, 8, 64, 255):
            bias, mult, shift = _requant(rng, cout, n_in, q)
            _check(board, "fully_connected", _values(rng, (n_in,), lo, hi), rng.integers(-8, 8, (cout, n_in)), bias,
                   mult, shift, q)
            _check(board, "fully_connected", np.full(n_in, hi), np.full((cout, n_in), 6), bias, mult, shift, q)


# The first-layer path of the DSP conv2d: one unsigned 8-bit input channel, 3x3, stride 1, unsigned
# outputs with the full clamp, every shift >= 33. Pad 1 left and right with an even width >= 4 runs
# the band asm (left pixel, pairs, right pixel, row after row; vertical padding as zeroed kernel rows),
# with each output width and, at 4 and 2 bits, each bit position in the byte (16 channels: 4 groups
# of 4 channels; 6: a group and 2 channels one at a time; 3: one at a time); the other geometries run
# the same arithmetic in C. Extreme multipliers, shifts 33 and 62, extreme codes.
_C1_CASES = (((28, 16), Window.same(3)), ((5, 4), Window.same(3)), ((3, 6), Window(1, 1, 2, 2, 1, 1)),
             ((6, 8), Window(1, 1, 0, 3, 1, 1)), ((5, 7), Window.same(3)), ((4, 9), Window()),
             ((4, 5), Window(1, 1, 2, 2, 2, 2)))


@pytest.mark.parametrize(("stored", "view", "rnd"),
                         [(8, 8, False), (8, 4, False), (8, 2, False), (4, 4, False), (2, 2, False), (8, 4, True),
                          (8, 2, True)])
@pytest.mark.parametrize("out_bits", [8, 4, 2])
def test_conv_first_layer_on_board(board: Board, stored: int, view: int, rnd: bool, out_bits: int) -> None:
    rng = np.random.default_rng(stored * 100 + view * 10 + out_bits)
    q = LayerQuant(ActFormat(8), ActFormat(out_bits), stored, view, w_round=rnd)
    wlo, whi = ActFormat(stored, True).range
    for (h, w), win in _C1_CASES:
        for cout in (16, 3, 6):
            mult = rng.integers(2**30, 2**31, cout) * rng.choice(np.array([1, 1, -1]), cout)
            mult[:2] = [-(2**31), 2**31 - 1]
            shift = rng.integers(34 - 2 * (8 - view), 48 - 2 * (8 - view), cout).clip(33, 62)
            shift[-2:] = [33, 62]
            bias = rng.integers(-3000, 3000, cout)
            _check(board, "conv2d", rng.integers(0, 256, (h, w, 1)), _values(rng, (cout, 3, 3, 1), wlo, whi), bias,
                   mult, shift, q, win)
            for xv, wv in ((255, wlo), (255, whi), (0, whi)):
                _check(board, "conv2d", np.full((h, w, 1), xv), np.full((cout, 3, 3, 1), wv), bias, mult, shift, q,
                       win)


# The packed 2-bit path (unsigned 2-bit inputs; 2-bit views of 8-bit codes or 2-bit storage) with the
# cases of test_dsp_paths.test_conv_packed_2bit_requantized: every count of groups after the 7-group
# asm runs (the TBB entries), Cin % 4 == 0 (USADA8 patch sums) or not (K % 4 tails), the 64-run flush
# of the 16-bit sums (1x1, Cin = 1840), USAT / clamp / signed / bp_requant / read-modify-write /
# int32 outputs, pixel counts not a multiple of 4, extreme operands.
# rnd: the rounded 2-bit view of 8-bit codes (the W8R groups: QADD8 before the offset code, in the
# run, tail, requantizing and one-pixel asm and the C tails).
@pytest.mark.parametrize(("stored", "rnd"), [(8, False), (2, False), (8, True)])
@pytest.mark.parametrize(("kind", "ob"), PACKED_OUTS)
def test_conv_packed_2bit_on_board(board: Board, stored: int, rnd: bool, kind: str, ob: int) -> None:
    for layer in packed_layers(stored, kind, ob, rnd):
        _check(board, "conv2d", *layer)


# Lifted shifts (test_dsp_paths.test_lifted_shifts, its few board cases): shifts 29..32 (and down to
# 33 - (16 - view) where the weights are folded) next to >= 33 channels, biases at each lifted channel's
# headroom limit and past it. In the packed 2-bit requantizing asm (the out-of-line lift after SUBS/BMI),
# conv_c1's and the depthwise groups' folded weights and bias, the FC value lift and the W8 loops.
@pytest.mark.parametrize("group", ["packed", "c1", "dw", "fc", "w8"])
def test_lifted_shifts_on_board(board: Board, group: str) -> None:
    for op, args in lift_layers(group, board=True):
        _check(board, op, *args)


def _unpackbits(data: bytes) -> bytes:
    """An independent PackBits decoder (TIFF 6.0, section 9), to check the encoder against."""
    out, i = bytearray(), 0
    while i < len(data):
        h = data[i] - 256 if data[i] > 127 else data[i]
        if h >= 0:
            out += data[i + 1 : i + 2 + h]
            i += 2 + h
        elif h != -128:
            out += bytes([data[i + 1]]) * (1 - h)
            i += 2
        else:
            i += 1
    return bytes(out)


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(1, 300)), max_size=40))
def test_packbits_round_trip(runs: list[tuple[int, int]]) -> None:
    data = b"".join(bytes([v]) * n for v, n in runs)
    enc = packbits(data)
    assert _unpackbits(enc) == data
    # never longer than one header per 128 literal bytes; a run of 128 equal bytes costs 2 bytes
    assert len(enc) <= len(data) + -(-len(data) // 128)
    assert len(packbits(bytes(128 * 9))) == 18


@pytest.mark.parametrize(("text", "error"), [
    ("k", "expected: k <base64"),
    ("x AAAA", "expected: k <base64"),
    ("k AA!A", "not base64"),
    ("k AA=A", "not base64"),
    ("k AAAAA", "stray final character"),
    ("k " + base64.b64encode(bytes([4, 1, 2])).decode(), "cut short"),   # 5 literal bytes announced, 2 sent
    ("k " + base64.b64encode(bytes([0xFF])).decode(), "cut short"),      # a run without its byte
    ("k " + base64.b64encode(bytes([0x81, 0]) * 400).decode(), "larger than the firmware's buffer"),
    ("k " + base64.b64encode(bytes([0x82, 0]) * 2).decode(), "shorter than its header"),
])
def test_malformed_cases_get_an_error_and_the_board_keeps_serving(board: Board, text: str, error: str) -> None:
    reply = board.dev.send(text, timeout=30.0)
    assert len(reply.errors) == 1 and error in reply.errors[0], reply.lines
    q = LayerQuant(ActFormat(8, True), ActFormat(32, True), 8, 8)
    x, w = np.arange(-3, 4), np.arange(-7, 7).reshape(2, 7)
    np.testing.assert_array_equal(board.fully_connected(x, w, np.array([5, -5]), None, None, q),
                                  ops.fully_connected(x, w, np.array([5, -5]), None, None, q))
