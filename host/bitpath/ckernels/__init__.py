"""The C kernels on the host, through cffi (API mode), with typed, validating wrappers.

The wrappers take and return the same unpacked integer arrays as :mod:`bitpath.ref.ops`, so a test
compares the two with one line. They pack the operands as the firmware stores them, call the
C kernel, check its status, and unpack the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bitpath.ckernels.build import build, load_module
from bitpath.ref.formats import INT32_MAX, INT32_MIN, SHIFT_MAX, ActFormat, LayerQuant, Window
from bitpath.ref.packing import pack, unpack

__all__ = [
    "KernelError",
    "add",
    "avg_pool2d",
    "build",
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "load",
    "max_pool2d",
    "requantize",
]

STATUS_NAMES = {
    0: "BP_OK",
    -1: "BP_ERR_ARG",
    -2: "BP_ERR_BITS",
    -3: "BP_ERR_SHAPE",
    -4: "BP_ERR_QUANT",
    -5: "BP_ERR_BUFFER",
    -6: "BP_ERR_ACC_RANGE",
}


class KernelError(RuntimeError):
    """A C kernel returned a non-zero bp_status_t."""

    def __init__(self, kernel: str, status: int) -> None:
        self.kernel = kernel
        self.status = status
        super().__init__(f"{kernel} returned {STATUS_NAMES.get(status, status)} ({status})")


_mods: dict[str, Any] = {}


def load(variant: str = "ref") -> Any:
    """Build (first use only) and import a kernel variant; returns the cffi module (``.ffi``, ``.lib``).

    ``"ref"`` is the portable C; ``"dsp"`` the ARMv7E-M variants compiled for the host.
    """
    if variant not in _mods:
        _mods[variant] = load_module(variant)
    return _mods[variant]


# ----------------------------------------------------------------------------- validation


def _int_array(name: str, a: Any, ndim: int, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(a)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: must not be empty (shape {arr.shape})")
    if arr.min() < lo or arr.max() > hi:
        raise ValueError(f"{name}: values [{arr.min()}, {arr.max()}] outside [{lo}, {hi}]")
    return arr.astype(np.int64)


def _act(name: str, fmt: Any) -> ActFormat:
    if not isinstance(fmt, ActFormat):
        raise ValueError(f"{name}: expected an ActFormat, got {type(fmt).__name__}")
    return fmt


def _packed_act(name: str, fmt: ActFormat) -> ActFormat:
    if _act(name, fmt).bits == 32:
        raise ValueError(f"{name}: must be a 2/4/8-bit activation format, got 32-bit logits")
    return fmt


def _quant(q: Any) -> LayerQuant:
    if not isinstance(q, LayerQuant):
        raise ValueError(f"q: expected a LayerQuant, got {type(q).__name__}")
    return q


def _window(win: Any) -> Window:
    if not isinstance(win, Window):
        raise ValueError(f"win: expected a Window, got {type(win).__name__}")
    return win


def _requant_arrays(q: LayerQuant, mult: Any, shift: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if q.out.bits == 32:  # logits: requantization unused, pass valid dummies
        return np.zeros(n, np.int32), np.zeros(n, np.int32)
    m = _int_array("mult", mult, 1, INT32_MIN, INT32_MAX)
    s = _int_array("shift", shift, 1, 0, SHIFT_MAX)
    if m.shape != (n,):
        raise ValueError(f"mult: expected shape ({n},), got {m.shape}")
    if s.shape != (n,):
        raise ValueError(f"shift: expected shape ({n},), got {s.shape}")
    return m.astype(np.int32), s.astype(np.int32)


# ----------------------------------------------------------------------------- cffi plumbing


class _Call:
    """Holds the numpy buffers of one call alive and turns them into C pointers."""

    def __init__(self, variant: str) -> None:
        self.mod = load(variant)
        self.ffi = self.mod.ffi
        self.keep: list[Any] = []

    def ptr(self, arr: np.ndarray, ctype: str) -> Any:
        arr = np.ascontiguousarray(arr)
        self.keep.append(arr)
        return self.ffi.cast(ctype, self.ffi.from_buffer(arr))

    def act(self, fmt: ActFormat) -> Any:
        return self.ffi.new("bp_act_t *", {"bits": fmt.bits, "is_signed": int(fmt.signed)})

    def quant(self, q: LayerQuant) -> Any:
        lo, hi = q.clamp if q.out.bits != 32 else (0, 0)
        return self.ffi.new(
            "bp_quant_t *",
            {
                "in": {"bits": q.inp.bits, "is_signed": int(q.inp.signed)},
                "out": {"bits": q.out.bits, "is_signed": int(q.out.signed)},
                "w_stored": q.w_stored,
                "w_view": q.w_view,
                "act_min": lo,
                "act_max": hi,
                "w_round": int(q.w_round),
            },
        )

    def requant(self, mult: np.ndarray, shift: np.ndarray) -> Any:
        rq = self.ffi.new("bp_requant_t *")
        rq.multiplier = self.ptr(mult.astype(np.int32), "int32_t *")
        rq.shift = self.ptr(shift.astype(np.int32), "int32_t *")
        return rq

    def window(self, win: Window) -> Any:
        return self.ffi.new(
            "bp_window_t *",
            {
                "stride_h": win.stride_h,
                "stride_w": win.stride_w,
                "pad_top": win.pad_top,
                "pad_bottom": win.pad_bottom,
                "pad_left": win.pad_left,
                "pad_right": win.pad_right,
            },
        )

    def dims(self, n: int, h: int, w: int, c: int) -> Any:
        return self.ffi.new("bp_dims_t *", {"n": n, "h": h, "w": w, "c": c})

    @staticmethod
    def check(kernel: str, status: int) -> None:
        if status != 0:
            raise KernelError(kernel, status)


def _out_buffer(rows: int, n: int, fmt: ActFormat) -> np.ndarray:
    if fmt.bits == 32:
        return np.zeros((rows, n), np.int32)
    return np.zeros((rows, (n * fmt.bits + 7) // 8), np.uint8)


def _read_out(buf: np.ndarray, n: int, fmt: ActFormat) -> np.ndarray:
    if fmt.bits == 32:
        return buf.astype(np.int64)
    return unpack(buf, fmt.bits, fmt.signed, n)


def _bias(bias: Any, n: int) -> np.ndarray:
    b = _int_array("bias", bias, 1, INT32_MIN, INT32_MAX)
    if b.shape != (n,):
        raise ValueError(f"bias: expected shape ({n},), got {b.shape}")
    return b.astype(np.int32)


def _operands(q: LayerQuant, x: Any, w: Any, x_ndim: int, w_ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Input values in ``q.inp``'s range and stored weight codes in ``q.w_stored``'s, as int64 arrays."""
    xa = _int_array("x", x, x_ndim, *q.inp.range)
    wa = _int_array("w", w, w_ndim, *ActFormat(q.w_stored, True).range)
    return xa, wa


