"""Generate the C model (``model.c``) from an IR with Jinja2. Reads only the IR, never torch.

The generated file is data plus glue: packed nested weights, per-path constant tables, the layer
table for ``firmware/runtime`` and the ``bp_model`` descriptor of ``firmware/include/bp_model.h``.
All arithmetic stays in ``kernels/``.

View copies (``view_copies=True``, the default): a conv2d or fully connected layer stored wider than
2 bits that some path reads at a 2-bit view also gets that view packed at 2 bits, once per layer,
and those paths read the copy as 2-bit storage. The weights are the same values (the view, floor or
rounded as the layer says), so every result is the same bit for bit; the 2-bit-storage kernels are
faster on the DSP variants (docs/kernels.md: 0.83x and 0.80x of the rounded view on the default
CNN's conv2 and conv3 shapes) for K * Cout / 4 more bytes of flash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from bitpath import __version__
from bitpath.codegen.plan import CodegenError, Plan, check_plan, plan
from bitpath.ir import IR, controller_ir, controller_kind
from bitpath.ir import w_round as ir_w_round
from bitpath.ref.formats import ActFormat
from bitpath.ref.packing import pack, weight_view

__all__ = ["CodegenError", "Generated", "render", "templates_dir"]

OP_ENUM = {
    "conv2d": "BP_OP_CONV2D",
    "depthwise_conv2d": "BP_OP_DEPTHWISE_CONV2D",
    "fully_connected": "BP_OP_FULLY_CONNECTED",
    "max_pool2d": "BP_OP_MAX_POOL2D",
    "avg_pool2d": "BP_OP_AVG_POOL2D",
    "add": "BP_OP_ADD",
}
COPY_OPS = ("conv2d", "fully_connected")  # where a 2-bit copy of a 2-bit view runs faster than the view


def templates_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "codegen_templates"


@dataclass(frozen=True)
class Generated:
    """What :func:`render` wrote."""

    model_c: Path
    ir_hash: str
    arena_bytes: int
    weight_bytes: int
    plan: Plan
    copy_bytes: int = 0  # of weight_bytes: the 2-bit view copies


def _c_bytes(a: np.ndarray, per_line: int = 20) -> str:
    v = np.asarray(a, dtype=np.uint8).ravel()
    lines = [", ".join(f"0x{b:02x}" for b in v[i : i + per_line]) for i in range(0, len(v), per_line)]
    return ",\n    ".join(lines)


def _c_ints(a: np.ndarray, per_line: int = 8) -> str:
    v = np.asarray(a, dtype=np.int64).ravel()
    # INT32_MIN cannot be written as a plain literal in C: spell it as an expression.
    words = [("(-2147483647 - 1)" if x == -(2**31) else str(int(x))) for x in v]
    return ",\n    ".join(", ".join(words[i : i + per_line]) for i in range(0, len(words), per_line))


class _Pool:
    """Deduplicated int32 constant arrays (identical bias/multiplier/shift tables are emitted once)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.arrays: dict[str, tuple[str, np.ndarray]] = {}

    def ref(self, kind: str, a: np.ndarray) -> str:
        a = np.ascontiguousarray(a, dtype=np.int32)
        key = hashlib.sha1(a.tobytes()).hexdigest()
        if key not in self.arrays:
            self.arrays[key] = (f"{self.prefix}_{kind}{len(self.arrays)}", a)
        return self.arrays[key][0]


def _fmt(f: ActFormat) -> dict:
    return {"bits": f.bits, "signed": int(f.signed)}


def view_copy(ir: IR, layer: str) -> np.ndarray:
    """The 2-bit view of ``layer``'s stored codes (floor or rounded, as the IR says), packed at 2 bits
    in the same row layout: what a path reading that view gets from its copy."""
    meta = ir.header["layers"][layer]
    codes = weight_view(ir.weights(layer), meta["w_stored"], 2, round=ir_w_round(ir, layer))
    return pack(codes.reshape(-1, meta["row_len"]), 2, True)


def copied_view(w_stored: int, w_view: int) -> bool:
    """Whether a path reading ``w_view`` of ``w_stored``-bit storage gets a 2-bit copy, in a layer whose op
    is in COPY_OPS (the path-selection ILP counts the copy's flash with this same rule)."""
    return w_view == 2 and w_stored > 2


