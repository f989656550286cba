"""Invalid parameters: the Python wrappers raise ValueError naming the argument; the C kernels return
the documented status and leave their output untouched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bitpath import ckernels
from bitpath.ref.formats import ActFormat, LayerQuant, Window

Q8 = LayerQuant()
X = np.zeros((4, 4, 2), np.int64)
W = np.zeros((3, 3, 3, 2), np.int64)
B = np.zeros(3, np.int64)
M = np.full(3, 1 << 30)
S = np.full(3, 31)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"x": X.astype(np.float32)}, "x"),
        ({"x": X[0]}, "x"),
        ({"x": X + 256}, "x"),
        ({"w": W + 200}, "w"),
        ({"w": W[:, :, :, :1]}, "w"),
        ({"bias": np.zeros(4, np.int64)}, "bias"),
        ({"bias": np.full(3, 2**31)}, "bias"),
        ({"mult": np.zeros(2, np.int64)}, "mult"),
        ({"shift": np.full(3, 63)}, "shift"),
        ({"shift": np.full(3, -1)}, "shift"),
        ({"q": "8-bit"}, "q"),
        ({"win": (1, 1)}, "win"),
    ],
)
def test_conv2d_wrapper_names_the_bad_argument(kwargs: dict, name: str) -> None:
    args: dict[str, Any] = {"x": X, "w": W, "bias": B, "mult": M, "shift": S, "q": Q8, "win": Window()}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        ckernels.conv2d(**args)


def test_format_objects_refuse_bad_widths() -> None:
    with pytest.raises(ValueError, match="activation bits"):
        ActFormat(3)
    with pytest.raises(ValueError, match="w_view"):
        LayerQuant(w_stored=4, w_view=8)
    with pytest.raises(ValueError, match="w_stored"):
        LayerQuant(w_stored=6, w_view=2)
    with pytest.raises(ValueError, match="w_round"):
        LayerQuant(w_round=1)  # a flag, as the IR stores it (JSON true/false), not a number
    with pytest.raises(ValueError, match="act_min"):
        LayerQuant(out=ActFormat(4), act_min=0, act_max=16)
    with pytest.raises(ValueError, match="padding"):
        Window(pad_top=-1)


class Raw:
    """Direct calls into the C library with hand-made structs, bypassing the Python checks."""

    def __init__(self) -> None:
        self.mod = ckernels.load()
        self.ffi, self.lib = self.mod.ffi, self.mod.lib
        self.keep: list[Any] = []

    def buf(self, n: int, fill: int = 0xAB) -> Any:
        b = self.ffi.new("uint8_t[]", n)
        self.ffi.memmove(b, bytes([fill]) * n, n)
        self.keep.append(b)
        return b

    def conv(self, **over: Any) -> tuple[int, bytes]:
        """A valid 4x4x2 -> 3 conv (3x3, pad 1, a8w8 -> 8); `over` replaces fields or arguments."""
        f = self.ffi
        q = f.new("bp_quant_t *", {"in": {"bits": 8, "is_signed": 0}, "out": {"bits": 8, "is_signed": 0},
                                   "w_stored": 8, "w_view": 8, "act_min": 0, "act_max": 255})
        for k, v in over.pop("q", {}).items():
            setattr(q, k, v)
        mult = f.new("int32_t[]", [1 << 30] * 3)
        shift = f.new("int32_t[]", over.pop("shift", [31] * 3))
        rq = f.new("bp_requant_t *", {"multiplier": mult, "shift": shift})
        win = f.new("bp_window_t *", over.pop("win", {"stride_h": 1, "stride_w": 1, "pad_top": 1,
                                                      "pad_bottom": 1, "pad_left": 1, "pad_right": 1}))
        fdims = f.new("bp_dims_t *", {"n": 3, "h": 3, "w": 3, "c": 2})
        scratch_size = over.pop("scratch_size", self.lib.bp_conv2d_get_buffer_size(fdims))
        ctx = f.new("bp_context_t *", {"buf": self.buf(max(scratch_size, 1)), "size": scratch_size})
        out = self.buf(4 * 4 * 3)
        args = {
            "ctx": ctx, "win": win, "q": q, "rq": rq,
            "input_dims": f.new("bp_dims_t *", {"n": 1, "h": 4, "w": 4, "c": 2}),
            "input": self.buf(4 * 4 * 2, 7),
            "filter_dims": fdims,
            "filter": self.buf(3 * 3 * 3 * 2, 1),
            "bias": f.new("int32_t[]", over.pop("bias", [0] * 3)),
            "output_dims": f.new("bp_dims_t *", over.pop("output_dims", {"n": 1, "h": 4, "w": 4, "c": 3})),
            "output": out,
        }
        args.update({k: (f.NULL if v is None else v) for k, v in over.items()})
        st = self.lib.bp_conv2d(*args.values())
        return st, bytes(f.buffer(out))


STATUS = {"ARG": -1, "BITS": -2, "SHAPE": -3, "QUANT": -4, "BUFFER": -5, "ACC_RANGE": -6}


@pytest.mark.parametrize(
    ("over", "status"),
    [
        ({}, 0),
        ({"input": None}, "ARG"),
        ({"ctx": None}, "ARG"),
        ({"q": {"w_view": 3}}, "BITS"),
        ({"q": {"w_stored": 4, "w_view": 4}}, 0),  # the bytes read as 4-bit codes: still a valid layer
        ({"q": {"w_stored": 2, "w_view": 4}}, "BITS"),
        ({"q": {"in": {"bits": 16, "is_signed": 0}}}, "BITS"),
        ({"q": {"out": {"bits": 32, "is_signed": 0}}}, "BITS"),
        ({"q": {"act_min": 10, "act_max": 5}}, "QUANT"),
        ({"q": {"act_max": 256}}, "QUANT"),
        ({"q": {"w_round": 2}}, "QUANT"),
        ({"q": {"w_round": -1}}, "QUANT"),
        ({"q": {"w_view": 4, "w_round": 1}}, 0),
        ({"shift": [31, 63, 31]}, "QUANT"),
        ({"shift": [-1, 31, 31]}, "QUANT"),
        ({"scratch_size": 10}, "BUFFER"),
        ({"output_dims": {"n": 1, "h": 5, "w": 4, "c": 3}}, "SHAPE"),
        ({"output_dims": {"n": 1, "h": 4, "w": 4, "c": 2}}, "SHAPE"),
        ({"output_dims": {"n": 1, "h": 0, "w": 4, "c": 3}}, "ARG"),
        ({"win": {"stride_h": 0, "stride_w": 1, "pad_top": 1, "pad_bottom": 1, "pad_left": 1, "pad_right": 1}},
         "SHAPE"),
        ({"bias": [2**31 - 1, 0, 0]}, "ACC_RANGE"),
    ],
)
def test_c_conv2d_status_and_untouched_output(over: dict, status: Any) -> None:
    raw = Raw()
    want = STATUS.get(status, status)
    st, out = raw.conv(**over)
    assert st == want
    if want != 0:
        assert out == bytes([0xAB]) * len(out), "a refused call must not write its output"
    else:
        assert out != bytes([0xAB]) * len(out)


def test_c_accumulator_range_boundary_matches_the_bound() -> None:
    # a8w8: K * 255 * 128 <= INT32_MAX holds up to K = 65793 and fails at 65794.
    raw = Raw()
    f, lib = raw.ffi, raw.lib
    q = f.new("bp_quant_t *", {"in": {"bits": 8, "is_signed": 0}, "out": {"bits": 32, "is_signed": 1},
                               "w_stored": 8, "w_view": 8, "act_min": 0, "act_max": 0})
    for k, want in ((65793, 0), (65794, -6)):
        out = f.new("int32_t[]", 1)
        st = lib.bp_fully_connected(q, f.NULL, 1, k, 1, raw.buf(k, 255), raw.buf(k, 0x80), f.NULL, out)
        assert st == want
        if want == 0:
            assert out[0] == -128 * 255 * k


def test_other_kernels_refuse_bad_parameters() -> None:
    raw = Raw()
    f, lib = raw.ffi, raw.lib
    d = f.new("bp_dims_t *", {"n": 1, "h": 4, "w": 4, "c": 3})
    one = f.new("bp_window_t *", {"stride_h": 1, "stride_w": 1})
    padded = f.new("bp_window_t *", {"stride_h": 1, "stride_w": 1, "pad_top": 1})
    u8 = f.new("bp_act_t *", {"bits": 8, "is_signed": 0})
    s8 = f.new("bp_act_t *", {"bits": 8, "is_signed": 1})
    bad = f.new("bp_act_t *", {"bits": 5, "is_signed": 0})
    o = f.new("bp_dims_t *", {"n": 1, "h": 2, "w": 2, "c": 3})
    x, out = raw.buf(48, 1), raw.buf(12)
    assert lib.bp_avg_pool2d(one, s8, 3, 3, d, x, o, out) == STATUS["BITS"]  # signed average pool
    assert lib.bp_avg_pool2d(padded, u8, 3, 3, d, x, o, out) == STATUS["SHAPE"]  # padding
    assert lib.bp_max_pool2d(one, bad, 3, 3, d, x, o, out) == STATUS["BITS"]
    assert lib.bp_max_pool2d(one, u8, 5, 3, d, x, o, out) == STATUS["SHAPE"]  # window > input
    far = f.new("bp_window_t *", {"stride_h": 1, "stride_w": 1, "pad_top": 3, "pad_bottom": 3})
    o_far = f.new("bp_dims_t *", {"n": 1, "h": 8, "w": 4, "c": 3})
    assert lib.bp_max_pool2d(far, u8, 1, 1, d, x, o_far, raw.buf(96)) == STATUS["SHAPE"]  # window only padding
    assert lib.bp_add(u8, x, u8, x, 1, 1, 63, u8, 0, 255, 4, 3, out) == STATUS["QUANT"]
    assert lib.bp_add(u8, x, u8, x, 1, 1, 0, u8, 0, 256, 4, 3, out) == STATUS["QUANT"]
    assert lib.bp_add(u8, f.NULL, u8, x, 1, 1, 0, u8, 0, 255, 4, 3, out) == STATUS["ARG"]
    assert lib.bp_requantize(f.NULL, 1, 3, f.NULL, u8, 0, 255, out) == STATUS["ARG"]
    assert bytes(f.buffer(out)) == bytes([0xAB]) * 12
    assert lib.bp_conv2d_get_buffer_size(f.new("bp_dims_t *", {"n": 1, "h": 0, "w": 3, "c": 3})) == STATUS["ARG"]