# ----------------------------------------------------------------------------- kernels


def conv2d(
    x: Any, w: Any, bias: Any, mult: Any, shift: Any, q: LayerQuant, win: Window = Window(), *, variant: str = "ref"
) -> np.ndarray:
    """``bp_conv2d``: same arguments and result as :func:`bitpath.ref.ops.conv2d`."""
    q, win = _quant(q), _window(win)
    xa, wa = _operands(q, x, w, 3, 4)
    cout, kh, kw, cin = wa.shape
    h, wd, c = xa.shape
    if cin != c:
        raise ValueError(f"w: has {cin} input channels, x has {c}")
    oh, ow = win.out_size(h, wd, kh, kw)
    b = _bias(bias, cout)
    m, s = _requant_arrays(q, mult, shift, cout)
    call = _Call(variant)
    ffi, lib = call.ffi, call.mod.lib
    fdims = call.dims(cout, kh, kw, cin)
    scratch = np.zeros(max(lib.bp_conv2d_get_buffer_size(fdims), 2), np.uint8)
    ctx = ffi.new("bp_context_t *", {"buf": call.ptr(scratch, "void *"), "size": scratch.size})
    out = _out_buffer(oh * ow, cout, q.out)
    st = lib.bp_conv2d(
        ctx,
        call.window(win),
        call.quant(q),
        call.requant(m, s),
        call.dims(1, h, wd, c),
        call.ptr(pack(xa.reshape(h * wd, c), q.inp.bits, q.inp.signed), "uint8_t *"),
        fdims,
        call.ptr(pack(wa.reshape(cout, -1), q.w_stored, True), "uint8_t *"),
        call.ptr(b, "int32_t *"),
        call.dims(1, oh, ow, cout),
        call.ptr(out, "void *"),
    )
    call.check("bp_conv2d", st)
    return _read_out(out, cout, q.out).reshape(oh, ow, cout)