def copies_view(op: str, w_stored: int, w_view: int) -> bool:
    """Whether codegen gives a path reading ``w_view`` of ``w_stored``-bit storage its own 2-bit copy."""
    return op in COPY_OPS and copied_view(w_stored, w_view)


def _net_context(ir: IR, p: Plan, prefix: str, view_copies: bool = True) -> dict:
    """Tables of one network (the bit-path network, or the controller) for the template's macros."""
    pool = _Pool(prefix)
    paths = ir.header["paths"]
    layers = []
    weights = []
    for step in p.steps:
        node = step.node
        lname, op, a = node["name"], node["op"], node["attrs"]
        in_shape = _shape_of(ir, node["inputs"][0])
        out_shape = tuple(node["out_shape"])
        layer = {
            "name": lname,
            "op": OP_ENUM[op],
            "in0": p.offset(node["inputs"][0]),
            "in1": p.offset(node["inputs"][1]) if op == "add" else 0,
            "out": p.offset(lname),
            "scratch": step.scratch.offset if step.scratch else -1,
            "scratch_bytes": step.scratch.size if step.scratch else 0,
            "in_dims": _dims(in_shape),
            "out_dims": _dims(out_shape),
            "filter_dims": (0, 0, 0, 0),
            "win": (1, 1, 0, 0, 0, 0),
            "weights": "NULL",
            "paths": [],
        }
        if op in ("conv2d", "depthwise_conv2d", "max_pool2d"):
            layer["win"] = (*a["stride"], *a["pad"])
        if op == "avg_pool2d":
            layer["win"] = (*a["stride"], 0, 0, 0, 0)
        if op == "conv2d":
            layer["filter_dims"] = (a["out_ch"], *a["kernel"], a["in_ch"])
        elif op == "depthwise_conv2d":
            layer["filter_dims"] = (1, *a["kernel"], a["out_ch"])
        elif op == "fully_connected":
            layer["filter_dims"] = (a["out_ch"], 1, 1, a["in_ch"])
        elif op in ("max_pool2d", "avg_pool2d"):
            layer["filter_dims"] = (1, *a["kernel"], 1)
        if op in ("conv2d", "depthwise_conv2d", "fully_connected"):
            wname = f"{prefix}_w_{len(weights)}"
            packed = ir.arrays[f"w:{lname}"]
            weights.append({"name": wname, "layer": lname, "bytes": _c_bytes(packed), "size": packed.size,
                            "stored": ir.header["layers"][lname]["w_stored"], "is_copy": False})
            layer["weights"] = wname
        copy_name = None
        for pi, path in enumerate(paths):
            fmts = p.formats[pi]
            ent = {"in": _fmt(fmts[node["inputs"][0]]), "out": _fmt(fmts[lname]), "w_stored": 8, "w_view": 8,
                   "w_round": 0, "act_min": 0, "act_max": 0, "bias": "NULL", "mult": "NULL", "shift": "NULL",
                   "b": {"bits": 8, "signed": 0}, "mult_a": 0, "mult_b": 0, "add_shift": 0, "weights": "NULL"}
            q = path["nodes"].get(lname)
            if op in ("conv2d", "depthwise_conv2d", "fully_connected"):
                ent["w_stored"] = ir.header["layers"][lname]["w_stored"]
                ent["w_view"] = q["w_view"]
                ent["w_round"] = int(ir_w_round(ir, lname))
                if view_copies and copies_view(op, ent["w_stored"], ent["w_view"]):
                    if copy_name is None:
                        copy_name = f"{prefix}_w_{len(weights)}"
                        packed2 = view_copy(ir, lname)
                        rounding = "rounded" if ent["w_round"] else "floor"
                        weights.append({"name": copy_name, "layer": lname, "bytes": _c_bytes(packed2),
                                        "size": packed2.size, "stored": 2, "is_copy": True,
                                        "of": f"{ent['w_stored']}-bit codes, {rounding}"})
                    ent.update(w_stored=2, w_view=2, w_round=0, weights=copy_name)
                ent["bias"] = pool.ref("bias", ir.arrays[f"bias:{lname}:{pi}"])
                if fmts[lname].bits != 32:
                    ent["act_min"], ent["act_max"] = q["act_min"], q["act_max"]
                    ent["mult"] = pool.ref("mult", ir.arrays[f"mult:{lname}:{pi}"])
                    ent["shift"] = pool.ref("shift", ir.arrays[f"shift:{lname}:{pi}"])
            elif op == "add":
                ent["b"] = _fmt(fmts[node["inputs"][1]])
                ent["act_min"], ent["act_max"] = q["act_min"], q["act_max"]
                ent["mult_a"], ent["mult_b"], ent["add_shift"] = q["mult_a"], q["mult_b"], q["shift"]
            else:  # pools: same format in and out
                ent["out"] = ent["in"]
            layer["paths"].append(ent)
        layers.append(layer)
    return {
        "prefix": prefix,
        "num_classes": int(np.prod(_shape_of(ir, ir.header["output"]))),
        "path_names": [pp["name"] for pp in paths],
        "layers": layers,
        "weights": weights,
        "consts": list(pool.arrays.values()),
        "arena_bytes": p.arena_bytes,
        "tensors": sorted(p.tensors.values(), key=lambda t: t.offset),
    }


