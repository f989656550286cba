"""Requantization rule and multiplier encoding, against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bitpath import ckernels
from bitpath.ref.formats import INT32_MAX, INT32_MIN
from bitpath.ref.requant import quantize_multiplier, requantize, rounding_shift

int32s = st.integers(INT32_MIN, INT32_MAX)


@given(acc=int32s, m=int32s, s=st.integers(0, 62))
def test_round_half_up_matches_exact_rationals(acc: int, m: int, s: int) -> None:
    exact = Fraction(acc * m, 2**s)
    expected = math.floor(exact + Fraction(1, 2))  # round half up, once
    assert int(rounding_shift(np.array([acc * m]), np.array([s]))[0]) == expected


@given(acc=int32s, m=int32s, s=st.integers(0, 62))
def test_c_requantize_at_int32_extremes(acc: int, m: int, s: int) -> None:
    expected = max(-128, min(127, math.floor(Fraction(acc * m, 2**s) + Fraction(1, 2))))
    assert int(requantize(np.array([[acc]]), np.array([m]), np.array([s]), -128, 127)[0, 0]) == expected
    assert int(ckernels.requantize(np.array([[acc]]), np.array([m]), np.array([s]), -128, 127)[0, 0]) == expected


def test_extreme_corners() -> None:
    corners = [
        (INT32_MIN, INT32_MIN, 62, 1),  # 2^62 / 2^62
        (INT32_MIN, INT32_MAX, 62, -1),  # -(2^62 - 2^31) / 2^62 = -0.9999995 -> -1
        (INT32_MAX, INT32_MAX, 0, 127),  # saturates high
        (INT32_MIN, 1, 0, -128),  # saturates low
        (3, 1, 1, 2),  # 1.5 rounds up
        (-3, 1, 1, -1),  # -1.5 rounds up (toward +inf)
    ]
    for acc, m, s, want in corners:
        args = (np.array([[acc]]), np.array([m]), np.array([s]), -128, 127)
        assert int(requantize(*args)[0, 0]) == want
        assert int(ckernels.requantize(*args)[0, 0]) == want


@given(scale=st.floats(min_value=2.0**-40, max_value=2.0**30, allow_nan=False) | st.floats(-1e3, -1e-6))
def test_quantize_multiplier_is_accurate(scale: float) -> None:
    m, s = quantize_multiplier(scale)
    assert INT32_MIN <= m <= INT32_MAX and 0 <= s <= 62
    # Half an LSB of the encoding: |scale - M/2^s| <= 2^-(s+1).
    assert abs(Fraction(scale) - Fraction(m, 2**s)) <= Fraction(1, 2 ** (s + 1))
    if s < 62:  # the multiplier uses its 31 bits unless the shift hit its ceiling
        assert abs(m) >= 2**30


def test_quantize_multiplier_refuses_huge_scales() -> None:
    import pytest

    with pytest.raises(ValueError, match="too large"):
        quantize_multiplier(2.0**31)
    with pytest.raises(ValueError, match="finite"):
        quantize_multiplier(float("nan"))
