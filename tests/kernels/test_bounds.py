"""The accumulator bound checker proves int32 safety or refuses the layer by name."""

from __future__ import annotations

import numpy as np
import pytest

from bitpath import ckernels
from bitpath.ref.bounds import check_layer
from bitpath.ref.formats import INT32_MAX, ActFormat, LayerQuant
from bitpath.ref.requant import AccumulatorOverflow


def test_accepts_a_typical_layer_and_reports_headroom() -> None:
    b = check_layer("conv2", 3 * 3 * 64, ActFormat(8), 8, bias=np.array([-5000, 7000]))
    assert b.worst == 7000 + 576 * 255 * 128
    assert 6.8 < b.headroom_bits < 6.9  # log2(2^31 / 18.8M)


def test_refuses_with_the_layer_name() -> None:
    with pytest.raises(AccumulatorOverflow, match="'stage3.fc'"):
        check_layer("stage3.fc", 65794, ActFormat(8), 8)
    with pytest.raises(AccumulatorOverflow, match="'head'"):
        check_layer("head", 10, ActFormat(8), 8, bias=np.array([INT32_MAX]))


@pytest.mark.parametrize(("in_bits", "w_bits"), [(8, 8), (4, 8), (8, 2), (2, 2)])
def test_boundary_agrees_with_the_c_kernels(in_bits: int, w_bits: int) -> None:
    # Largest K the checker accepts with a given bias, then K+1: the C kernel must agree both times.
    fmt = ActFormat(in_bits)
    per = fmt.max_abs * (1 << (w_bits - 1))
    bias = 12345
    k_max = (INT32_MAX - bias) // per
    assert check_layer("fc", k_max, fmt, w_bits, bias=np.array([bias])).worst <= INT32_MAX
    with pytest.raises(AccumulatorOverflow):
        check_layer("fc", k_max + 1, fmt, w_bits, bias=np.array([bias]))
    if k_max > 300_000:  # keep the C check cheap: only the tight cases run through the kernel
        return
    q = LayerQuant(fmt, ActFormat(32, True), 8, w_bits)
    x = np.full(k_max, fmt.range[1])
    w = np.full((1, k_max), -128)
    zero = np.zeros(1, np.int64)
    got = ckernels.fully_connected(x, w, np.array([bias]), zero, zero, q)
    assert int(got[0]) == bias - k_max * per
    with pytest.raises(ckernels.KernelError, match="BP_ERR_ACC_RANGE"):
        ckernels.fully_connected(np.append(x, 0), np.append(w, [[0]], axis=1), np.array([bias]), zero, zero, q)
