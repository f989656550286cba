"""Shared cases of the 4-bit weight storage tests (test_conv_s4.py, test_fc_s4.py)."""

from __future__ import annotations

import numpy as np

from bitpath.ref.formats import LayerQuant

VIEWS = [(4, False), (2, False), (2, True)]  # (w_view, w_round) of 4-bit storage
INPUTS = [(8, False), (8, True), (4, False), (4, True), (2, False)]
OUTS = [8, 4, 2, 32]
# codes around the 2-bit view's rounding edges (c = 2 mod 4), the saturating 6 and 7, and -8
EDGE4 = np.array([-8, -7, -6, -5, -3, -2, -1, 0, 1, 2, 3, 5, 6, 7])


def weights4(rng: np.random.Generator, shape: tuple, mode: str) -> np.ndarray:
    """4-bit codes: "min" / "max" everywhere, "alt" (-8 and 7 alternating: the sign edge in both
    nibbles of each byte), "edges" (EDGE4) or random."""
    if mode == "min":
        return np.full(shape, -8)
    if mode == "max":
        return np.full(shape, 7)
    if mode == "alt":
        return np.where(np.arange(int(np.prod(shape))).reshape(shape) % 2 == 0, -8, 7)
    if mode == "edges":
        return rng.choice(EDGE4, shape)
    return rng.integers(-8, 8, shape)


def inputs4(rng: np.random.Generator, shape: tuple, q: LayerQuant, mode: str) -> np.ndarray:
    """Inputs of q's format: "hi" / "lo" everywhere, or random."""
    lo, hi = q.inp.range
    if mode == "hi":
        return np.full(shape, hi)
    if mode == "lo":
        return np.full(shape, lo)
    return rng.integers(lo, hi + 1, shape)
