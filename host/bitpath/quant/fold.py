"""Fold BatchNorm and the quantization scales of one layer on one path into integer constants.

Pure numpy (no torch): the exporter and the integer-exact evaluation of the training model call the
same function, so both use the very same bias, multiplier, shift and clamp.

For a layer with input step ``s_x``, effective weight step ``s_w[o] = s_B[o] * 2^(B-b)``,
BatchNorm ``k[o] = gamma / sqrt(var + eps)``, ``c[o] = beta - k * mean + k * conv_bias`` and output
step ``s_y``, the real output is ``k * s_x * s_w * (acc + c / (k * s_x * s_w))``, so::

    bias[o] = round_half_up(c[o] / (k[o] * s_x * s_w[o]))            (int32, accumulator units)
    M[o], shift[o] = quantize_multiplier(k[o] * s_x * s_w[o] / s_y)    (may be negative: gamma < 0)

and the output code is ``clamp((acc * M + r) >> shift)`` (docs/integer-semantics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bitpath.ref.formats import INT32_MAX, INT32_MIN, value_range
from bitpath.ref.requant import quantize_multiplier


class FoldError(ValueError):
    """A layer's constants do not fit the integer formats."""


@dataclass(frozen=True)
class Folded:
    """Integer constants of one layer on one path."""

    bias: np.ndarray  # int64 (values fit int32)
    mult: np.ndarray  # int64 (values fit int32); zeros for logits
    shift: np.ndarray  # int64 in [0, 62]; zeros for logits
    act_min: int
    act_max: int
    acc_scale: np.ndarray  # float64 s_x * s_w[o] * k[o]: real value of one accumulator unit
    bn_scale: np.ndarray  # float64 k[o] (ones without BatchNorm)


def _rhu(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def fold_layer(
    layer: str,
    channels: int,
    s_x: float,
    s_w: np.ndarray,
    bn: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None,
    conv_bias: np.ndarray | None,
    out_bits: int,
    out_signed: bool,
    s_y: float | None,
    act: str | None,
) -> Folded:
    """Integer bias, requantization and clamp of one layer on one path (see module docstring).

    Args:
        layer: the layer's name, for errors.
        channels: number of output channels.
        s_x: input step.
        s_w: effective weight step per output channel (length C, or 1 for per-tensor).
        bn: ``(gamma, beta, running_mean, running_var, eps)`` or None.
        conv_bias: the layer's float bias or None.
        out_bits: 2/4/8, or 32 for int32 logits.
        out_signed: signed output format.
        s_y: output step (None for logits).
        act: None, "relu" or "relu6".
    """
    n = int(channels)
    s_w = np.broadcast_to(np.asarray(s_w, dtype=np.float64).reshape(-1), (n,))
    if bn is not None:
        gamma, beta, mean, var = (np.asarray(v, dtype=np.float64).reshape(-1) for v in bn[:4])
        k = gamma / np.sqrt(var + float(bn[4]))
        c = beta - k * mean
    else:
        k = np.ones(n)
        c = np.zeros(n)
    if conv_bias is not None:
        c = c + k * np.asarray(conv_bias, dtype=np.float64).reshape(-1)
    unit = float(s_x) * s_w * k
    if np.any(unit == 0) or not np.all(np.isfinite(unit)):
        bad = int(np.flatnonzero((unit == 0) | ~np.isfinite(unit))[0])
        raise FoldError(f"layer {layer!r}: channel {bad} has a zero or non-finite scale (BatchNorm gamma = 0?)")
    bias = _rhu(c / unit)
    if bias.min() < INT32_MIN or bias.max() > INT32_MAX:
        o = int(np.argmax(np.abs(bias)))
        raise FoldError(f"layer {layer!r}: field 'bias': channel {o} needs {bias[o]:.0f}, outside int32")
    if out_bits == 32:
        zeros = np.zeros(n, np.int64)
        return Folded(bias.astype(np.int64), zeros, zeros.copy(), INT32_MIN, INT32_MAX, unit, k)
    if s_y is None or not s_y > 0:
        raise FoldError(f"layer {layer!r}: output step must be > 0, got {s_y}")
    mult = np.zeros(n, np.int64)
    shift = np.zeros(n, np.int64)
    for o in range(n):
        try:
            mult[o], shift[o] = quantize_multiplier(float(unit[o] / s_y))
        except ValueError as e:
            raise FoldError(f"layer {layer!r}: field 'mult': channel {o}: {e}") from e
    lo, hi = value_range(out_bits, out_signed)
    if act == "relu6":
        hi = int(min(hi, math.floor(6.0 / s_y + 0.5)))
    if act in ("relu", "relu6"):
        lo = max(lo, 0)
    return Folded(bias.astype(np.int64), mult, shift, int(lo), int(hi), unit, k)


def fold_add(layer: str, s_a: float, s_b: float, s_y: float) -> tuple[int, int, int]:
    """``(Ma, Mb, shift)`` with one shift for both branches: ``out = (a*Ma + b*Mb + r) >> shift``."""
    ra, rb = s_a / s_y, s_b / s_y
    big = max(abs(ra), abs(rb))
    try:
        _, shift = quantize_multiplier(big)
    except ValueError as e:
        raise FoldError(f"add {layer!r}: field 'mult': {e}") from e
    ma, mb = (int(math.floor(r * 2.0**shift + 0.5)) for r in (ra, rb))
    while max(abs(ma), abs(mb)) > INT32_MAX and shift > 0:
        shift -= 1
        ma, mb = (int(math.floor(r * 2.0**shift + 0.5)) for r in (ra, rb))
    return ma, mb, shift
