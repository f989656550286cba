"""Accumulator bound checker: prove that a layer's int32 accumulator cannot overflow, or refuse it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bitpath.ref.formats import INT32_MAX, ActFormat
from bitpath.ref.requant import AccumulatorOverflow


@dataclass(frozen=True)
class AccBound:
    """The proved worst case of one layer's accumulator."""

    layer: str
    products: int  # K: products summed into one accumulator
    x_max_abs: int
    w_max_abs: int
    bias_max_abs: int

    @property
    def worst(self) -> int:
        """``|bias| + K * xmax * wmax``: no accumulator of this layer can exceed it in magnitude."""
        return self.bias_max_abs + self.products * self.x_max_abs * self.w_max_abs

    @property
    def headroom_bits(self) -> float:
        """log2(INT32_MAX / worst): how many bits are left before int32 overflows."""
        return float(np.log2(INT32_MAX / max(self.worst, 1)))


def check_layer(
    layer: str,
    products: int,
    inp: ActFormat,
    w_view_bits: int,
    bias: np.ndarray | None = None,
) -> AccBound:
    """Prove ``|acc| <= 2**31 - 1`` for a layer, or raise :class:`AccumulatorOverflow` naming it.

    Args:
        layer: the layer's name, used in the error.
        products: K, the number of products in one accumulator (``KH*KW*Cin`` for a conv,
            ``KH*KW`` for a depthwise conv, ``Cin`` for a fully connected layer).
        inp: the input activation format on this path.
        w_view_bits: the weight width this path reads.
        bias: the layer's int32 bias on this path (None: zero).

    >>> check_layer("fc", 64, ActFormat(8), 8).worst
    2088960
    """
    if products < 1:
        raise ValueError(f"layer {layer!r}: products must be >= 1, got {products}")
    wmax = 1 << (w_view_bits - 1)
    bmax = int(np.abs(np.asarray(bias, dtype=np.int64)).max()) if bias is not None and np.size(bias) else 0
    bound = AccBound(layer, products, inp.max_abs, wmax, bmax)
    worst = bound.worst
    if worst > INT32_MAX:
        raise AccumulatorOverflow(
            f"layer {layer!r}: worst-case accumulator {worst} exceeds int32 "
            f"({products} products of {inp.bits}-bit inputs and {w_view_bits}-bit weights, |bias| <= {bmax}); "
            "lower the bias scale, split the layer, or use narrower activations"
        )
    return bound
