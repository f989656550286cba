"""Kernel test helper: C (through cffi) against the numpy reference, exact equality.

Every comparison goes through `compare()`, which counts cases and mismatches; the totals are printed
at the end of the run (the figure the integer-core issue asks for).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bitpath import ckernels
from bitpath.ref import ops
from bitpath.ref.requant import AccumulatorOverflow

COUNTS: Counter = Counter()


def compare(op: str, *args: Any, **kwargs: Any) -> np.ndarray:
    """Run ``op`` in numpy and in C with the same arguments; assert identical results or identical refusal."""
    ref_fn: Callable = getattr(ops, op)
    c_fn: Callable = getattr(ckernels, op)
    try:
        expected = ref_fn(*args, **kwargs)
    except AccumulatorOverflow:
        with pytest.raises(ckernels.KernelError) as exc:
            c_fn(*args, **kwargs)
        assert exc.value.status == -6, exc.value  # BP_ERR_ACC_RANGE
        COUNTS[op, "refused"] += 1
        return np.empty(0)
    got = c_fn(*args, **kwargs)
    COUNTS[op, "cases"] += 1
    if got.shape != expected.shape or not np.array_equal(got, expected):
        COUNTS[op, "mismatches"] += 1
    np.testing.assert_array_equal(got, expected)
    return got

