"""Dyadic requantization: single rounding, round half up (docs/integer-semantics.md)."""

from __future__ import annotations

import math

import numpy as np

from bitpath.ref.formats import INT32_MAX, INT32_MIN, SHIFT_MAX, SHIFT_MIN, ActFormat


class AccumulatorOverflow(ValueError):
    """A value that the C kernels hold in an int32 does not fit one."""


def check_int32(values: np.ndarray, what: str) -> np.ndarray:
    """Raise :class:`AccumulatorOverflow` if any value leaves int32; return the values as int64."""
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < INT32_MIN or v.max() > INT32_MAX):
        raise AccumulatorOverflow(f"{what}: value range [{v.min()}, {v.max()}] does not fit int32")
    return v


def check_requant_params(mult: np.ndarray, shift: np.ndarray, n: int, what: str = "requant") -> tuple:
    """Validate per-channel multipliers and shifts; return them as int64 arrays of length ``n``."""
    m = np.asarray(mult)
    s = np.asarray(shift)
    if m.shape != (n,) or s.shape != (n,):
        raise ValueError(f"{what}: multiplier and shift must have shape ({n},), got {m.shape} and {s.shape}")
    check_int32(m, f"{what}: multiplier")
    s = s.astype(np.int64)
    if s.size and (s.min() < SHIFT_MIN or s.max() > SHIFT_MAX):
        raise ValueError(f"{what}: shift must lie in [{SHIFT_MIN}, {SHIFT_MAX}], got [{s.min()}, {s.max()}]")
    return m.astype(np.int64), s


def rounding_shift(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``(x + r) >> shift`` with ``r = 2**(shift-1)`` (0 when shift is 0): round half up of ``x / 2**shift``.

    ``x`` must be int64 with ``|x| <= 2**62`` so that adding ``r`` cannot overflow.

    >>> rounding_shift(np.array([5, -5, 6, -6, 7]), np.array([1, 1, 2, 2, 0])).tolist()
    [3, -2, 2, -1, 7]
    """
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    r = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return (x + r) >> s


def requantize(
    acc: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    act_min: int,
    act_max: int,
    out: ActFormat | None = None,
) -> np.ndarray:
    """``clamp((acc * M + r) >> s, act_min, act_max)`` per channel; channels are the last axis.

    ``out``, if given, is the output format; the clamp must lie inside its range.

    >>> requantize(np.array([[100, -100]]), np.array([3 << 29, 3 << 29]), np.array([31, 31]), 0, 255).tolist()
    [[75, 0]]
    """
    a = check_int32(acc, "requantize: acc")
    m, s = check_requant_params(mult, shift, a.shape[-1])
    if act_min > act_max:
        raise ValueError(f"act_min {act_min} > act_max {act_max}")
    if out is not None and not (out.range[0] <= act_min and act_max <= out.range[1]):
        raise ValueError(f"act_min/act_max [{act_min}, {act_max}] must lie inside {out.range}")
    return np.clip(rounding_shift(a * m, s), act_min, act_max)


def quantize_multiplier(scale: float) -> tuple[int, int]:
    """Encode a real ``scale`` as ``(M, s)``: ``M = round(scale * 2**s)``, ``|M| < 2**31``, largest ``s <= 62``.

    Rounding of the multiplier is half away from zero; the result satisfies
    ``|scale - M / 2**s| <= 2**-(s+1)``.

    >>> quantize_multiplier(0.75)
    (1610612736, 31)
    >>> quantize_multiplier(0.0)
    (0, 0)
    """
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite, got {scale}")
    if scale == 0.0:
        return 0, 0
    _, e = math.frexp(abs(scale))  # abs(scale) = f * 2**e, 0.5 <= f < 1
    s = min(SHIFT_MAX, 31 - e)
    if s < SHIFT_MIN:
        raise ValueError(f"scale {scale} is too large for an int32 multiplier with shift >= 0")
    m = math.floor(abs(scale) * 2.0**s + 0.5)
    if m >= 2**31:  # rounding carried into bit 31
        s -= 1
        if s < SHIFT_MIN:
            raise ValueError(f"scale {scale} is too large for an int32 multiplier with shift >= 0")
        m = math.floor(abs(scale) * 2.0**s + 0.5)
    return (-m if scale < 0 else m), s
