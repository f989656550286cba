"""The bitpath IR: one versioned file holding the integer network for every bit-path.

No torch here: codegen, the cffi runner and the numpy reference read the IR through this module.
The file layout is documented in docs/ir.md. In short: a ``.npz`` (zip of ``.npy`` arrays) with

- ``header``: UTF-8 JSON (format, version, input, graph, layers, paths, source);
- ``hash``: hex SHA-256 over the canonical header and every array (name, dtype, shape, bytes);
- ``w:<layer>``: packed nested weight codes (uint8 rows, LSB first, at the stored width);
- ``bias:<layer>:<p>`` int32, ``mult:<layer>:<p>`` int32, ``shift:<layer>:<p>`` int32 per path index ``p``;
- ``ctrl/...``: the same arrays for the optional on-device controller of kind ``"net"``, a small network
  of its own (``header["controller"]["net"]``) whose int32 outputs score the paths (see :func:`controller_ir`).
  A controller of kind ``"escalate"`` has no network and no arrays: it runs ``stages`` (a path and
  per-class int32 margin thresholds each) cheapest first and falls back to ``final`` (see
  :func:`controller_kind` and ``bitpath.export.runner.escalate``).

:func:`load` validates everything and raises :class:`IRError` naming the layer and the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitpath.ref.bounds import check_layer
from bitpath.ref.formats import SHIFT_MAX, SHIFT_MIN, ActFormat, Window
from bitpath.ref.packing import row_bytes, unpack
from bitpath.ref.requant import AccumulatorOverflow

FORMAT = "bitpath-ir"
VERSION = 2  # written; 2 added layers.<name>.w_round (rounded views), which a version-1 reader would ignore
READS = (1, 2)  # read: version 1 files have no w_round and floor every view
OPS = ("conv2d", "depthwise_conv2d", "fully_connected", "max_pool2d", "avg_pool2d", "add", "flatten")
WEIGHTED = ("conv2d", "depthwise_conv2d", "fully_connected")
INPUT = "input"
CTRL_PREFIX = "ctrl/"
CONTROLLER_KINDS = ("net", "escalate")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class IRError(ValueError):
    """An IR file that fails validation; the message names the layer and the field."""


@dataclass
class IR:
    """An IR in memory: the JSON header and the named integer arrays."""

    header: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    # -------------------------------------------------------------- accessors
    @property
    def graph(self) -> list[dict]:
        return self.header["graph"]

    @property
    def path_names(self) -> list[str]:
        return [p["name"] for p in self.header["paths"]]

    @property
    def num_classes(self) -> int:
        """Logits per inference: the size of the output node (on a validated graph)."""
        out = next(n for n in self.graph if n["name"] == self.header["output"])
        return int(np.prod(out["out_shape"]))

    def path_index(self, path: int | str) -> int:
        if isinstance(path, str):
            if path not in self.path_names:
                raise IRError(f"no path named {path!r}; paths are {self.path_names}")
            return self.path_names.index(path)
        if not 0 <= path < len(self.path_names):
            raise IRError(f"path index {path} out of range (0..{len(self.path_names) - 1})")
        return path

    def weights(self, layer: str) -> np.ndarray:
        """Stored weight codes of ``layer`` in kernel layout (OHWI, HWC for depthwise, OI for FC), int64."""
        meta = self.header["layers"][layer]
        packed = self.arrays[f"w:{layer}"]
        codes = unpack(packed, meta["w_stored"], True, meta["row_len"])
        return codes.reshape(meta["w_shape"])

    def content_hash(self) -> str:
        return content_hash(self.header, self.arrays)

    # -------------------------------------------------------------- file IO
    def save(self, path: str | os.PathLike) -> str:
        """Validate, then write atomically (temporary file + ``os.replace``); returns the content hash."""
        validate(self)
        h = self.content_hash()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, header=np.frombuffer(_canonical(self.header), dtype=np.uint8),
                 hash=np.frombuffer(h.encode(), dtype=np.uint8), **self.arrays)
        tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return h


def _canonical(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def content_hash(header: dict, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the canonical JSON header and every array (sorted by name: name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    h.update(_canonical(header))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode() + b"\0" + a.dtype.str.encode() + b"\0" + repr(a.shape).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def load(path: str | os.PathLike, check_hash: bool = True) -> IR:
    """Read and validate an IR file."""
    p = Path(path)
    if not p.is_file():
        raise IRError(f"{p}: IR file not found")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - zip / npy errors
        raise IRError(f"{p}: not a bitpath IR (.npz) file: {e}") from e
    if "header" not in arrays:
        raise IRError(f"{p}: field 'header' missing")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IRError(f"{p}: field 'header' is not UTF-8 JSON: {e}") from e
    stored_hash = arrays.pop("hash", None)
    ir = IR(header, arrays)
    if check_hash:
        if stored_hash is None:
            raise IRError(f"{p}: field 'hash' missing")
        want = stored_hash.tobytes().decode(errors="replace")
        got = ir.content_hash()
        if want != got:
            raise IRError(
                f"{p}: field 'hash': content hash mismatch (file says {want[:16]}..., content is {got[:16]}...)"
            )
    validate(ir)
    return ir


# ---------------------------------------------------------------------- validation
def _need(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise IRError(f"{where}: field {key!r} missing")
    return d[key]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v, n: int | None, where: str, fld: str) -> list[int]:
    if not isinstance(v, list) or not all(_is_int(x) for x in v):
        raise IRError(f"{where}: field {fld!r} must be a list of integers, got {v!r}")
    if n is not None and len(v) != n:
        raise IRError(f"{where}: field {fld!r} must have {n} entries, got {len(v)}")
    return v


def _fmt(v, where: str, fld: str) -> ActFormat:
    if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], bool)):
        raise IRError(f"{where}: field {fld!r} must be [bits, signed], got {v!r}")
    try:
        return ActFormat(v[0], v[1])
    except ValueError as e:
        raise IRError(f"{where}: field {fld!r}: {e}") from e


def _array(ir: IR, key: str, dtype, shape, where: str, fld: str) -> np.ndarray:
    if key not in ir.arrays:
        raise IRError(f"{where}: field {fld!r} missing (array {key!r})")
    a = ir.arrays[key]
    if a.dtype != np.dtype(dtype):
        raise IRError(f"{where}: field {fld!r} must be {np.dtype(dtype)}, got {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        raise IRError(f"{where}: field {fld!r} must have shape {tuple(shape)}, got {tuple(a.shape)}")
    return a


def products(node: dict) -> int:
    """Products summed into one accumulator of a weighted node (K of the accumulator bound)."""
    a = node["attrs"]
    if node["op"] == "fully_connected":
        return a["in_ch"]
    kh, kw = a["kernel"]
    return kh * kw * (a["in_ch"] if node["op"] == "conv2d" else 1)


def validate(ir: IR) -> None:
    """Check structure, shapes, value ranges and accumulator bounds; raise :class:`IRError` naming layer and field."""
    h = ir.header
    if not isinstance(h, dict):
        raise IRError("header: must be a JSON object")
    if _need(h, "format", "header") != FORMAT:
        raise IRError(f"header: field 'format' must be {FORMAT!r}, got {h['format']!r}")
    if _need(h, "version", "header") not in READS:
        raise IRError(f"header: field 'version': this reader understands versions {', '.join(map(str, READS))}, "
                      f"got {h['version']!r}")
    inp = _need(h, "input", "header")
    in_shape = _int_list(_need(inp, "shape", "input"), 3, "input", "shape")
    graph = _need(h, "graph", "header")
    if not isinstance(graph, list) or not graph:
        raise IRError("header: field 'graph' must be a non-empty list")
    output = _need(h, "output", "header")
    layers = _need(h, "layers", "header")
    shapes: dict[str, tuple] = {INPUT: tuple(in_shape)}
    seen_weighted = []
    for node in graph:
        name = _need(node, "name", "graph node")
        where = f"layer {name!r}"
        op = _need(node, "op", where)
        if op not in OPS:
            raise IRError(f"{where}: field 'op': unknown op {op!r}; expected one of {OPS}")
        if name in shapes:
            raise IRError(f"{where}: field 'name': duplicate node name")
        ins = _need(node, "inputs", where)
        if not isinstance(ins, list) or len(ins) != (2 if op == "add" else 1):
            raise IRError(f"{where}: field 'inputs' must list {2 if op == 'add' else 1} producer(s), got {ins!r}")
        for i in ins:
            if i not in shapes:
                raise IRError(f"{where}: field 'inputs': {i!r} is not defined before this node")
        out_shape = tuple(_int_list(_need(node, "out_shape", where), None, where, "out_shape"))
        attrs = _need(node, "attrs", where)
        x = shapes[ins[0]]
        expect = _expected_shape(op, x, attrs, where, [shapes[i] for i in ins])
        if tuple(expect) != out_shape:
            raise IRError(f"{where}: field 'out_shape' is {out_shape}, the op gives {tuple(expect)}")
        shapes[name] = out_shape
        if op in WEIGHTED:
            seen_weighted.append(name)
            _validate_weights(ir, node, layers, where)
    if output not in shapes or output not in seen_weighted:
        raise IRError(f"header: field 'output': {output!r} is not a weighted layer of the graph")
    paths = _need(h, "paths", "header")
    if not isinstance(paths, list) or not paths:
        raise IRError("header: field 'paths' must be a non-empty list")
    names = [_need(p, "name", "path") for p in paths]
    if len(set(names)) != len(names):
        raise IRError(f"header: field 'paths': duplicate path names {names}")
    for pi, p in enumerate(paths):
        _validate_path(ir, pi, p, graph, layers, output)
    if h.get("controller") is not None:
        _validate_controller(ir, in_shape, len(paths))


def controller_ir(ir: IR) -> IR | None:
    """The controller network of ``ir`` as an IR of its own (one path, int32 scores, one per bit-path), or None
    (no controller, or a controller of kind ``"escalate"``, which has no network).

    The controller reads the same uint8 input as the network. Its header lives in
    ``header["controller"]["net"]`` (input, graph, output, layers, paths) and its arrays carry the
    ``ctrl/`` prefix, so the numpy reference, the planner and codegen run it like any network.
    """
    if controller_kind(ir) != "net":  # no controller, or one without a network (kind "escalate")
        return None
    c = ir.header["controller"]
    net = _need(c, "net", "controller")
    if not isinstance(net, dict):
        raise IRError("controller: field 'net' must be a JSON object")
    header = {"format": FORMAT, "version": VERSION, **net}
    arrays = {k[len(CTRL_PREFIX):]: v for k, v in ir.arrays.items() if k.startswith(CTRL_PREFIX)}
    return IR(header, arrays)


def controller_kind(ir: IR) -> str | None:
    """``"net"`` (a tiny network on the input scores the paths; also when ``kind`` is absent, as in IRs
    written before escalation existed), ``"escalate"`` (run paths cheapest first, stop at a confident
    top-1/top-2 margin) or None (no controller)."""
    c = ir.header.get("controller")
    if c is None:
        return None
    if not isinstance(c, dict):
        raise IRError("controller: must be a JSON object or null")
    kind = c.get("kind", "net")
    if kind not in CONTROLLER_KINDS:
        raise IRError(f"controller: field 'kind' must be one of {CONTROLLER_KINDS}, got {kind!r}")
    return kind


def _validate_escalate(ir: IR, num_paths: int) -> None:
    """The escalating controller: ``stages`` (path + per-class thresholds), ``final``; no arrays, no net."""
    c = ir.header["controller"]
    stray = sorted(k for k in ir.arrays if k.startswith(CTRL_PREFIX))
    if stray:
        raise IRError(f"controller: field 'kind' is 'escalate', which has no network, but the IR holds "
                      f"controller-net arrays {stray[:3]}{' ...' if len(stray) > 3 else ''}; drop the "
                      f"{CTRL_PREFIX!r} arrays or use kind 'net'")
    num_classes = ir.num_classes
    if num_classes < 2:
        raise IRError(f"controller: field 'kind': escalation compares the top two logits, but the output "
                      f"{ir.header['output']!r} has {num_classes} class")
    stages = _need(c, "stages", "controller")
    if not isinstance(stages, list) or not stages:
        raise IRError("controller: field 'stages' must be a non-empty list of {\"path\", \"threshold\"} objects")
    used: list[int] = []

    def path_field(v, fld: str) -> int:
        if not _is_int(v) or not 0 <= v < num_paths:
            raise IRError(f"controller: field {fld!r} must be a path index in 0..{num_paths - 1}, got {v!r}")
        if v in used:
            raise IRError(f"controller: field {fld!r}: path {v} is already used by an earlier stage; "
                          f"the stages and 'final' must name distinct paths")
        used.append(v)
        return v

    for si, st in enumerate(stages):
        where = f"stages[{si}]"
        if not isinstance(st, dict):
            raise IRError(f"controller: field {where!r} must be an object with 'path' and 'threshold', got {st!r}")
        path_field(_need(st, "path", f"controller: {where}"), f"{where}.path")
        thr = _int_list(_need(st, "threshold", f"controller: {where}"), num_classes, "controller",
                        f"{where}.threshold")
        if not all(0 <= v <= INT32_MAX for v in thr):
            raise IRError(f"controller: field '{where}.threshold' must hold values in [0, {INT32_MAX}] "
                          f"(a margin is never negative; int32 on the device), got {thr}")
    path_field(_need(c, "final", "controller"), "final")


def _validate_controller(ir: IR, in_shape: list[int], num_paths: int) -> None:
    if controller_kind(ir) == "escalate":
        _validate_escalate(ir, num_paths)
        return
    c = ir.header["controller"]
    if isinstance(c.get("net"), dict) and c["net"].get("controller") is not None:
        raise IRError("controller: field 'net.controller': a controller cannot have a controller")
    sub = controller_ir(ir)
    assert sub is not None
    try:
        validate(sub)
    except IRError as e:
        raise IRError(f"controller: {e}") from e
    if sub.header["input"]["shape"] != in_shape:
        raise IRError(f"controller: field 'net.input.shape' is {sub.header['input']['shape']}, "
                      f"the network reads {in_shape}")
    if len(sub.header["paths"]) != 1:
        raise IRError("controller: field 'net.paths' must hold exactly one path")
    out_node = next(n for n in sub.graph if n["name"] == sub.header["output"])
    if out_node["attrs"]["out_ch"] != num_paths:
        raise IRError(f"controller: field 'net.output' scores {out_node['attrs']['out_ch']} paths, "
                      f"the IR has {num_paths}")
    penalty = _int_list(_need(c, "penalty", "controller"), num_paths, "controller", "penalty")
    if not all(INT32_MIN <= v <= INT32_MAX for v in penalty):
        raise IRError(f"controller: field 'penalty' must hold int32 values, got {penalty}")
    order = _int_list(_need(c, "order", "controller"), num_paths, "controller", "order")
    if sorted(order) != list(range(num_paths)):
        raise IRError(f"controller: field 'order' must be a permutation of 0..{num_paths - 1}, got {order}")


def _expected_shape(op: str, x: tuple, a: dict, where: str, in_shapes: list) -> tuple:
    try:
        if op in ("conv2d", "depthwise_conv2d"):
            if len(x) != 3:
                raise IRError(f"{where}: field 'inputs': a convolution needs an HWC input, got shape {x}")
            kh, kw = _int_list(a.get("kernel"), 2, where, "attrs.kernel")
            sh, sw = _int_list(a.get("stride"), 2, where, "attrs.stride")
            t, b, left, r = _int_list(a.get("pad"), 4, where, "attrs.pad")
            if a.get("in_ch") != x[2]:
                raise IRError(f"{where}: field 'attrs.in_ch' is {a.get('in_ch')}, the input has {x[2]} channels")
            if op == "depthwise_conv2d" and a.get("out_ch") != x[2]:
                raise IRError(f"{where}: field 'attrs.out_ch' must equal in_ch for a depthwise conv")
            oh, ow = Window(sh, sw, t, b, left, r).out_size(x[0], x[1], kh, kw)
            return (oh, ow, a["out_ch"])
        if op == "fully_connected":
            if a.get("in_ch") != int(np.prod(x)) or len(x) != 1:
                raise IRError(f"{where}: field 'attrs.in_ch' is {a.get('in_ch')}, the input vector has shape {x}")
            return (a["out_ch"],)
        if op == "max_pool2d":
            kh, kw = _int_list(a.get("kernel"), 2, where, "attrs.kernel")
            sh, sw = _int_list(a.get("stride"), 2, where, "attrs.stride")
            t, b, left, r = _int_list(a.get("pad"), 4, where, "attrs.pad")
            oh, ow = Window(sh, sw, t, b, left, r).out_size(x[0], x[1], kh, kw)
            return (oh, ow, x[2])
        if op == "avg_pool2d":
            kh, kw = _int_list(a.get("kernel"), 2, where, "attrs.kernel")
            sh, sw = _int_list(a.get("stride"), 2, where, "attrs.stride")
            oh, ow = Window(sh, sw).out_size(x[0], x[1], kh, kw)
            return (oh, ow, x[2])
        if op == "flatten":
            return (int(np.prod(x)),)
        if op == "add":
            if in_shapes[0] != in_shapes[1]:
                raise IRError(f"{where}: field 'inputs': operand shapes differ {in_shapes}")
            return x
    except (ValueError, TypeError) as e:
        if isinstance(e, IRError):
            raise
        raise IRError(f"{where}: field 'attrs': {e}") from e
    raise IRError(f"{where}: field 'op': unknown op {op!r}")


def _validate_weights(ir: IR, node: dict, layers: dict, where: str) -> None:
    meta = _need(layers, node["name"], "header.layers") if isinstance(layers, dict) else None
    if meta is None:
        raise IRError(f"{where}: field 'layers' missing")
    stored = _need(meta, "w_stored", where)
    if stored not in (2, 4, 8):
        raise IRError(f"{where}: field 'w_stored' must be 2, 4 or 8, got {stored!r}")
    a = node["attrs"]
    if node["op"] == "conv2d":
        shape = [a["out_ch"], *a["kernel"], a["in_ch"]]
    elif node["op"] == "depthwise_conv2d":
        shape = [*a["kernel"], a["out_ch"]]
    else:
        shape = [a["out_ch"], a["in_ch"]]
    if _need(meta, "w_shape", where) != shape:
        raise IRError(f"{where}: field 'w_shape' is {meta['w_shape']}, expected {shape}")
    row_len = shape[-1] if node["op"] == "depthwise_conv2d" else int(np.prod(shape[1:]))
    rows = int(np.prod(shape)) // row_len
    if _need(meta, "row_len", where) != row_len:
        raise IRError(f"{where}: field 'row_len' is {meta['row_len']}, expected {row_len}")
    _array(ir, f"w:{node['name']}", np.uint8, (rows, row_bytes(row_len, stored)), where, "weights")
    if not isinstance(meta.get("w_round", False), bool):
        raise IRError(f"{where}: field 'w_round' must be true or false, got {meta['w_round']!r}")
    if "w_round" in meta and ir.header["version"] < 2:
        raise IRError(f"{where}: field 'w_round' needs IR version 2 (this file says version {ir.header['version']})")


def _validate_path(ir: IR, pi: int, p: dict, graph: list, layers: dict, output: str) -> None:
    pname = p["name"]
    nodes = _need(p, "nodes", f"path {pname!r}")
    fmts: dict[str, ActFormat] = {INPUT: ActFormat(8, False)}
    for node in graph:
        name, op = node["name"], node["op"]
        where = f"path {pname!r}: layer {name!r}"
        if op in ("max_pool2d", "avg_pool2d", "flatten"):
            fmts[name] = fmts[node["inputs"][0]]
            if op == "avg_pool2d" and fmts[name].signed:
                raise IRError(f"{where}: field 'inputs': average pooling needs unsigned input")
            continue
        q = _need(nodes, name, f"path {pname!r}: field 'nodes'")
        out = _fmt(_need(q, "out", where), where, "out")
        if (name == output) != (out.bits == 32):
            raise IRError(f"{where}: field 'out': only the output layer has 32-bit (logits) output")
        lo, hi = out.range
        amin, amax = _need(q, "act_min", where), _need(q, "act_max", where)
        if not (isinstance(amin, int) and isinstance(amax, int) and lo <= amin <= amax <= hi):
            raise IRError(f"{where}: field 'act_min'/'act_max' [{amin}, {amax}] must lie inside [{lo}, {hi}]")
        if op == "add":
            for i in node["inputs"]:
                if fmts[i].bits == 32:
                    raise IRError(f"{where}: field 'inputs': cannot add int32 logits")
            for fld in ("mult_a", "mult_b"):
                v = _need(q, fld, where)
                if not isinstance(v, int) or not -(2**31) <= v < 2**31:
                    raise IRError(f"{where}: field {fld!r} must be an int32, got {v!r}")
            sh = _need(q, "shift", where)
            if not isinstance(sh, int) or not SHIFT_MIN <= sh <= SHIFT_MAX:
                raise IRError(f"{where}: field 'shift' must lie in [{SHIFT_MIN}, {SHIFT_MAX}], got {sh!r}")
            fmts[name] = out
            continue
        inp = _fmt(_need(q, "in", where), where, "in")
        if inp != fmts[node["inputs"][0]]:
            raise IRError(f"{where}: field 'in' is {inp}, but its producer outputs {fmts[node['inputs'][0]]}")
        stored = layers[name]["w_stored"]
        view = _need(q, "w_view", where)
        if view not in (2, 4, 8) or view > stored:
            raise IRError(f"{where}: field 'w_view' must be 2, 4 or 8 and <= w_stored={stored}, got {view!r}")
        n = node["attrs"]["out_ch"]
        bias = _array(ir, f"bias:{name}:{pi}", np.int32, (n,), where, "bias")
        if out.bits != 32:
            _array(ir, f"mult:{name}:{pi}", np.int32, (n,), where, "mult")
            shift = _array(ir, f"shift:{name}:{pi}", np.int32, (n,), where, "shift")
            if shift.size and (shift.min() < SHIFT_MIN or shift.max() > SHIFT_MAX):
                raise IRError(f"{where}: field 'shift' must lie in [{SHIFT_MIN}, {SHIFT_MAX}], "
                              f"got [{shift.min()}, {shift.max()}]")
        try:
            check_layer(name, products(node), inp, view, bias)
        except AccumulatorOverflow as e:
            raise IRError(f"{where}: field 'bias': {e}") from e
        fmts[name] = out


def w_round(ir: IR, name: str) -> bool:
    """Whether the narrow views of a weighted layer round (``header.layers[name].w_round``).

    IRs written before rounded views existed have no such field: their views floor.
    """
    return bool(ir.header["layers"][name].get("w_round", False))


def layer_quant(ir: IR, path: int, name: str):
    """The :class:`bitpath.ref.formats.LayerQuant` of a weighted layer on a path."""
    from bitpath.ref.formats import LayerQuant

    q = ir.header["paths"][path]["nodes"][name]
    inp = ActFormat(q["in"][0], q["in"][1])
    out = ActFormat(q["out"][0], q["out"][1])
    amin = None if out.bits == 32 else q["act_min"]
    amax = None if out.bits == 32 else q["act_max"]
    return LayerQuant(inp, out, ir.header["layers"][name]["w_stored"], q["w_view"], amin, amax, w_round(ir, name))