def _shape_of(ir: IR, value: str) -> tuple:
    if value == "input":
        return tuple(ir.header["input"]["shape"])
    for n in ir.graph:
        if n["name"] == value:
            return tuple(n["out_shape"])
    raise CodegenError(f"value {value!r} is not in the graph")


def _dims(shape: tuple) -> tuple[int, int, int, int]:
    if len(shape) == 3:
        return (1, *shape)
    return (1, 1, 1, int(np.prod(shape)))


def _escalate_context(ir: IR, path_names: list[str]) -> dict:
    """Stage tables of an escalating controller (validated by ``bitpath.ir``): path and per-class thresholds."""
    c = ir.header["controller"]
    stages = [{"path": int(st["path"]), "name": path_names[st["path"]],
               "threshold": np.asarray(st["threshold"], dtype=np.int64)} for st in c["stages"]]
    rule = c.get("rule") or "accept stage s when margin >= threshold[s][top], else escalate; final path last"
    return {"stages": stages, "final": int(c["final"]), "final_name": path_names[c["final"]],
            "rule": " ".join(str(rule).split()).rstrip("\\")}  # one line, no trailing '\\': it lands in a // comment


def render(ir: IR, out_dir: str | Path, name: str | None = None, prefix: str = "bpm", *,
           view_copies: bool = True) -> Generated:
    """Write ``out_dir/model.c`` for ``ir``; returns what was written and the planned arena size.

    ``view_copies``: give paths that read a 2-bit view of wider conv2d/FC storage a 2-bit copy of it
    (same results, faster kernels, more flash; see the module docstring)."""
    p = plan(ir)
    check_plan(p)
    ir_hash = ir.content_hash()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    net = _net_context(ir, p, prefix, view_copies)
    ctrl = None
    sub = controller_ir(ir)
    if sub is not None:
        cp = plan(sub)
        check_plan(cp)
        ctrl = _net_context(sub, cp, f"{prefix}_ctrl", view_copies)
        c = ir.header["controller"]
        ctrl.update(penalty=np.asarray(c["penalty"], dtype=np.int64), order=list(c["order"]),
                    rule=c.get("rule", "argmax(score - penalty)"))
    esc = _escalate_context(ir, net["path_names"]) if controller_kind(ir) == "escalate" else None
    ctx = {
        "version": __version__,
        "ir_hash": ir_hash,
        "prefix": prefix,
        "name": name or ir.header.get("name", "bitpath-model"),
        "mlperf_id": ir.header.get("mlperf_id", "fmnist01"),
        "input_bytes": int(np.prod(ir.header["input"]["shape"])),
        "num_classes": net["num_classes"],
        "path_names": net["path_names"],
        "net": net,
        "ctrl": ctrl,
        "esc": esc,
        "c_ints": _c_ints,
        # one arena: the controller runs to completion before the network starts
        "arena_bytes": max(net["arena_bytes"], ctrl["arena_bytes"] if ctrl else 0, 4),
    }
    text = env.get_template("model.c.j2").render(**ctx)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "model.c"
    tmp = target.with_suffix(".c.tmp")
    tmp.write_text(text)
    tmp.replace(target)
    all_w = net["weights"] + (ctrl["weights"] if ctrl else [])
    weight_bytes = sum(w["size"] for w in all_w)
    copy_bytes = sum(w["size"] for w in all_w if w["is_copy"])
    return Generated(target, ir_hash, ctx["arena_bytes"], weight_bytes, p, copy_bytes)