def depthwise_conv2d(
    x: Any, w: Any, bias: Any, mult: Any, shift: Any, q: LayerQuant, win: Window = Window(), *, variant: str = "ref"
) -> np.ndarray:
    """``bp_depthwise_conv2d``: same arguments and result as :func:`bitpath.ref.ops.depthwise_conv2d`."""
    q, win = _quant(q), _window(win)
    xa, wa = _operands(q, x, w, 3, 3)
    kh, kw, c = wa.shape
    h, wd, cx = xa.shape
    if c != cx:
        raise ValueError(f"w: has {c} channels, x has {cx}")
    oh, ow = win.out_size(h, wd, kh, kw)
    b = _bias(bias, c)
    m, s = _requant_arrays(q, mult, shift, c)
    call = _Call(variant)
    out = _out_buffer(oh * ow, c, q.out)
    st = call.mod.lib.bp_depthwise_conv2d(
        call.window(win),
        call.quant(q),
        call.requant(m, s),
        call.dims(1, h, wd, c),
        call.ptr(pack(xa.reshape(h * wd, c), q.inp.bits, q.inp.signed), "uint8_t *"),
        call.dims(1, kh, kw, c),
        call.ptr(pack(wa.reshape(kh * kw, c), q.w_stored, True), "uint8_t *"),
        call.ptr(b, "int32_t *"),
        call.dims(1, oh, ow, c),
        call.ptr(out, "void *"),
    )
    call.check("bp_depthwise_conv2d", st)
    return _read_out(out, c, q.out).reshape(oh, ow, c)


def fully_connected(
    x: Any, w: Any, bias: Any, mult: Any, shift: Any, q: LayerQuant, *, variant: str = "ref"
) -> np.ndarray:
    """``bp_fully_connected``: same arguments and result as :func:`bitpath.ref.ops.fully_connected`."""
    q = _quant(q)
    xa, wa = _operands(q, x, w, 1, 2)
    cout, cin = wa.shape
    if cin != xa.shape[0]:
        raise ValueError(f"w: has {cin} inputs, x has {xa.shape[0]}")
    b = _bias(bias, cout)
    m, s = _requant_arrays(q, mult, shift, cout)
    call = _Call(variant)
    out = _out_buffer(1, cout, q.out)
    st = call.mod.lib.bp_fully_connected(
        call.quant(q),
        call.requant(m, s),
        1,
        cin,
        cout,
        call.ptr(pack(xa[None, :], q.inp.bits, q.inp.signed), "uint8_t *"),
        call.ptr(pack(wa, q.w_stored, True), "uint8_t *"),
        call.ptr(b, "int32_t *"),
        call.ptr(out, "void *"),
    )
    call.check("bp_fully_connected", st)
    return _read_out(out, cout, q.out)[0]


def _pool(kernel: str, x: Any, fmt: ActFormat, kh: int, kw: int, win: Window, variant: str) -> np.ndarray:
    fmt, win = _packed_act("fmt", fmt), _window(win)
    lo, hi = fmt.range
    xa = _int_array("x", x, 3, lo, hi)
    h, wd, c = xa.shape
    oh, ow = win.out_size(h, wd, kh, kw)
    call = _Call(variant)
    out = _out_buffer(oh * ow, c, fmt)
    st = getattr(call.mod.lib, kernel)(
        call.window(win),
        call.act(fmt),
        kh,
        kw,
        call.dims(1, h, wd, c),
        call.ptr(pack(xa.reshape(h * wd, c), fmt.bits, fmt.signed), "uint8_t *"),
        call.dims(1, oh, ow, c),
        call.ptr(out, "uint8_t *"),
    )
    call.check(kernel, st)
    return _read_out(out, c, fmt).reshape(oh, ow, c)


def max_pool2d(
    x: Any, fmt: ActFormat, kh: int, kw: int, win: Window = Window(), *, variant: str = "ref"
) -> np.ndarray:
    """``bp_max_pool2d``: same arguments and result as :func:`bitpath.ref.ops.max_pool2d`."""
    return _pool("bp_max_pool2d", x, fmt, kh, kw, win, variant)


def avg_pool2d(
    x: Any, fmt: ActFormat, kh: int, kw: int, stride_h: int = 1, stride_w: int = 1, *, variant: str = "ref"
) -> np.ndarray:
    """``bp_avg_pool2d``: same arguments and result as :func:`bitpath.ref.ops.avg_pool2d`."""
    if _packed_act("fmt", fmt).signed:
        raise ValueError("fmt: avg_pool2d needs unsigned activations")
    return _pool("bp_avg_pool2d", x, fmt, kh, kw, Window(stride_h, stride_w), variant)


