"""fully_connected with weights stored at 4 bits (the DSP variant's dot_4rows_s4: whole groups of 8 inputs
in chunks, C for the K % 8 tail, the 1-3 rows after the last block of four through the block that ends
at the last row), against the numpy reference bit for bit. Host: the DSP variant's C logic (and the
portable one) through cffi; board: the real asm on the emulated Cortex-M4.

Covered: K % 8 = 0..7 below and above one group, K at and around the chunk sizes (32 groups of 8 for
unsigned 8-bit inputs, 63 for signed ones, 546 for unsigned 4-bit inputs) and large K (around
K * xmax * 128 = INT32_MAX, the limit of the other fast paths; the chunked sums have none),
out_features 1..9 (blocks, their 1-3 row remainders, and fewer than four rows: the C loop),
batches > 1 (input rows not word aligned), every code, all-max / all-min codes (7 and -8; nibble 8 is
the sign edge, in every nibble position), the rounding edges of the 2-bit view, 8-bit inputs signed and
unsigned, 4-bit inputs unsigned (the asm) and signed, unsigned 2-bit inputs (C), the full 4-bit view
and the floor and rounded 2-bit views, 8/4/2-bit and int32 outputs, shifts below 33."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from board_kernels import OPS
from kernel_check import COUNTS, VARIANTS, compare
from s4_cases import INPUTS, OUTS, VIEWS, inputs4, weights4
from test_on_board import _check, _requant, _values, board  # noqa: F401  (board: the fixture)

from bitpath import ckernels
from bitpath.ref import ops
from bitpath.ref.formats import ActFormat, LayerQuant
from bitpath.ref.packing import pack

# (K, out_features): every K % 8 below and above one group, the chunk edges, large K
GEOMETRIES = (
    *((k, 1 + k % 9) for k in range(1, 25)),
    (64, 10),
    (255, 4),
    (256, 5),
    (257, 6),
    (263, 7),
    (504, 3),
    (512, 4),
    (519, 9),
    (1024, 8),
    (2048, 5),
    (4368, 4),
    (4377, 6),
)
BOARD_GEOMETRIES = ((1, 1), (7, 4), (8, 5), (9, 9), (15, 3), (16, 4), (17, 7), (23, 2), (64, 10), (256, 5), (257, 6),
                    (505, 8), (1024, 4), (2048, 5), (4377, 4))
MODES = (("random", "random"), ("edges", "random"), ("min", "hi"), ("min", "lo"), ("max", "hi"), ("max", "lo"),
         ("alt", "hi"), ("alt", "lo"))




def _quant(view: int, rnd: bool, ib: int, signed: bool, ob: int) -> LayerQuant:
    out = ActFormat(32, True) if ob == 32 else ActFormat(ob, bool(signed and ob == 8))
    return LayerQuant(ActFormat(ib, signed), out, 4, view, w_round=rnd)


def _layers(view: int, rnd: bool, ib: int, signed: bool, outs: tuple, geometries, seed: int, batches: int = 0):
    """(fully_connected args) per geometry and weight / input mode; the output width of case i is
    outs[i % len(outs)]. batches > 0: the input is (batches, K)."""
    rng = np.random.default_rng(seed)
    for i, ((k, cout), (wmode, xmode)) in enumerate(itertools.product(geometries, MODES)):
        q = _quant(view, rnd, ib, signed, outs[i % len(outs)])
        bias, mult, shift = _requant(rng, cout, k, q)
        if i % 3 == 0 and q.out.bits != 32:  # shifts below 33 (lifted where the value allows) and at 33
            shift = rng.choice(np.array([12, 20, 31, 32, 33]), cout)
        xshape = (batches, k) if batches else (k,)
        yield inputs4(rng, xshape, q, xmode), weights4(rng, (cout, k), wmode), bias, mult, shift, q


@pytest.mark.parametrize("ob", OUTS)
@pytest.mark.parametrize(("ib", "signed"), INPUTS)
@pytest.mark.parametrize(("view", "rnd"), VIEWS)
def test_fc_4bit_storage(view: int, rnd: bool, ib: int, signed: bool, ob: int) -> None:
    for args in _layers(view, rnd, ib, signed, (ob,), GEOMETRIES, view * 1000 + rnd * 100 + ib * 10 + ob + signed):
        compare("fully_connected", *args)


def test_fc_4bit_storage_int32_sums() -> None:
    # no bias, int32 outputs: the raw sums, so a wrong product anywhere shows (the requantized outputs
    # above can hide a small error under the rounding)
    rng = np.random.default_rng(7)
    for (view, rnd), (ib, signed), (k, cout) in itertools.product(VIEWS, INPUTS, GEOMETRIES):
        q = _quant(view, rnd, ib, signed, 32)
        z = np.zeros(cout, np.int64)
        for wmode, xmode in MODES:
            compare("fully_connected", inputs4(rng, (k,), q, xmode), weights4(rng, (cout, k), wmode), z, z, z, q)


@pytest.mark.parametrize(("ib", "signed"), [(8, False), (8, True), (4, False)])
def test_fc_4bit_storage_large_k(ib: int, signed: bool) -> None:
    # K around K * xmax * 128 = INT32_MAX (the other fast paths' limit; the chunked sums have none),
    # all-min codes with the extreme inputs: the largest sums, in every chunk
    xmax = 128 if signed else 2**ib - 1
    kmax = (2**31 - 1) // (xmax * 128)
    for k, view in itertools.product((kmax - 3, kmax + 1), (4, 2)):
        q = _quant(view, False, ib, signed, 32)
        z = np.zeros(5, np.int64)
        lo, hi = q.inp.range
        for x in (np.full(k, lo), np.full(k, hi)):
            compare("fully_connected", x, np.full((5, k), -8), z, z, z, q)


def _fc_batched_host(x2: np.ndarray, w: np.ndarray, bias, mult, shift, q: LayerQuant, variant: str) -> np.ndarray:
    """bp_fully_connected with batches = x2.shape[0] (ckernels.fully_connected passes one row)."""
    nb, cin = x2.shape
    cout = w.shape[0]
    m, s = ckernels._requant_arrays(q, mult, shift, cout)
    call = ckernels._Call(variant)
    out = ckernels._out_buffer(nb, cout, q.out)
    st = call.mod.lib.bp_fully_connected(call.quant(q), call.requant(m, s), nb, cin, cout,
                                         call.ptr(pack(np.asarray(x2), q.inp.bits, q.inp.signed), "uint8_t *"),
                                         call.ptr(pack(np.asarray(w), q.w_stored, True), "uint8_t *"),
                                         call.ptr(ckernels._bias(bias, cout), "int32_t *"), call.ptr(out, "void *"))
    call.check("bp_fully_connected", st)
    return ckernels._read_out(out, cout, q.out)


def _batched_ref(x2: np.ndarray, *rest) -> np.ndarray:
    return np.stack([ops.fully_connected(x, *rest) for x in x2])


@pytest.mark.parametrize(("ib", "signed"), INPUTS)
@pytest.mark.parametrize(("view", "rnd"), VIEWS)
def test_fc_4bit_storage_batches(view: int, rnd: bool, ib: int, signed: bool) -> None:
    geoms = ((5, 3), (13, 4), (21, 9), (263, 5), (1031, 6))
    for args in _layers(view, rnd, ib, signed, tuple(OUTS), geoms, 31 + view + rnd + ib + signed, batches=3):
        want = _batched_ref(*args)
        for variant in VARIANTS:
            got = _fc_batched_host(*args, variant)
            COUNTS["fully_connected (batches)", "cases"] += 1
            if not np.array_equal(got, want):
                COUNTS["fully_connected (batches)", "mismatches"] += 1
            np.testing.assert_array_equal(got, want, err_msg=f"batched, C variant {variant!r}")


@pytest.mark.emulator
@pytest.mark.parametrize(("ib", "signed"), INPUTS)
@pytest.mark.parametrize(("view", "rnd"), VIEWS)
def test_fc_4bit_storage_on_board(board, view: int, rnd: bool, ib: int, signed: bool) -> None:  # noqa: F811
    for args in _layers(view, rnd, ib, signed, tuple(OUTS), BOARD_GEOMETRIES, view * 100 + rnd * 10 + ib + signed):
        _check(board, "fully_connected", *args)


@pytest.mark.emulator
@pytest.mark.parametrize(("ib", "signed"), [(8, False), (8, True), (4, False)])
def test_fc_4bit_storage_batches_on_board(board, ib: int, signed: bool) -> None:  # noqa: F811
    # batches of 3 input rows (odd K: rows not word aligned), both floor views
    for view in (4, 2):
        geoms = ((13, 4), (21, 9), (263, 5))
        for x2, w, bias, mult, shift, q in _layers(view, False, ib, signed, tuple(OUTS), geoms, 5 + view + ib, 3):
            nb, cin = x2.shape
            cout = w.shape[0]
            hdr = {0: OPS["fully_connected"], 40: nb, 41: cin, 42: cout, **board._quant_words(q)}
            blobs = [pack(x2, q.inp.bits, q.inp.signed).tobytes(), pack(w, q.w_stored, True).tobytes(), b""]
            raw = board._call(hdr, blobs, board._requant(q, bias, mult, shift, cout), board._out_bytes(nb, cout, q.out))
            got = board._out(raw, nb, cout, q.out)
            want = _batched_ref(x2, w, bias, mult, shift, q)
            COUNTS["fully_connected (board, batches)", "cases"] += 1
            if not np.array_equal(got, want):
                COUNTS["fully_connected (board, batches)", "mismatches"] += 1
            np.testing.assert_array_equal(got, want, err_msg="batched fully_connected on the board")


def test_fc_4bit_storage_mixed_values() -> None:
    # test_on_board._values mode mix (all-max, all-min, both extremes, random) on inputs and codes
    rng = np.random.default_rng(3)
    for ib, signed in INPUTS:
        q = _quant(4, False, ib, signed, 8)
        lo, hi = q.inp.range
        bias, mult, shift = _requant(rng, 6, 40, q)
        compare("fully_connected", _values(rng, (40,), lo, hi), _values(rng, (6, 40), -8, 7), bias, mult, shift, q)
