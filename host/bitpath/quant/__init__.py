"""Fake-quant primitives and modules (torch) matching docs/integer-semantics.md."""

from bitpath.quant.modules import ACT_MODES, WEIGHT_MODES, ActQuantizer, WeightQuantizer
from bitpath.quant.primitives import (
    floor_pass,
    grad_scale,
    nested_view,
    round_half_up,
    round_pass,
    signed_range,
    unsigned_range,
)

__all__ = [
    "ACT_MODES",
    "WEIGHT_MODES",
    "ActQuantizer",
    "WeightQuantizer",
    "floor_pass",
    "grad_scale",
    "nested_view",
    "round_half_up",
    "round_pass",
    "signed_range",
    "unsigned_range",
]
