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


VARIANTS = ("ref", "dsp")


def compare(op: str, *args: Any, **kwargs: Any) -> np.ndarray:
    """Run ``op`` in numpy and in every C variant with the same arguments.

    Asserts identical results, or identical refusal (AccumulatorOverflow / BP_ERR_ACC_RANGE).
    """
    ref_fn: Callable = getattr(ops, op)
    c_fn: Callable = getattr(ckernels, op)
    try:
        expected = ref_fn(*args, **kwargs)
    except AccumulatorOverflow:
        for variant in VARIANTS:
            with pytest.raises(ckernels.KernelError) as exc:
                c_fn(*args, **kwargs, variant=variant)
            assert exc.value.status == -6, exc.value  # BP_ERR_ACC_RANGE
        COUNTS[op, "refused"] += 1
        return np.empty(0)
    for variant in VARIANTS:
        got = c_fn(*args, **kwargs, variant=variant)
        COUNTS[op, "cases"] += 1
        if got.shape != expected.shape or not np.array_equal(got, expected):
            COUNTS[op, "mismatches"] += 1
        np.testing.assert_array_equal(got, expected, err_msg=f"{op}, C variant {variant!r}")
    return got

