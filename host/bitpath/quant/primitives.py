"""Pure quantization functions and straight-through estimators (torch).

Rounding is round-half-up everywhere (``floor(x + 0.5)``), the rule of the integer kernels'
requantization (docs/integer-semantics.md), so a fake-quant value that sits exactly on a tie
rounds the same way as the kernel.
"""

from __future__ import annotations

import torch


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 0.5)``.

    >>> round_half_up(torch.tensor([0.5, -0.5, 1.49, -1.5])).tolist()
    [1.0, 0.0, 1.0, -1.0]
    """
    return torch.floor(x + 0.5)


def round_pass(x: torch.Tensor) -> torch.Tensor:
    """Round half up in the forward pass, identity gradient (STE)."""
    return (round_half_up(x) - x).detach() + x


def floor_pass(x: torch.Tensor) -> torch.Tensor:
    """Floor in the forward pass, identity gradient (STE)."""
    return (torch.floor(x) - x).detach() + x


def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """Value ``x``, gradient multiplied by ``g`` (LSQ's step-size gradient scaling)."""
    return (x - x * g).detach() + x * g


def signed_range(bits: int) -> tuple[int, int]:
    """``(-2^(b-1), 2^(b-1) - 1)``.

    >>> signed_range(4)
    (-8, 7)
    """
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    """``(0, 2^b - 1)``.

    >>> unsigned_range(2)
    (0, 3)
    """
    return 0, (1 << bits) - 1


def nested_view(q: torch.Tensor, stored: int, view: int, round: bool = False, ste: bool = False) -> torch.Tensor:
    """The ``view``-bit nested view of integer-valued codes stored at ``stored`` bits.

    With ``k = stored - view``: floor, ``floor(q / 2^k)`` (the top bits), or, with ``round``,
    ``floor(min(q + 2^(k-1), 2^(stored-1) - 1) / 2^k)``: round half up to the view's grid, saturated
    at the top code. Exactly ``bitpath.ref.packing.weight_view(q, stored, view, round)`` (the C
    kernels' ``bp_view``), on float tensors holding integers (every step is exact in float).

    ``ste``: straight-through gradients for training: the floor passes the gradient unchanged; the
    rounded view's saturation is a clamp, so codes it saturates get no gradient through the view
    (as ``torch.clamp`` does; the recipe of docs/results/scripts/round_views.py).

    >>> nested_view(torch.tensor([-77.0, 77.0, -128.0, 127.0]), 8, 2).tolist()
    [-2.0, 1.0, -2.0, 1.0]
    >>> nested_view(torch.tensor([-77.0, 77.0, -128.0, 95.0, 96.0]), 8, 2, round=True).tolist()
    [-1.0, 1.0, -2.0, 1.0, 1.0]
    """
    if view > stored:
        raise ValueError(f"view width {view} > stored width {stored}")
    k = stored - view
    if k == 0:
        return q
    if round:
        lo, hi = signed_range(stored)
        q = torch.clamp(q + float(1 << (k - 1)), lo, hi)
    v = q / float(1 << k)
    return floor_pass(v) if ste else torch.floor(v)