def add(
    a: Any,
    a_fmt: ActFormat,
    b: Any,
    b_fmt: ActFormat,
    mult_a: int,
    mult_b: int,
    shift: int,
    out: ActFormat,
    act_min: int | None = None,
    act_max: int | None = None,
    *,
    variant: str = "ref",
) -> np.ndarray:
    """``bp_add``: same arguments and result as :func:`bitpath.ref.ops.add`; any shape, last axis = channels."""
    a_fmt, b_fmt, out = _packed_act("a_fmt", a_fmt), _packed_act("b_fmt", b_fmt), _packed_act("out", out)
    aa = np.asarray(a)
    ba = np.asarray(b)
    if aa.shape != ba.shape or aa.ndim < 1:
        raise ValueError(f"b: shape {ba.shape} differs from a's {aa.shape}")
    shape = aa.shape
    aa = _int_array("a", aa.reshape(-1, shape[-1]), 2, *a_fmt.range)
    ba = _int_array("b", ba.reshape(-1, shape[-1]), 2, *b_fmt.range)
    for name, v in (("mult_a", mult_a), ("mult_b", mult_b)):
        if not INT32_MIN <= int(v) <= INT32_MAX:
            raise ValueError(f"{name}: {v} does not fit int32")
    if not 0 <= int(shift) <= SHIFT_MAX:
        raise ValueError(f"shift: {shift} outside [0, {SHIFT_MAX}]")
    olo, ohi = out.range
    lo = olo if act_min is None else int(act_min)
    hi = ohi if act_max is None else int(act_max)
    if not olo <= lo <= hi <= ohi:
        raise ValueError(f"act_min/act_max: [{lo}, {hi}] must lie inside [{olo}, {ohi}]")
    rows, count = aa.shape
    call = _Call(variant)
    buf = _out_buffer(rows, count, out)
    st = call.mod.lib.bp_add(
        call.act(a_fmt),
        call.ptr(pack(aa, a_fmt.bits, a_fmt.signed), "uint8_t *"),
        call.act(b_fmt),
        call.ptr(pack(ba, b_fmt.bits, b_fmt.signed), "uint8_t *"),
        int(mult_a),
        int(mult_b),
        int(shift),
        call.act(out),
        lo,
        hi,
        rows,
        count,
        call.ptr(buf, "uint8_t *"),
    )
    call.check("bp_add", st)
    return _read_out(buf, count, out).reshape(shape)


def requantize(
    acc: Any,
    mult: Any,
    shift: Any,
    act_min: int,
    act_max: int,
    out: ActFormat | None = None,
    *,
    variant: str = "ref",
) -> np.ndarray:
    """``bp_requantize``: same result as :func:`bitpath.ref.requant.requantize` (channels = last axis).

    ``out`` is the packed format the C kernel writes (default: the narrowest unsigned or signed
    8-bit format holding ``[act_min, act_max]``).
    """
    arr = np.asarray(acc)
    if arr.ndim < 1:
        raise ValueError("acc: needs at least one dimension")
    shape = arr.shape
    a = _int_array("acc", arr.reshape(-1, shape[-1]), 2, INT32_MIN, INT32_MAX)
    if out is None:
        out = ActFormat(8, signed=act_min < 0)
    out = _packed_act("out", out)
    rows, ch = a.shape
    olo, ohi = out.range
    if not olo <= act_min <= act_max <= ohi:
        raise ValueError(f"act_min/act_max: [{act_min}, {act_max}] must lie inside [{olo}, {ohi}]")
    m = _int_array("mult", mult, 1, INT32_MIN, INT32_MAX)
    s = _int_array("shift", shift, 1, 0, SHIFT_MAX)
    if m.shape != (ch,) or s.shape != (ch,):
        raise ValueError(f"mult/shift: expected shape ({ch},), got {m.shape} and {s.shape}")
    call = _Call(variant)
    buf = _out_buffer(rows, ch, out)
    st = call.mod.lib.bp_requantize(
        call.ptr(a.astype(np.int32), "int32_t *"),
        rows,
        ch,
        call.requant(m.astype(np.int32), s.astype(np.int32)),
        call.act(out),
        int(act_min),
        int(act_max),
        call.ptr(buf, "uint8_t *"),
    )
    call.check("bp_requantize", st)
    return _read_out(buf, ch, out).reshape(shape)
