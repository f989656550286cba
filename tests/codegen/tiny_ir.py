"""A tiny fixed IR covering every op the runtime lowers, with two bit-paths; built by hand (no torch)
so the codegen golden snapshot never changes unless codegen does."""

from __future__ import annotations

import numpy as np

from bitpath.ir import FORMAT, IR, VERSION
from bitpath.ref.packing import pack


def _conv(name, inp, shape_in, cout, k, pad, stride=1, depthwise=False):
    h, w, cin = shape_in
    oh = (h + 2 * pad - k) // stride + 1
    ow = (w + 2 * pad - k) // stride + 1
    return {
        "name": name,
        "op": "depthwise_conv2d" if depthwise else "conv2d",
        "inputs": [inp],
        "out_shape": [oh, ow, cout],
        "attrs": {"kernel": [k, k], "stride": [stride, stride], "pad": [pad] * 4, "in_ch": cin, "out_ch": cout},
    }


def tiny_ir(seed: int = 7, channels: int = 4, gap: int = 4, third_path: bool = False,
            w_round: bool | None = None) -> IR:
    """The fixed test IR; ``channels`` and the average-pool size ``gap`` vary it for error tests.
    ``third_path`` appends a middle path (its constants are drawn after the first two paths', so paths
    0 and 1 and every other array stay exactly as without it). ``w_round`` sets every weighted layer's
    view rounding; None leaves the field out, as in IRs written before rounded views (floor)."""
    rng = np.random.default_rng(seed)
    c = channels
    g = 4 - gap + 1
    graph = [
        _conv("conv1", "input", (8, 8, 1), c, 3, 1),
        {"name": "pool1", "op": "max_pool2d", "inputs": ["conv1"], "out_shape": [4, 4, c],
         "attrs": {"kernel": [2, 2], "stride": [2, 2], "pad": [0, 0, 0, 0]}},
        _conv("dw2", "pool1", (4, 4, c), c, 3, 1, depthwise=True),
        _conv("pw2", "dw2", (4, 4, c), c, 1, 0),
        {"name": "res", "op": "add", "inputs": ["pool1", "pw2"], "out_shape": [4, 4, c], "attrs": {}},
        {"name": "gap", "op": "avg_pool2d", "inputs": ["res"], "out_shape": [g, g, c],
         "attrs": {"kernel": [gap, gap], "stride": [1, 1]}},
        {"name": "flat", "op": "flatten", "inputs": ["gap"], "out_shape": [g * g * c], "attrs": {}},
        {"name": "fc", "op": "fully_connected", "inputs": ["flat"], "out_shape": [3],
         "attrs": {"in_ch": g * g * c, "out_ch": 3}},
    ]
    w_shapes = {"conv1": [c, 3, 3, 1], "dw2": [3, 3, c], "pw2": [c, 1, 1, c], "fc": [3, g * g * c]}
    stored = {"conv1": 8, "dw2": 8, "pw2": 4, "fc": 8}
    layers, arrays = {}, {}
    for name, shape in w_shapes.items():
        b = stored[name]
        codes = rng.integers(-(2 ** (b - 1)), 2 ** (b - 1), shape)
        row_len = shape[-1] if name == "dw2" else int(np.prod(shape[1:]))
        layers[name] = {"w_stored": b, "w_shape": shape, "row_len": row_len}
        if w_round is not None:
            layers[name]["w_round"] = w_round
        arrays[f"w:{name}"] = pack(codes.reshape(-1, row_len), b, True)
    # path 0: everything at 8 bits; path 1: 2/4-bit views and activations, 8-bit first layer
    path_bits = [
        {"conv1": (8, 8), "dw2": (8, 8), "pw2": (4, 8), "res": 8, "fc": 8},
        {"conv1": (8, 4), "dw2": (2, 4), "pw2": (2, 2), "res": 4, "fc": 4},
    ]
    if third_path:
        path_bits.append({"conv1": (8, 8), "dw2": (4, 4), "pw2": (4, 4), "res": 8, "fc": 4})
    paths = []
    for pi, bits in enumerate(path_bits):
        nodes = {}
        a_conv1 = bits["conv1"][1]
        a_dw = bits["dw2"][1]
        for name, (wv, ob), ib in (("conv1", bits["conv1"], 8), ("dw2", bits["dw2"], a_conv1),
                                   ("pw2", bits["pw2"], a_dw)):
            nodes[name] = {"in": [ib, False], "out": [ob, name == "pw2"], "w_view": wv,
                           "act_min": -(2 ** (ob - 1)) if name == "pw2" else 0,
                           "act_max": (2 ** (ob - 1) - 1) if name == "pw2" else 2**ob - 1}
            n = w_shapes[name][0] if name != "dw2" else c
            arrays[f"bias:{name}:{pi}"] = rng.integers(-200, 200, n).astype(np.int32)
            arrays[f"mult:{name}:{pi}"] = rng.integers(2**30, 2**31 - 1, n).astype(np.int32)
            arrays[f"shift:{name}:{pi}"] = np.full(n, 38 if ob == 8 else 41, np.int32)
        rb = bits["res"]
        nodes["res"] = {"out": [rb, False], "act_min": 0, "act_max": 2**rb - 1,
                        "mult_a": 1 << 29, "mult_b": 3 << 28, "shift": 30 + (8 - rb) // 2}
        nodes["fc"] = {"in": [rb, False], "out": [32, True], "w_view": bits["fc"], "act_min": 0, "act_max": 0}
        arrays[f"bias:fc:{pi}"] = rng.integers(-500, 500, 3).astype(np.int32)
        paths.append({"name": ["w8a8", "w2a4-mixed", "w4a4-mid"][pi], "nodes": nodes})
    header = {
        "format": FORMAT,
        "version": VERSION,
        "name": "tiny",
        "input": {"shape": [8, 8, 1]},
        "graph": graph,
        "output": "fc",
        "layers": layers,
        "paths": paths,
    }
    return IR(header, arrays)


def with_controller(ir: IR, seed: int = 11, penalty=(12445, 0), order=(1, 0)) -> IR:
    """``ir`` (the tiny IR) plus a hand-built controller: 4x4 average pool of the 8x8 input, flatten,
    fc 4 -> 6 (uint8, ReLU), fc 6 -> 2 int32 scores; the decision constants are arguments."""
    rng = np.random.default_rng(seed)
    net = {
        "input": {"shape": [8, 8, 1]},
        "graph": [
            {"name": "pool", "op": "avg_pool2d", "inputs": ["input"], "out_shape": [2, 2, 1],
             "attrs": {"kernel": [4, 4], "stride": [4, 4]}},
            {"name": "flat", "op": "flatten", "inputs": ["pool"], "out_shape": [4], "attrs": {}},
            {"name": "fc1", "op": "fully_connected", "inputs": ["flat"], "out_shape": [6],
             "attrs": {"in_ch": 4, "out_ch": 6}},
            {"name": "fc2", "op": "fully_connected", "inputs": ["fc1"], "out_shape": [2],
             "attrs": {"in_ch": 6, "out_ch": 2}},
        ],
        "output": "fc2",
        "layers": {"fc1": {"w_stored": 8, "w_shape": [6, 4], "row_len": 4},
                   "fc2": {"w_stored": 8, "w_shape": [2, 6], "row_len": 6}},
        "paths": [{"name": "controller", "nodes": {
            "fc1": {"in": [8, False], "out": [8, False], "w_view": 8, "act_min": 0, "act_max": 255},
            "fc2": {"in": [8, False], "out": [32, True], "w_view": 8, "act_min": -(2**31), "act_max": 2**31 - 1},
        }}],
    }
    arrays = dict(ir.arrays)
    arrays["ctrl/w:fc1"] = pack(rng.integers(-128, 128, (6, 4)), 8, True)
    arrays["ctrl/bias:fc1:0"] = rng.integers(-3000, 3000, 6).astype(np.int32)
    arrays["ctrl/mult:fc1:0"] = rng.integers(2**30, 2**31 - 1, 6).astype(np.int32)
    arrays["ctrl/shift:fc1:0"] = np.full(6, 38, np.int32)
    arrays["ctrl/w:fc2"] = pack(rng.integers(-128, 128, (2, 6)), 8, True)
    arrays["ctrl/bias:fc2:0"] = rng.integers(-500, 500, 2).astype(np.int32)
    header = dict(ir.header)
    header["controller"] = {"net": net, "penalty": list(penalty), "order": list(order)}
    return IR(header, arrays)


def with_escalate(ir: IR, stages, final: int, rule: str = "accept when margin >= threshold[top]") -> IR:
    """``ir`` plus an escalating controller: ``stages`` is ``[(path, thresholds), ...]`` cheapest first."""
    header = dict(ir.header)
    header["controller"] = {
        "kind": "escalate",
        "stages": [{"path": int(p), "threshold": [int(t) for t in thr]} for p, thr in stages],
        "final": int(final),
        "rule": rule,
        "costs": [1.0] * len(ir.header["paths"]),  # a free-form info key: validation ignores it
    }
    return IR(header, dict(ir.arrays))


def median_thresholds(ir: IR, xs, paths) -> list[list[int]]:
    """Per-stage thresholds that make every stage both accept and escalate on inputs like ``xs``: for
    each stage, one more than the median margin of the images still open there, per top class (open
    images with margins at or above it stop at that stage)."""
    from bitpath.export.runner import Runner, top2_margin

    r = Runner(ir)
    open_ = np.ones(len(xs), dtype=bool)
    out = []
    for p in paths:
        top, margin = top2_margin(np.stack([r.run(x, p) for x in xs]))
        num_classes = int(np.prod(next(n for n in ir.graph if n["name"] == ir.header["output"])["out_shape"]))
        thr = []
        for c in range(num_classes):
            m = margin[open_ & (top == c)]
            # a class no open image tops gets 0 or 2**31 - 1 alternately, so that reading the wrong
            # class's threshold changes decisions (and a test that checks coverage notices)
            thr.append(int(np.median(m)) + 1 if len(m) else (0 if c % 2 == 0 else 2**31 - 1))
        out.append(thr)
        open_ &= ~(margin >= np.asarray(thr)[top])
    return out


def varied_images(seed: int, n: int) -> np.ndarray:
    """``n`` uint8 inputs ``(n, 8, 8, 1)`` of random brightness: uniform noise under a per-image ceiling.
    Plain uniform noise saturates the tiny IR's 2-bit path (its margin hardly moves); these do not."""
    rng = np.random.default_rng(seed)
    hi = rng.integers(1, 256, (n, 1, 1, 1))
    return (rng.random((n, 8, 8, 1)) * hi).astype(np.uint8)
