"""Export a trained :class:`~bitpath.train.qnet.MultiPathNet` to one IR file.

Per layer: the stored weight codes ``q_B`` (the quantizer's own ``codes``), re-laid out for the
kernels (OHWI, HWC for depthwise, OI for FC with the flatten order changed from CHW to HWC) and
packed at ``B`` bits, with ``w_round``: whether the narrower paths' views of them round or floor
(the quantizer's ``view_round``, from ``TrainConfig.weight_views``). Per path and layer: BatchNorm folded with
:func:`bitpath.quant.fold.fold_layer` into int32 bias, multiplier and shift; accumulator bounds
checked by :func:`bitpath.ref.bounds.check_layer` (in :func:`bitpath.ir.validate`).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from bitpath import __version__
from bitpath.ir import FORMAT, INPUT, IR, VERSION
from bitpath.ref.packing import pack
from bitpath.train.qnet import INPUT_SCALE, MultiPathNet, key


def _kernel_layout(spec, node, codes: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Torch weight codes -> kernel layout, and the rows to pack."""
    if node.op == "conv2d":
        w = codes.transpose(0, 2, 3, 1)  # OIHW -> OHWI
        return w.reshape(w.shape[0], -1), list(w.shape)
    if node.op == "depthwise_conv2d":
        w = codes[:, 0].transpose(1, 2, 0)  # C1HW -> HWC
        return w.reshape(-1, w.shape[2]), list(w.shape)
    w = codes
    src = spec.node(node.inputs[0]) if node.inputs[0] != INPUT else None
    chw = src.attrs.get("chw") if src is not None and src.op == "flatten" else None
    if chw is not None and chw[1] * chw[2] > 1:
        c, h, wd = chw
        w = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)  # CHW -> HWC order
    return w, list(w.shape)


def export(net: MultiPathNet, source: dict | None = None) -> IR:
    """Build the IR of ``net`` (in eval mode, after BatchNorm re-estimation)."""
    net.eval()
    spec, table = net.spec, net.table
    header: dict = {
        "format": FORMAT,
        "version": VERSION,
        "generator": f"bitpath {__version__}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "input": {"shape": list(spec.input_shape), "bits": 8, "signed": False, "scale": INPUT_SCALE},
        "num_classes": spec.node(spec.output).attrs["out_ch"],
        "graph": [],
        "output": spec.output,
        "layers": {},
        "paths": [],
        "controller": None,
        "source": source or {},
    }
    arrays: dict[str, np.ndarray] = {}
    for n in spec.nodes:
        attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in n.attrs.items()
                 if k in ("kernel", "stride", "pad", "act", "in_ch", "out_ch")}
        if n.op in ("max_pool2d",):
            attrs = {k: list(n.attrs[k]) for k in ("kernel", "stride", "pad")}
        if n.op == "avg_pool2d":
            attrs = {k: list(n.attrs[k]) for k in ("kernel", "stride")}
        header["graph"].append({"name": n.name, "op": n.op, "inputs": list(n.inputs),
                                "out_shape": list(n.out_shape), "attrs": attrs})
        if n.weighted:
            layer = net.layers[key(n.name)]
            codes = layer.wq.codes(layer.weight).cpu().numpy()
            rows, shape = _kernel_layout(spec, n, codes)
            arrays[f"w:{n.name}"] = pack(rows, layer.wq.stored, signed=True)
            header["layers"][n.name] = {
                "w_stored": layer.wq.stored,
                "w_shape": shape,
                "row_len": int(rows.shape[1]),
                "w_scale": [float(v) for v in layer.wq.scale.detach().double().cpu()],
                "quantizer": layer.wq.mode,
                "w_round": bool(layer.wq.view_round),  # narrow views round (True) or floor (False)
            }
    for pi, path in enumerate(table.paths):
        consts = net.fold(pi)
        fmts = net.formats[pi]
        steps = net.path_steps(pi)
        nodes: dict = {}
        for n in spec.nodes:
            if n.weighted:
                c = consts[n.name]
                f = c["folded"]
                ob, osg = fmts[n.name]
                ib, isg = fmts[n.inputs[0]]
                entry = {"in": [ib, isg], "out": [ob, osg], "w_view": c["w_view"],
                         "act_min": int(f.act_min) if ob != 32 else -(2**31),
                         "act_max": int(f.act_max) if ob != 32 else 2**31 - 1,
                         "out_scale": float(steps[n.name]) if ob != 32 else float(f.acc_scale[0])}
                nodes[n.name] = entry
                arrays[f"bias:{n.name}:{pi}"] = f.bias.astype(np.int32)
                if ob != 32:
                    arrays[f"mult:{n.name}:{pi}"] = f.mult.astype(np.int32)
                    arrays[f"shift:{n.name}:{pi}"] = f.shift.astype(np.int32)
            elif n.op == "add":
                c = consts[n.name]
                ob, osg = fmts[n.name]
                nodes[n.name] = {"out": [ob, osg], "mult_a": int(c["mult_a"]), "mult_b": int(c["mult_b"]),
                                 "shift": int(c["shift"]), "act_min": int(c["act_min"]), "act_max": int(c["act_max"]),
                                 "out_scale": float(steps[n.name])}
        header["paths"].append({"name": path.name, "layers": {n: [w, a] for n, w, a in path.bits},
                                "cost_bitops": table.cost(spec, pi), "nodes": nodes})
    return IR(header, arrays)
