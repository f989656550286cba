"""A tiny chain IR for the select tests, built by hand (no torch); a unique module name because
several test folders have a conftest.py."""

from __future__ import annotations

import numpy as np

from bitpath.ir import FORMAT, IR, VERSION
from bitpath.ref.packing import pack
from bitpath.ref.requant import quantize_multiplier


def chain_ir(seed: int = 5, c1: int = 4, c2: int = 8) -> IR:
    """conv 3x3 1->c1, max pool, conv 3x3 c1->c2, max pool, flatten, fc -> 3; one all-8-bit path."""
    rng = np.random.default_rng(seed)

    def conv(name, inp, h, cin, cout):
        return {"name": name, "op": "conv2d", "inputs": [inp], "out_shape": [h, h, cout],
                "attrs": {"kernel": [3, 3], "stride": [1, 1], "pad": [1, 1, 1, 1], "in_ch": cin, "out_ch": cout,
                          "act": "relu"}}

    def pool(name, inp, h, c):
        return {"name": name, "op": "max_pool2d", "inputs": [inp], "out_shape": [h // 2, h // 2, c],
                "attrs": {"kernel": [2, 2], "stride": [2, 2], "pad": [0, 0, 0, 0]}}

    graph = [conv("conv1", "input", 8, 1, c1), pool("pool1", "conv1", 8, c1),
             conv("conv2", "pool1", 4, c1, c2), pool("pool2", "conv2", 4, c2),
             {"name": "flat", "op": "flatten", "inputs": ["pool2"], "out_shape": [4 * c2], "attrs": {}},
             {"name": "fc", "op": "fully_connected", "inputs": ["flat"], "out_shape": [3],
              "attrs": {"in_ch": 4 * c2, "out_ch": 3}}]
    shapes = {"conv1": [c1, 3, 3, 1], "conv2": [c2, 3, 3, c1], "fc": [3, 4 * c2]}
    scales = {"conv1": 0.004, "conv2": 0.003}
    layers, arrays, nodes = {}, {}, {}
    for name, shape in shapes.items():
        codes = rng.integers(-128, 128, shape)
        row_len = int(np.prod(shape[1:]))
        layers[name] = {"w_stored": 8, "w_shape": shape, "row_len": row_len}
        arrays[f"w:{name}"] = pack(codes.reshape(-1, row_len), 8, True)
        n = shape[0]
        if name == "fc":
            nodes[name] = {"in": [8, False], "out": [32, True], "w_view": 8, "act_min": -(2**31),
                           "act_max": 2**31 - 1, "out_scale": 1e-4}
            arrays["bias:fc:0"] = rng.integers(-500, 500, n).astype(np.int32)
            continue
        nodes[name] = {"in": [8, False], "out": [8, False], "w_view": 8, "act_min": 0, "act_max": 255,
                       "out_scale": 0.02}
        arrays[f"bias:{name}:0"] = rng.integers(-2000, 8000, n).astype(np.int32)
        ms = [quantize_multiplier(scales[name] * f) for f in rng.uniform(0.7, 1.3, n)]
        arrays[f"mult:{name}:0"] = np.array([m for m, _ in ms], np.int32)
        arrays[f"shift:{name}:0"] = np.array([s for _, s in ms], np.int32)
    header = {"format": FORMAT, "version": VERSION, "name": "chain", "input": {"shape": [8, 8, 1]},
              "num_classes": 3, "graph": graph, "output": "fc", "layers": layers,
              "paths": [{"name": "w8a8", "layers": {}, "nodes": nodes}]}
    ir = IR(header, arrays)
    from bitpath.ir import validate

    validate(ir)
    return ir


def two_paths(ir: IR) -> IR:
    """chain_ir with a second path whose fc bias differs, so the two paths disagree on some inputs."""
    h = dict(ir.header)
    p2 = {"name": "alt", "nodes": ir.header["paths"][0]["nodes"]}
    h["paths"] = [*ir.header["paths"], p2]
    arrays = dict(ir.arrays)
    for k, v in ir.arrays.items():
        if k.endswith(":0"):
            arrays[k[:-2] + ":1"] = v.copy()
    arrays["bias:fc:1"] = (arrays["bias:fc:1"].astype(np.int64)[::-1] * 3).astype(np.int32)
    return IR(h, arrays)


def labelled_two_paths(n: int, seed: int = 4):
    """``two_paths(chain_ir())``, ``n`` random images and labels each path gets right on some of them
    (path 0's answer on two images of three, path 1's on the third), for the fit -> evaluate tests."""
    from bitpath.export.runner import Runner

    ir = two_paths(chain_ir())
    x = np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 1)).astype(np.uint8)
    r = Runner(ir)
    y = np.array([int(r.run(xi, 0).argmax()) if i % 3 else int(r.run(xi, 1).argmax()) for i, xi in enumerate(x)])
    return ir, x, y


#: Device costs standing in for the board measurement in the fit tests (the board tests measure them).
FAKE_COSTS = {"board": "qemu_f405", "unit": "instructions (emulated)", "images": 1, "paths": [1000.0, 600.0],
              "controller": 20.0}
