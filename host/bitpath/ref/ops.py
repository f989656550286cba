"""The integer ops, exactly as the C kernels compute them (docs/integer-semantics.md).

Inputs are unpacked integer arrays (activations HWC without the batch axis, weights as stored
codes); outputs are int64 arrays holding the output type's values.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bitpath.ref.formats import INT32_MAX, ActFormat, LayerQuant, Window
from bitpath.ref.packing import weight_view
from bitpath.ref.requant import (
    AccumulatorOverflow,
    check_int32,
    check_requant_params,
    requantize,
    rounding_shift,
)

__all__ = [
    "add",
    "avg_pool2d",
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "max_pool2d",
    "requantize",
]


def _check_values(x: np.ndarray, fmt: ActFormat, what: str) -> np.ndarray:
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what}: expected integers, got dtype {a.dtype}")
    lo, hi = fmt.range
    if a.size and (a.min() < lo or a.max() > hi):
        raise ValueError(f"{what}: values [{a.min()}, {a.max()}] outside {fmt.bits}-bit range [{lo}, {hi}]")
    return a.astype(np.int64)


def _check_shape(a: np.ndarray, ndim: int, what: str) -> None:
    if a.ndim != ndim or min(a.shape, default=0) < 1:
        raise ValueError(f"{what}: expected a non-empty {ndim}-d array, got shape {a.shape}")


def _finish(acc: np.ndarray, bias: np.ndarray, mult, shift, q: LayerQuant, what: str) -> np.ndarray:
    """acc (.., C) products without bias -> bias add, int32 check, requant (or int32 logits)."""
    n = acc.shape[-1]
    b = np.asarray(bias)
    if b.shape != (n,):
        raise ValueError(f"{what}: bias must have shape ({n},), got {b.shape}")
    full = acc + check_int32(b, f"{what}: bias")
    check_int32(full, f"{what}: accumulator")
    if q.out.bits == 32:
        return full
    m, s = check_requant_params(mult, shift, n, what)
    lo, hi = q.clamp
    return np.clip(rounding_shift(full * m, s), lo, hi)


def _static_acc_bound(k: int, q: LayerQuant, bias: np.ndarray, what: str) -> None:
    # Mirrors the C kernels' BP_ERR_ACC_RANGE check (|bias[o]| + K*xmax*wmax <= INT32_MAX for every
    # channel), so both refuse exactly the same layers.
    worst = k * q.inp.max_abs * q.w_max_abs
    b = np.abs(np.asarray(bias, dtype=np.int64))
    if worst + (int(b.max()) if b.size else 0) > INT32_MAX:
        raise AccumulatorOverflow(
            f"{what}: |bias| + {k} products of {q.inp.bits}-bit inputs and {q.w_view}-bit weights can exceed int32"
        )


def _patches(xa: np.ndarray, win: Window, kh: int, kw: int) -> np.ndarray:
    """Zero-padded input windows, ``(OH, OW, C, KH, KW)``, one per output pixel."""
    oh, ow = win.out_size(xa.shape[0], xa.shape[1], kh, kw)
    padded = np.pad(xa, ((win.pad_top, win.pad_bottom), (win.pad_left, win.pad_right), (0, 0)))
    return sliding_window_view(padded, (kh, kw), axis=(0, 1))[:: win.stride_h, :: win.stride_w][:oh, :ow]


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    q: LayerQuant,
    win: Window = Window(),
) -> np.ndarray:
    """2-D convolution, NHWC activations (without N), OHWI weights.

    Args:
        x: input ``(H, W, Cin)`` in ``q.inp``.
        w: stored weight codes ``(Cout, KH, KW, Cin)`` at ``q.w_stored`` bits; the kernel reads
            the ``q.w_view``-bit view.
        bias: int32 ``(Cout,)``.
        mult, shift: per-channel requantization ``(Cout,)`` (unused for int32 logits).
        q: widths and clamp.
        win: stride and zero padding.

    Returns:
        ``(OH, OW, Cout)`` in ``q.out``.
    """
    xa = _check_values(x, q.inp, "conv2d: input")
    _check_shape(xa, 3, "conv2d: input")
    wa = np.asarray(w)
    _check_shape(wa, 4, "conv2d: weights")
    cout, kh, kw, cin = wa.shape
    if cin != xa.shape[2]:
        raise ValueError(f"conv2d: weights have {cin} input channels, input has {xa.shape[2]}")
    _static_acc_bound(kh * kw * cin, q, bias, "conv2d")
    wv = weight_view(wa, q.w_stored, q.w_view, q.w_round)
    acc = np.einsum("yxcij,oijc->yxo", _patches(xa, win, kh, kw), wv, dtype=np.int64)
    return _finish(acc, bias, mult, shift, q, "conv2d")


def depthwise_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    q: LayerQuant,
    win: Window = Window(),
) -> np.ndarray:
    """Depthwise 2-D convolution with channel multiplier 1; weights ``(KH, KW, C)``."""
    xa = _check_values(x, q.inp, "depthwise_conv2d: input")
    _check_shape(xa, 3, "depthwise_conv2d: input")
    wa = np.asarray(w)
    _check_shape(wa, 3, "depthwise_conv2d: weights")
    kh, kw, c = wa.shape
    if c != xa.shape[2]:
        raise ValueError(f"depthwise_conv2d: weights have {c} channels, input has {xa.shape[2]}")
    _static_acc_bound(kh * kw, q, bias, "depthwise_conv2d")
    wv = weight_view(wa, q.w_stored, q.w_view, q.w_round)
    acc = np.einsum("yxcij,ijc->yxc", _patches(xa, win, kh, kw), wv, dtype=np.int64)
    return _finish(acc, bias, mult, shift, q, "depthwise_conv2d")


def fully_connected(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    q: LayerQuant,
) -> np.ndarray:
    """Fully connected layer: ``x (Cin,)``, weights ``(Cout, Cin)``; returns ``(Cout,)``."""
    xa = _check_values(x, q.inp, "fully_connected: input")
    _check_shape(xa, 1, "fully_connected: input")
    wa = np.asarray(w)
    _check_shape(wa, 2, "fully_connected: weights")
    if wa.shape[1] != xa.shape[0]:
        raise ValueError(f"fully_connected: weights have {wa.shape[1]} inputs, input has {xa.shape[0]}")
    _static_acc_bound(wa.shape[1], q, bias, "fully_connected")
    wv = weight_view(wa, q.w_stored, q.w_view, q.w_round)
    acc = wv @ xa
    return _finish(acc, bias, mult, shift, q, "fully_connected")


def max_pool2d(x: np.ndarray, fmt: ActFormat, kh: int, kw: int, win: Window = Window()) -> np.ndarray:
    """Max over each window of the valid (non-padded) inputs; same format out as in."""
    xa = _check_values(x, fmt, "max_pool2d: input")
    _check_shape(xa, 3, "max_pool2d: input")
    if fmt.bits == 32:
        raise ValueError("max_pool2d: int32 logits cannot be pooled")
    oh, ow = win.out_size(xa.shape[0], xa.shape[1], kh, kw)
    # A window that lies wholly in the padding has no valid input: refuse, as the C kernel does.
    lo = np.iinfo(np.int64).min
    padded = np.pad(xa, ((win.pad_top, win.pad_bottom), (win.pad_left, win.pad_right), (0, 0)), constant_values=lo)
    patches = sliding_window_view(padded, (kh, kw), axis=(0, 1))[:: win.stride_h, :: win.stride_w][:oh, :ow]
    out = patches.max(axis=(3, 4))
    if (out == lo).any():
        raise ValueError("max_pool2d: a window covers only padding")
    return out


def avg_pool2d(x: np.ndarray, fmt: ActFormat, kh: int, kw: int, stride_h: int = 1, stride_w: int = 1) -> np.ndarray:
    """Average pool without padding on unsigned inputs: ``floor((sum + n//2) / n)``, same bits out.

    Global average pooling is ``kh, kw = H, W``.
    """
    xa = _check_values(x, fmt, "avg_pool2d: input")
    _check_shape(xa, 3, "avg_pool2d: input")
    if fmt.signed or fmt.bits == 32:
        raise ValueError("avg_pool2d: input must be unsigned 2/4/8-bit activations")
    win = Window(stride_h, stride_w)
    oh, ow = win.out_size(xa.shape[0], xa.shape[1], kh, kw)
    patches = sliding_window_view(xa, (kh, kw), axis=(0, 1))[::stride_h, ::stride_w][:oh, :ow]
    n = kh * kw
    return (patches.sum(axis=(3, 4)) + n // 2) // n


def add(
    a: np.ndarray,
    a_fmt: ActFormat,
    b: np.ndarray,
    b_fmt: ActFormat,
    mult_a: int,
    mult_b: int,
    shift: int,
    out: ActFormat,
    act_min: int | None = None,
    act_max: int | None = None,
) -> np.ndarray:
    """Residual add with its own requantization: ``clamp((a*Ma + b*Mb + r) >> s)`` per element."""
    aa = _check_values(a, a_fmt, "add: a")
    ba = _check_values(b, b_fmt, "add: b")
    if aa.shape != ba.shape:
        raise ValueError(f"add: shapes differ: {aa.shape} vs {ba.shape}")
    if 32 in (a_fmt.bits, b_fmt.bits, out.bits):
        raise ValueError("add: operands and output must be 2/4/8-bit activations")
    m, s = check_requant_params(np.array([mult_a, mult_b]), np.array([shift, shift]), 2, "add")
    olo, ohi = out.range
    lo = olo if act_min is None else act_min
    hi = ohi if act_max is None else act_max
    if not (olo <= lo <= hi <= ohi):
        raise ValueError(f"add: act_min/act_max [{lo}, {hi}] must lie inside [{olo}, {ohi}]")
    return np.clip(rounding_shift(aa * m[0] + ba * m[1], np.int64(s[0])), lo, hi)


