"""Device cost table: the measured per-layer cost of every bit combination the kernels offer.

Nothing here assumes that fewer bits are cheaper: every number is read from the board's own cost
counter (``bp-layers``). On the emulated board (QEMU ``-icount shift=0``) the unit is *emulated
instructions*; a real board reports *cycles*, kept as a separate source of the same table.

Method (no new firmware): the IR's path table is replaced by synthetic paths that re-use the stored
weights as views. A weighted layer's cost depends on its stored width ``S`` (nested storage), the
weight view ``w <= S``, its input width ``a_in`` and its output width ``a_out`` (the next layer's
input). On path ``(S, w, p, q)`` every weighted layer is stored at ``S`` and read at ``w``, and the
tensors written by the weighted layers (and adds) alternate ``p, q, p, ...`` in graph order, so on a
chain every middle layer sees ``(a_in, a_out) = (p, q)`` or ``(q, p)``: the 9 ordered pairs ``(p, q)``
time every middle layer at every ``(w, a_in, a_out)``; the first layer always reads the 8-bit image,
the last one always writes int32 logits. Non-weighted steps (pools, adds) are timed at the width
they run at. The requantization constants are derived from path 0 by rescaling (the same clipping
range at the new widths), so activations look like a real model's; they only need to be valid.

The firmware holds at most 16 paths, so the synthetic paths are split into chunks; each chunk is
generated, built and run in the same model folder (incremental builds).

The table is cached as JSON keyed by the graph signature (ops, shapes, attributes: the cost does not
depend on the trained values), the kernel sources hash, the firmware sources hash and the board; a
table whose key differs from the current sources is refused with :class:`StaleCostTable`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitpath.ir import IR, WEIGHTED, products, validate, w_round
from bitpath.ref.bounds import check_layer
from bitpath.ref.formats import ActFormat
from bitpath.ref.packing import pack, weight_view
from bitpath.ref.requant import quantize_multiplier

FORMAT = "bitpath-select-costs"
VERSION = 1
BITS = (2, 4, 8)
MAX_PATHS = 16  # firmware/include/bp_model.h BP_MODEL_MAX_PATHS
REPO_ROOT = Path(__file__).resolve().parents[3]
EMULATED_UNIT = "instructions (emulated)"


class CostTableError(ValueError):
    """A cost table that cannot be read, or that lacks a needed measurement."""


class StaleCostTable(CostTableError):
    """The cached table was measured for other sources (graph, kernels, firmware or board)."""


# ---------------------------------------------------------------------------- cache key
def graph_signature(ir: IR) -> str:
    """Hash of what the cost depends on: input shape, graph (ops, inputs, shapes, attrs), weight shapes,
    and which layers' views round (a rounded view runs other kernel code; listed only when some do,
    so a floored IR keeps the signature it had before rounded views existed)."""
    h = ir.header
    sig = {
        "input": h["input"]["shape"],
        "graph": [{k: n[k] for k in ("name", "op", "inputs", "out_shape", "attrs")} for n in h["graph"]],
        "output": h["output"],
        "w_shape": {k: v["w_shape"] for k, v in sorted(h["layers"].items())},
    }
    rounded = sorted(k for k in h["layers"] if w_round(ir, k))
    if rounded:
        sig["w_round"] = rounded
    return hashlib.sha256(json.dumps(sig, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def firmware_hash(root: Path = REPO_ROOT) -> str:
    """Hash of the firmware that runs the model: runtime, protocol, HAL, PlatformIO glue, codegen (templates
    and the generator, which decides e.g. which paths read 2-bit view copies)."""
    files: list[Path] = []
    for sub in ("firmware/runtime", "firmware/src", "firmware/include", "firmware/boards", "firmware/pio_platform",
                "codegen_templates", "host/bitpath/codegen"):
        d = root / sub
        if d.is_dir():
            files += [p for p in d.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    for name in ("platformio.ini", "firmware/pio_bitpath.py"):
        if (root / name).is_file():
            files.append(root / name)
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def kernels_hash(variant: str = "dsp") -> str:
    from bitpath.ckernels.build import kernels_dir, source_hash

    return source_hash(kernels_dir(), variant)


def current_key(ir: IR, board: str = "qemu_f405", variant: str = "dsp") -> dict:
    return {"graph": graph_signature(ir), "kernels": kernels_hash(variant), "firmware": firmware_hash(),
            "board": board}


# ---------------------------------------------------------------------------- combinations
@dataclass(frozen=True)
class Combo:
    """How one weighted layer runs: stored width, weight view, input and output activation widths."""

    stored: int
    w: int
    a_in: int
    a_out: int

    def key(self) -> str:
        return f"s{self.stored}w{self.w}a{self.a_in}o{self.a_out}"


def _producers(ir: IR) -> list[str]:
    """Nodes that write a new activation tensor (weighted layers and adds), in graph order."""
    return [n["name"] for n in ir.graph if n["op"] in WEIGHTED or n["op"] == "add"]


def synthetic_specs(stored: Sequence[int] = BITS) -> list[tuple[int, int, int, int]]:
    """``(S, w, p, q)`` for every stored width S, view w <= S and ordered pair of activation widths."""
    return [(s, w, p, q) for s in sorted(stored, reverse=True) for w in BITS if w <= s for p in BITS for q in BITS]


def _widths(prod: list[str], output: str, p: int, q: int) -> dict[str, int]:
    out = {}
    j = 0
    for name in prod:
        if name == output:
            out[name] = 32
        else:
            out[name] = p if j % 2 == 0 else q
            j += 1
    return out


def _in_width(ir: IR, widths: dict[str, int], value: str) -> int:
    """Width of a graph value on a synthetic path (pools and flatten keep their input's width)."""
    if value == "input":
        return 8
    if value in widths:
        return widths[value]
    node = next(n for n in ir.graph if n["name"] == value)
    return _in_width(ir, widths, node["inputs"][0])


def _levels(bits: int, signed: bool) -> int:
    return (2 ** (bits - 1) - 1) if signed else (2**bits - 1)


def _rescaled(ir: IR, name: str, node: dict, ref: dict, ref_p: int, w: int, a_in: int, a_out: int,
              stored_ref: int, in_signed: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """bias, mult, shift of ``name`` at the new widths, rescaled from the reference path's constants.

    Effective weight step ~ 2^-w, input step ~ 1/levels(a_in), output step ~ 1/levels(a_out): the
    same real ranges quantized at the new widths.
    """
    w0 = ref["w_view"]
    ai0, ai_signed = ref["in"]
    ao0, ao_signed = ref["out"]
    acc_ratio = (2.0 ** (w - w0)) * _levels(a_in, in_signed) / _levels(ai0, ai_signed)  # old acc unit / new
    bias0 = ir.arrays[f"bias:{name}:{ref_p}"].astype(np.float64)
    bias = np.round(bias0 * acc_ratio)
    lim = 2**31 - 1 - products(node) * ActFormat(a_in, in_signed).max_abs * (1 << (w - 1))
    bias = np.clip(bias, -max(lim, 0), max(lim, 0)).astype(np.int32)
    if a_out == 32:
        return bias, None, None
    mult0 = ir.arrays[f"mult:{name}:{ref_p}"].astype(np.float64)
    shift0 = ir.arrays[f"shift:{name}:{ref_p}"].astype(np.float64)
    out_ratio = _levels(a_out, ao_signed) / _levels(ao0, ao_signed)
    scales = mult0 * np.exp2(-shift0) / acc_ratio * out_ratio
    mult = np.zeros(len(scales), np.int32)
    shift = np.zeros(len(scales), np.int32)
    for i, s in enumerate(scales):
        try:
            m, sh = quantize_multiplier(float(s))
        except ValueError:  # too large for shift >= 0: saturate (any legal value will do)
            m, sh = (2**31 - 1) * (1 if s > 0 else -1), 0
        mult[i], shift[i] = m, sh
    return bias, mult, shift


def synthetic_ir(ir: IR, specs: Sequence[tuple[int, int, int, int]], ref_path: int = 0) -> IR:
    """A copy of ``ir`` whose paths are ``specs`` (``(S, w, p, q)``, see the module doc); all in one stored width.

    Every spec must have the same ``S``; weights are re-stored at ``S`` (the S-bit view of the stored
    codes, rounded or floored as the layer's ``w_round`` says, which the synthetic IR keeps: its
    views are timed with the kernels' code for that rounding; a layer stored below S in ``ir`` keeps
    its codes, shifted up into the wider grid).
    """
    stored_set = {s for s, *_ in specs}
    if len(stored_set) != 1:
        raise ValueError(f"one stored width per synthetic IR, got {sorted(stored_set)}")
    (S,) = stored_set
    h = copy.deepcopy(ir.header)
    arrays: dict[str, np.ndarray] = {}
    output = h["output"]
    weighted = [n for n in ir.graph if n["op"] in WEIGHTED]
    for n in weighted:
        name = n["name"]
        meta = h["layers"][name]
        codes = ir.weights(name).reshape(-1, meta["row_len"])
        B = meta["w_stored"]
        new = weight_view(codes, B, S, w_round(ir, name)) if S <= B else codes * (1 << (S - B))
        arrays[f"w:{name}"] = pack(new, S, True)
        meta["w_stored"] = S
    prod = _producers(ir)
    paths = []
    for pi, (_, w, p, q) in enumerate(specs):
        nodes, arr, cost = derive_path(ir, ref_path, _widths(prod, output, p, q), {n["name"]: w for n in weighted})
        arrays.update({f"{k}:{pi}": v for k, v in arr.items()})
        paths.append({"name": f"s{S}w{w}p{p}q{q}", "layers": {}, "nodes": nodes, "cost_bitops": cost})
    h["paths"] = paths
    h["controller"] = None
    h["name"] = f"{h.get('name', 'model')}-costs-s{S}"
    out = IR(h, arrays)
    validate(out)
    return out


def derive_path(ir: IR, ref_path: int, widths: dict[str, int], w_of: dict[str, int]
                ) -> tuple[dict, dict[str, np.ndarray], int]:
    """Nodes and constants of a path whose producers write ``widths`` bits and whose layers read ``w_of`` views.

    ``widths``: output bits of every weighted layer and add (32 for the output layer); ``w_of``:
    weight view per weighted layer. Constants are rescaled from path ``ref_path`` (same real
    ranges at the new widths). Returns ``(nodes, arrays keyed "bias:<layer>" etc., bitops)``.
    The logits layer's ``out_scale`` is the real value of one logit unit on the new path.
    """
    ref = ir.header["paths"][ref_path]["nodes"]
    nodes: dict = {}
    arrays: dict[str, np.ndarray] = {}
    cost = 0
    for n in ir.graph:
        name, op = n["name"], n["op"]
        if op not in WEIGHTED and op != "add":
            continue
        r = ref[name]
        out_bits = widths[name]
        out_signed = True if out_bits == 32 else bool(r["out"][1])
        lo, hi = ActFormat(out_bits, out_signed).range if out_bits != 32 else (-(2**31), 2**31 - 1)
        if op == "add":
            ins = n["inputs"]
            ba = [_in_width(ir, widths, i) for i in ins]
            fa = ref_fmt(ir, ref_path, ins[0]), ref_fmt(ir, ref_path, ins[1])
            k_out = _levels(out_bits, out_signed) / _levels(*r["out"])
            ma = r["mult_a"] * 2.0 ** -r["shift"] * k_out * _levels(*fa[0]) / _levels(ba[0], fa[0][1])
            mb = r["mult_b"] * 2.0 ** -r["shift"] * k_out * _levels(*fa[1]) / _levels(ba[1], fa[1][1])
            big = max(abs(ma), abs(mb), 1e-30)
            sh = int(min(62, max(0, 30 - math.frexp(big)[1])))
            mab = [int(max(-(2**31), min(2**31 - 1, round(v * 2.0**sh)))) for v in (ma, mb)]
            nodes[name] = {"out": [out_bits, out_signed], "act_min": lo, "act_max": hi,
                           "mult_a": mab[0], "mult_b": mab[1], "shift": sh,
                           "out_scale": r.get("out_scale", 1.0) / k_out}
            continue
        w = w_of.get(name, r["w_view"])
        a_in = _in_width(ir, widths, n["inputs"][0])
        in_signed = bool(ref_fmt(ir, ref_path, n["inputs"][0])[1])
        bias, mult, shift = _rescaled(ir, name, n, r, ref_path, w, a_in, out_bits, 0, in_signed)
        check_layer(name, products(n), ActFormat(a_in, in_signed), w, bias)
        acc_ratio = (2.0 ** (w - r["w_view"])) * _levels(a_in, in_signed) / _levels(*r["in"])
        if out_bits == 32:
            scale = r.get("out_scale", 1.0) / acc_ratio
        else:
            scale = r.get("out_scale", 1.0) * _levels(*r["out"]) / _levels(out_bits, out_signed)
        nodes[name] = {"in": [a_in, in_signed], "out": [out_bits, out_signed], "w_view": w,
                       "act_min": lo, "act_max": hi,
                       "out_scale": scale}
        arrays[f"bias:{name}"] = bias
        if mult is not None:
            arrays[f"mult:{name}"] = mult
            arrays[f"shift:{name}"] = shift
        cost += _macs(n) * w * a_in
    return nodes, arrays, cost


def ref_fmt(ir: IR, p: int, value: str) -> tuple[int, bool]:
    """``(bits, signed)`` of a graph value on path ``p`` of ``ir``."""
    if value == "input":
        return (8, False)
    nodes = ir.header["paths"][p]["nodes"]
    if value in nodes:
        b, s = nodes[value]["out"]
        return (b, bool(s))
    node = next(n for n in ir.graph if n["name"] == value)
    return ref_fmt(ir, p, node["inputs"][0])


def _macs(node: dict) -> int:
    oh = int(np.prod(node["out_shape"][:-1])) if len(node["out_shape"]) == 3 else 1
    return oh * node["attrs"]["out_ch"] * products(node)


def step_names(ir: IR) -> list[str]:
    """Runtime layer order (what ``bp-layers`` reports): every graph node except flatten."""
    return [n["name"] for n in ir.graph if n["op"] != "flatten"]


def combo_of(ir: IR, p: int, name: str) -> dict:
    """What a step runs at on path ``p`` of ``ir``: Combo fields for weighted layers, widths for the rest."""
    node = next(n for n in ir.graph if n["name"] == name)
    q = ir.header["paths"][p]["nodes"]
    if node["op"] in WEIGHTED:
        return {"stored": ir.header["layers"][name]["w_stored"], "w": q[name]["w_view"],
                "a_in": q[name]["in"][0], "a_out": q[name]["out"][0]}
    ins = [ref_fmt(ir, p, i)[0] for i in node["inputs"]]
    d = {"a_in": ins[0]}
    if node["op"] == "add":
        d = {"a_in": ins[0], "b_in": ins[1], "a_out": q[name]["out"][0]}
    return d


# ---------------------------------------------------------------------------- measuring
def measure_device(dev, sir: IR, images: np.ndarray, log: Callable[[str], None] = lambda s: None
                   ) -> dict[str, dict[str, list[int]]]:
    """Per path of ``sir``: per step, the costs of ``images`` on an open :class:`bitpath.device.Client`.

    The device must run ``sir``'s generated model (checked through ``bp-info``'s IR hash).
    Returns ``{path_name: {step_name: [cost per image]}}`` plus the unit under key ``"__unit__"``.
    """
    info = dev.info()
    want = sir.content_hash()[:16]
    if info.ir_hash != want:
        raise CostTableError(f"the device runs model {info.ir_hash}, not the synthetic cost model {want}: "
                             "build and flash the model written by `bitpath select costs --synth-out`")
    steps = step_names(sir)
    if info.layers != len(steps):
        raise CostTableError(f"the device reports {info.layers} layers, the IR has {len(steps)} steps")
    out: dict[str, dict[str, list[int]]] = {}
    for pi, name in enumerate(sir.path_names):
        dev.set_path(pi)
        per: dict[str, list[int]] = {s: [] for s in steps}
        for x in images:
            dev.load(np.ascontiguousarray(x, dtype=np.uint8).tobytes())
            dev.infer(1, 0)
            c = dev.layer_costs()
            for s, v in zip(steps, c.layers, strict=True):
                per[s].append(int(v))
        out[name] = per
        log(f"  {name}: total {sum(np.mean(v) for v in per.values()):,.0f}")
    out["__unit__"] = info.counter_unit  # type: ignore[assignment]
    return out


def _accumulate(table: dict, sir: IR, measured: dict) -> None:
    layers = table["layers"]
    for pi, pname in enumerate(sir.path_names):
        for step, vals in measured[pname].items():
            ent = layers.setdefault(step, {"entries": {}})
            c = combo_of(sir, pi, step)
            key = json.dumps(c, sort_keys=True)
            e = ent["entries"].setdefault(key, {**c, "samples": []})
            e["samples"].extend(vals)


def _finish(table: dict, ir: IR) -> dict:
    """Turn the sample lists into sorted entries with mean/min/max."""
    nodes = {n["name"]: n for n in ir.graph}
    out = {}
    for step in step_names(ir):
        ent = table["layers"].get(step, {"entries": {}})
        rows = []
        for e in ent["entries"].values():
            s = e.pop("samples")
            rows.append({**e, "cost": float(np.mean(s)), "min": int(min(s)), "max": int(max(s)), "n": len(s)})
        rows.sort(key=lambda r: tuple(-r.get(k, 0) for k in ("stored", "w", "a_in", "b_in", "a_out")))
        n = nodes[step]
        out[step] = {"op": n["op"], "macs": _macs(n) if n["op"] in WEIGHTED else 0,
                     "weighted": n["op"] in WEIGHTED, "entries": rows}
    return out


def build_synthetic(ir: IR, stored: Sequence[int] = BITS) -> list[IR]:
    """The synthetic cost IRs (chunks of at most 16 paths, one stored width each)."""
    irs = []
    for s in sorted(stored, reverse=True):
        specs = [sp for sp in synthetic_specs([s])]
        for i in range(0, len(specs), MAX_PATHS):
            irs.append(synthetic_ir(ir, specs[i : i + MAX_PATHS]))
    return irs


def default_images(ir: IR, n: int, seed: int = 0) -> np.ndarray:
    """Deterministic pseudo-random images (instruction counts vary little with the input)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *ir.header["input"]["shape"]), dtype=np.int64).astype(np.uint8)


def measure_emulated(
    ir: IR,
    images: np.ndarray | None = None,
    *,
    n_images: int = 2,
    stored: Sequence[int] = BITS,
    board: str = "qemu_f405",
    work_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Measure the cost table of ``ir`` on the emulated board (generate, build, run every synthetic path)."""
    import tempfile

    from bitpath.codegen import render
    from bitpath.device import build as _build
    from bitpath.device.client import Client
    from bitpath.device.emulate import Emulator

    if board != "qemu_f405":
        raise CostTableError(f"only the emulated board qemu_f405 is measured automatically, not {board!r}; "
                             "for a real board use --synth-out, flash, then --port")
    imgs = default_images(ir, n_images) if images is None else np.asarray(images, dtype=np.uint8)
    key_before = current_key(ir, board)
    table = {"layers": {}}
    unit = None
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bitpath-costs-")
        work_dir = tmp.name
    model_dir = Path(work_dir) / "model"
    try:
        for k, sir in enumerate(build_synthetic(ir, stored)):
            log(f"[{k + 1}] {len(sir.path_names)} synthetic paths, stored {sir.header['layers'][sir.graph[0]['name']]['w_stored'] if sir.graph[0]['op'] in WEIGHTED else '?'} bits: generate, build, run")  # noqa: E501
            render(sir, model_dir)
            elf = _build.build(board, model_dir=model_dir)
            with Emulator(elf) as emu, Client(emu.url, timeout=10.0) as dev:
                dev.sync()
                m = measure_device(dev, sir, imgs, log)
            unit = m.pop("__unit__")
            _accumulate(table, sir, m)
    finally:
        if tmp is not None:
            tmp.cleanup()
    out = _package(ir, table, board, unit or EMULATED_UNIT, len(imgs), stored)
    if out["key"] != key_before:
        raise StaleCostTable(f"the sources changed during the measurement ({key_before} -> {out['key']}); "
                             "measure again once they are stable")
    return out


def _package(ir: IR, table: dict, board: str, unit: str, n_images: int, stored: Sequence[int]) -> dict:
    key = current_key(ir, board)
    return {
        "format": FORMAT,
        "version": VERSION,
        "key": key,
        "ir_hash": ir.content_hash(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "unit": "instructions (emulated)" if unit in ("instructions", EMULATED_UNIT) else unit,
        "images_per_path": n_images,
        "stored": sorted(stored, reverse=True),
        "layers": _finish(table, ir),
        "steps": step_names(ir),
        "controller": None,  # no controller yet: its cost joins the table once one exists
        "extra": [],
    }


# ---------------------------------------------------------------------------- cache
def check_key(table: dict, ir: IR, board: str | None = None, where: str = "cost table") -> None:
    """Raise :class:`StaleCostTable` unless ``table`` was measured for the current sources."""
    if table.get("format") != FORMAT or table.get("version") != VERSION:
        raise StaleCostTable(f"{where}: not a {FORMAT} version {VERSION} file "
                             f"(got {table.get('format')!r} version {table.get('version')!r}); re-measure with "
                             "`bitpath select costs IR --remeasure`")
    have = table.get("key", {})
    want = current_key(ir, board or have.get("board", "qemu_f405"))
    diff = [k for k in ("graph", "kernels", "firmware", "board") if have.get(k) != want[k]]
    if diff:
        what = ", ".join(f"{k} {have.get(k)!r} != current {want[k]!r}" for k in diff)
        raise StaleCostTable(f"{where} is stale ({what}): the "
                             + " and ".join({"graph": "model graph", "kernels": "kernel sources",
                                             "firmware": "firmware sources", "board": "board"}[k] for k in diff)
                             + " changed since it was measured; re-measure with `bitpath select costs IR --remeasure`")


def save(table: dict, path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, p)
    return p


def load(path: str | os.PathLike, ir: IR | None = None, board: str | None = None) -> dict:
    """Read a cost table; with ``ir``, refuse it (:class:`StaleCostTable`) unless it matches the sources."""
    p = Path(path)
    try:
        table = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CostTableError(f"{p}: cannot read the cost table ({e})") from e
    if ir is not None:
        check_key(table, ir, board, str(p))
    return table


def cached(ir: IR, path: str | os.PathLike, *, remeasure: bool = False, board: str = "qemu_f405",
           **kw) -> tuple[dict, bool]:
    """The cost table at ``path`` if it is current, else measured (and saved). Returns (table, measured).

    A stale table is never used silently: without ``remeasure`` it raises :class:`StaleCostTable`.
    """
    p = Path(path)
    if p.is_file() and not remeasure:
        return load(p, ir, board), False
    table = measure_emulated(ir, board=board, **kw)
    save(table, p)
    return table, True


def merge(table: dict, other: dict, ir: IR | None = None) -> dict:
    """Add ``other`` (e.g. cycles from a real board) to ``table['extra']`` as a separate source.

    Both must describe the same graph; the units are never mixed: the ILP uses one source at a time.
    """
    if other.get("format") != FORMAT:
        raise CostTableError("the merged file is not a cost table")
    if other["key"]["graph"] != table["key"]["graph"]:
        raise CostTableError(f"cannot merge: graph {other['key']['graph']} != {table['key']['graph']}")
    out = copy.deepcopy(table)
    src = {k: other[k] for k in ("key", "unit", "created", "images_per_path", "layers", "steps") if k in other}
    out["extra"] = [e for e in out.get("extra", []) if e["key"]["board"] != other["key"]["board"]
                    or e["unit"] != other["unit"]] + [src]
    return out


def source(table: dict, board: str | None = None, unit: str | None = None) -> dict:
    """The measurement set ``{"unit", "key", "layers"}`` for a board/unit (default: the main one)."""
    cands = [table] + list(table.get("extra", []))
    for c in cands:
        if (board is None or c["key"]["board"] == board) and (unit is None or c["unit"] == unit):
            return c
    raise CostTableError(f"no measurements for board={board!r} unit={unit!r}; have "
                         + ", ".join(f"{c['key']['board']}/{c['unit']}" for c in cands))


# ---------------------------------------------------------------------------- lookups
def weighted_cost(src: dict, layer: str, combo: Combo) -> float | None:
    for e in src["layers"][layer]["entries"]:
        if (e["stored"], e["w"], e["a_in"], e["a_out"]) == (combo.stored, combo.w, combo.a_in, combo.a_out):
            return e["cost"]
    return None


def step_cost(src: dict, step: str, a_in: int, b_in: int | None = None, a_out: int | None = None) -> float | None:
    """Cost of a non-weighted step at its input width (adds: also the second input and output widths)."""
    best = None
    for e in src["layers"][step]["entries"]:
        if e["a_in"] != a_in:
            continue
        if b_in is not None and e.get("b_in", b_in) != b_in:
            continue
        if a_out is not None and e.get("a_out", a_out) != a_out:
            continue
        best = e["cost"] if best is None else min(best, e["cost"])
    return best


def markdown(table: dict, src: dict | None = None) -> str:
    """The table as Markdown: one row per weighted layer and stored width, columns (w, a_in, a_out)."""
    src = src or table
    order = [s for s in table.get("steps", []) if s in src["layers"]] or list(src["layers"])
    lines = [f"unit: {src['unit']}, board {src['key']['board']}, kernels {src['key']['kernels']}, "
             f"firmware {src['key']['firmware']}, graph {src['key']['graph']}", ""]
    for step in order:
        ent = src["layers"][step]
        rows = ent["entries"]
        if not ent["weighted"]:
            cells = ", ".join(f"a{e['a_in']}" + (f"+b{e['b_in']}->o{e['a_out']}" if "b_in" in e else "")
                              + f": {e['cost']:,.0f}" for e in rows)
            lines.append(f"- `{step}` ({ent['op']}): {cells}")
    lines.append("")
    for step in order:
        ent = src["layers"][step]
        if not ent["weighted"]:
            continue
        rows = ent["entries"]
        outs = sorted({e["a_out"] for e in rows}, reverse=True)
        ins = sorted({e["a_in"] for e in rows}, reverse=True)
        lines.append(f"### `{step}` ({ent['op']}, {ent['macs']:,} MACs)")
        lines.append("")
        cols = [(a, o) for a in ins for o in outs]
        lines.append("| stored | w | " + " | ".join(f"a{a}->{'logits' if o == 32 else f'o{o}'}" for a, o in cols)
                     + " |")
        lines.append("|---|---|" + "---:|" * len(cols))
        for s in sorted({e["stored"] for e in rows}, reverse=True):
            for w in sorted({e["w"] for e in rows if e["stored"] == s}, reverse=True):
                cells = []
                for a, o in cols:
                    c = weighted_cost(src, step, Combo(s, w, a, o))
                    cells.append("" if c is None else f"{c:,.0f}")
                lines.append(f"| {s} | {w} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def iter_weighted(src: dict) -> Iterable[tuple[str, Combo, float]]:
    for step, ent in src["layers"].items():
        if ent["weighted"]:
            for e in ent["entries"]:
                yield step, Combo(e["stored"], e["w"], e["a_in"], e["a_out"]), e["cost"]
