"""Exact numpy reference of the integer network (docs/integer-semantics.md).

Every function works on unpacked integer arrays (any integer dtype in, int64 out) and computes in
int64, checking that every value the C kernels hold in an int32 fits one.
"""

from bitpath.ref.formats import ActFormat, LayerQuant, Window
from bitpath.ref.ops import (
    add,
    avg_pool2d,
    conv2d,
    depthwise_conv2d,
    fully_connected,
    max_pool2d,
    requantize,
)
from bitpath.ref.packing import pack, unpack, weight_view

__all__ = [
    "ActFormat",
    "LayerQuant",
    "Window",
    "add",
    "avg_pool2d",
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "max_pool2d",
    "pack",
    "requantize",
    "unpack",
    "weight_view",
]
