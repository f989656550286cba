"""Layer sensitivity to lowering, on the integer model (numpy reference, no torch). Pluggable methods.

Every method returns, per weighted layer, a value for each ``(w, a_in)`` it can run at (``"w4a8"``:
4-bit weight view, 8-bit input activations) where 0 means "as good as the reference path" and
larger means worse. The ILP (``bitpath.select.ilp``) minimises their sum.

How a layer is *lowered*: a path identical to the reference path (normally the all-8-bit one)
except that layer ``l`` reads the ``w``-bit view of its stored weights and its input tensor is
written at ``a`` bits by its producer (the same real clipping range, a coarser step). Constants are
rescaled from the reference path (``costs.derive_path``): this is post-training lowering without
fine-tuning, which ranks layers rather than predicting the accuracy after multi-path training.

Methods:

- ``kl``: mean KL divergence ``KL(softmax(ref logits) || softmax(lowered logits))`` over a calibration
  set (real logits: int32 logits times the logit unit of each path).
- ``imprint``: the thesis' accuracy estimate by imprinting (papers/004 section 2.4, Algorithm 2). At
  the output of every weighted layer an embedding is pooled (``d = round(sqrt(N / f))``, adaptive
  average pooling to ``d x d``, ``N`` = embedding length), class weights are imprinted as the mean
  normalised embedding of each class on one half of the calibration set, and the accuracy of the
  nearest imprinted class is measured on the other half. The thesis' layer importance is the
  accuracy gain over the previous layer (``importance`` in the result). The sensitivity of
  lowering layer ``l`` is the mean drop of the imprinted accuracy at the exits from ``l`` onward
  (the logits layer's exit is the model's own accuracy).
- ``hessian``: HAWQ-V3 style, Hutchinson traces of the loss Hessian on the float model (trained
  weights, reference path's BatchNorm) times the perturbation of the nested weight view and of the
  coarser activation step (see :func:`hessian`). Needs torch and the training run.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bitpath.export.runner import Runner
from bitpath.ir import INPUT, IR, WEIGHTED, validate, w_round
from bitpath.select.costs import _producers, derive_path

BITS = (2, 4, 8)
METHODS = ("kl", "imprint", "hessian")


# ---------------------------------------------------------------------------- lowered paths
def lowerings(ir: IR, ref_path: int = 0) -> list[tuple[str, int, int]]:
    """Every ``(layer, w, a_in)`` to try: views up to the stored width; the first layer reads 8 bits."""
    out = []
    ref = ir.header["paths"][ref_path]["nodes"]
    for n in ir.graph:
        if n["op"] not in WEIGHTED:
            continue
        name = n["name"]
        stored = ir.header["layers"][name]["w_stored"]
        feeds_input = _group(ir, n["inputs"][0]) == INPUT
        for w in BITS:
            for a in BITS:
                if w > stored or (feeds_input and a != 8):
                    continue
                if (w, a) == (ref[name]["w_view"], ref[name]["in"][0]):
                    continue
                out.append((name, w, a))
    return out


def _group(ir: IR, v: str) -> str:
    nodes = {n["name"]: n for n in ir.graph}
    while v != INPUT and nodes[v]["op"] not in WEIGHTED and nodes[v]["op"] != "add":
        v = nodes[v]["inputs"][0]
    return v


def lowered_ir(ir: IR, items: list[tuple[str, int, int]], ref_path: int = 0) -> IR:
    """Path 0: the reference path re-derived; path i+1: ``items[i]`` lowered, everything else as the reference."""
    ref = ir.header["paths"][ref_path]["nodes"]
    prod = _producers(ir)
    base_widths = {p: ref[p]["out"][0] for p in prod}
    base_w = {n["name"]: ref[n["name"]]["w_view"] for n in ir.graph if n["op"] in WEIGHTED}
    h = copy.deepcopy(ir.header)
    arrays = {k: v for k, v in ir.arrays.items() if k.startswith("w:")}
    paths = []
    specs = [("ref", None, None, None)] + [(f"{n}:w{w}a{a}", n, w, a) for n, w, a in items]
    for pi, (pname, layer, w, a) in enumerate(specs):
        widths, w_of = dict(base_widths), dict(base_w)
        if layer is not None:
            w_of[layer] = w
            g = _group(ir, next(n for n in ir.graph if n["name"] == layer)["inputs"][0])
            if g != INPUT:
                widths[g] = a
        if layer is None:  # the reference path itself, constants copied exactly
            nodes = copy.deepcopy(ref)
            arr = {k.rsplit(":", 1)[0]: v for k, v in ir.arrays.items()
                   if k.count(":") == 2 and k.rsplit(":", 1)[1] == str(ref_path)}
        else:
            nodes, arr, _ = derive_path(ir, ref_path, widths, w_of)
        arrays.update({f"{k}:{pi}": v for k, v in arr.items()})
        paths.append({"name": pname, "layers": {}, "nodes": nodes})
    h["paths"] = paths
    out = IR(h, arrays)
    validate(out)
    return out


# ---------------------------------------------------------------------------- running
def run_all(runner: Runner, x: np.ndarray, path: int) -> dict[str, np.ndarray]:
    """Every graph value of one image on ``path`` (``Runner.values``)."""
    return runner.values(np.asarray(x, dtype=np.uint8), path)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def real_logits(ir: IR, runner: Runner, x: np.ndarray, path: int) -> np.ndarray:
    unit = ir.header["paths"][path]["nodes"][ir.header["output"]].get("out_scale", 1.0)
    return runner.logits(x, path).astype(np.float64) * unit


def kl(ir: IR, x: np.ndarray, ref_path: int = 0, log: Callable[[str], None] = lambda s: None) -> dict:
    items = lowerings(ir, ref_path)
    lir = lowered_ir(ir, items, ref_path)
    r = Runner(lir)
    p_ref = _softmax(real_logits(lir, r, x, 0))
    out: dict[str, dict[str, float]] = {}
    for i, (name, w, a) in enumerate(items):
        p = _softmax(real_logits(lir, r, x, i + 1))
        v = float(np.mean(np.sum(p_ref * (np.log(p_ref + 1e-12) - np.log(p + 1e-12)), axis=1)))
        out.setdefault(name, {})[f"w{w}a{a}"] = max(v, 0.0)
        log(f"  {name} w{w}a{a}: KL {v:.4g}")
    return {"layers": out}


def _embed(f: np.ndarray, n_embed: int) -> np.ndarray:
    """Thesis eq. 2.17: adaptive average pooling of an HWC map to d x d, d = round(sqrt(N / f))."""
    if f.ndim == 1:
        return f.astype(np.float64)
    h, w, c = f.shape
    d = max(1, min(h, w, int(round(math.sqrt(n_embed / c)))))
    out = np.zeros((d, d, c))
    for i in range(d):
        for j in range(d):
            r0, r1 = (i * h) // d, -(-((i + 1) * h) // d)
            c0, c1 = (j * w) // d, -(-((j + 1) * w) // d)
            out[i, j] = f[r0:r1, c0:c1].mean(axis=(0, 1))
    return out.reshape(-1)


def imprint_accuracy(emb: np.ndarray, y: np.ndarray, classes: int) -> float:
    """Imprint class weights (mean normalised embedding) on the first half, score the second half."""
    e = emb - emb.mean(axis=0, keepdims=True)  # centre (unsigned ReLU codes share a large mean)
    e = e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)
    n = len(y) // 2
    W = np.zeros((classes, e.shape[1]))
    for c in range(classes):
        m = y[:n] == c
        if m.any():
            W[c] = e[:n][m].mean(axis=0)
    W /= np.linalg.norm(W, axis=1, keepdims=True) + 1e-12
    pred = (e[n:] @ W.T).argmax(axis=1)
    return float((pred == y[n:]).mean())


def exit_accuracies(lir: IR, r: Runner, x: np.ndarray, y: np.ndarray, path: int, n_embed: int) -> dict[str, float]:
    layers = [n["name"] for n in lir.graph if n["op"] in WEIGHTED]
    classes = int(lir.header.get("num_classes") or (int(y.max()) + 1))
    feats: dict[str, list[np.ndarray]] = {n: [] for n in layers}
    for xi in x:
        vals = run_all(r, xi, path)
        for n in layers:
            feats[n].append(_embed(vals[n], n_embed))
    out = {}
    for n in layers:
        e = np.stack(feats[n])
        if n == lir.header["output"]:
            half = len(y) // 2
            out[n] = float((e[half:].argmax(axis=1) == y[half:]).mean())
        else:
            out[n] = imprint_accuracy(e, y, classes)
    return out


def imprint(ir: IR, x: np.ndarray, y: np.ndarray, ref_path: int = 0, n_embed: int = 256,
            log: Callable[[str], None] = lambda s: None) -> dict:
    if y is None:
        raise ValueError("imprinting needs labelled calibration images")
    items = lowerings(ir, ref_path)
    lir = lowered_ir(ir, items, ref_path)
    r = Runner(lir)
    layers = [n["name"] for n in lir.graph if n["op"] in WEIGHTED]
    base = exit_accuracies(lir, r, x, y, 0, n_embed)
    prev = imprint_accuracy(np.stack([_embed(xi.astype(np.float64), n_embed) for xi in x]), y,
                            int(lir.header.get("num_classes") or (int(y.max()) + 1)))
    importance = {}
    for n in layers:
        importance[n] = base[n] - prev
        prev = base[n]
    log("  imprinted accuracy per exit (reference path): " + ", ".join(f"{n} {v:.3f}" for n, v in base.items()))
    out: dict[str, dict[str, float]] = {}
    for i, (name, w, a) in enumerate(items):
        acc = exit_accuracies(lir, r, x, y, i + 1, n_embed)
        later = layers[layers.index(name):]
        v = float(np.mean([max(0.0, base[j] - acc[j]) for j in later]))
        out.setdefault(name, {})[f"w{w}a{a}"] = v
        log(f"  {name} w{w}a{a}: imprinted accuracy drop {v:.4f}")
    return {"layers": out, "importance": importance, "exit_accuracy": base}


def compute(ir: IR, method: str, x: np.ndarray | None, y: np.ndarray | None = None, *, ref_path: int = 0,
            log: Callable[[str], None] = lambda s: None, **kw) -> dict:
    """Sensitivity table ``{"method", "layers": {layer: {"w4a8": value}}, ...}`` on calibration images ``x``."""
    if x is None:
        raise ValueError("sensitivity needs calibration images (--dataset)")
    if method == "kl":
        res = kl(ir, x, ref_path, log)
    elif method == "imprint":
        res = imprint(ir, x, y, ref_path, log=log, **kw)
    elif method == "hessian":
        if kw.get("model") is None:
            raise ValueError("the Hessian-trace sensitivity needs the trained float model "
                             "(--run DIR of `bitpath train`)")
        res = hessian(ir, kw.pop("model"), x, y, ref_path, log=log, **kw)
    else:
        raise ValueError(f"unknown sensitivity method {method!r}; expected one of {METHODS}")
    ref = ir.header["paths"][ref_path]
    return {"format": "bitpath-select-sensitivity", "version": 1, "method": method, "ir_hash": ir.content_hash(),
            "ref_path": ref["name"], "images": int(len(x)),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **res}


def save(res: dict, path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    return p


def load(path: str | os.PathLike) -> dict:
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: cannot read the sensitivity table ({e})") from e
    if d.get("format") != "bitpath-select-sensitivity" or "layers" not in d:
        raise ValueError(f"{p}: not a sensitivity table (`bitpath select sensitivity`)")
    return d


def markdown(res: dict) -> str:
    combos = sorted({c for v in res["layers"].values() for c in v}, key=lambda c: (-int(c[1]), -int(c[3:])))
    lines = [f"sensitivity ({res['method']}, reference path {res['ref_path']}, {res['images']} images)", "",
             "| layer | " + " | ".join(combos) + " |", "|---|" + "---:|" * len(combos)]
    for layer, v in res["layers"].items():
        lines.append(f"| {layer} | " + " | ".join("" if c not in v else f"{v[c]:.4g}" for c in combos) + " |")
    if "importance" in res:
        lines.append("")
        lines.append("imprinting layer importance (accuracy gain over the previous exit): "
                     + ", ".join(f"{k} {v:+.3f}" for k, v in res["importance"].items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- Hessian trace (torch)
def float_model_from_net(net, model, path: int):
    """``model`` (the float module the net was built from) with the net's trained weights and ``path``'s BN."""
    import copy as _copy

    from bitpath.train.qnet import key

    m = _copy.deepcopy(model)
    mods = dict(m.named_modules())
    for n in net.spec.weighted:
        q = net.layers[key(n.name)]
        mods[n.name].weight.data.copy_(q.weight.data)
        if q.bias is not None and mods[n.name].bias is not None:
            mods[n.name].bias.data.copy_(q.bias.data)
        if n.attrs.get("bn") and key(n.name) in net.bns:
            mods[n.attrs["bn"]].load_state_dict(net.bns[key(n.name)][path].state_dict())
    return m.eval()


def model_from_run(run_dir: str | os.PathLike, ir: IR, ref_path: int = 0):
    """The float model of a finished ``bitpath train`` run, with the trained weights and the reference path's BN."""
    import torch

    from bitpath.models.recipes import build
    from bitpath.train.trainer import load_final

    net, st = load_final(run_dir)
    model, _ = build(st["config"]["model"], st["num_classes"], tuple(st["input_shape"]))
    model.load_state_dict(st["float_model"])
    name = ir.header["paths"][ref_path]["name"]
    path = net.table.index(name) if name in net.table.names else ref_path
    del torch
    return float_model_from_net(net, model, path)


def hessian(ir: IR, model, x: np.ndarray, y: np.ndarray, ref_path: int = 0, probes: int = 8, seed: int = 0,
            log: Callable[[str], None] = lambda s: None) -> dict:
    """HAWQ-style sensitivity: Hutchinson traces of the loss Hessian times the quantization perturbation.

    For layer ``l`` at ``(w, a)``: ``0.5 * (|Tr H_W| / n_W * (||W_w - W||^2 - ||W_8 - W||^2)
    + |Tr H_x| * (D_a^2 - D_8^2) / 12)``, where ``W_w`` is the nested ``w``-bit view of the weights
    (``view(round(W / s)) * s * 2^(B-w)`` with the IR's per-channel scale ``s`` and the layer's view,
    floored ``floor(q / 2^(B-w))`` or rounded as its ``w_round`` says), ``x`` the
    layer's input activations and ``D_a`` their step at ``a`` bits (the reference path's step times
    ``255 / (2^a - 1)``). Traces are on the float model (trained weights, reference path's BN), for the
    mean cross-entropy over ``x``; ``|.|`` as MQBench/NNCF do, since Hutchinson estimates can be negative.
    """
    import torch
    from torch import nn

    from bitpath.quant.primitives import nested_view

    model = model.eval()
    mods = dict(model.named_modules())
    weighted = [n for n in ir.graph if n["op"] in WEIGHTED]
    ref = ir.header["paths"][ref_path]["nodes"]
    captured: dict[str, torch.Tensor] = {}
    hooks = [mods[n["name"]].register_forward_hook(lambda mod, inp, out, nm=n["name"]: captured.__setitem__(nm,
                                                                                                           inp[0]))
             for n in weighted]
    xt = (torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2).float() / 255.0).requires_grad_(True)
    yt = torch.from_numpy(np.asarray(y)).long()
    params = [mods[n["name"]].weight for n in weighted]
    try:
        loss = nn.functional.cross_entropy(model(xt), yt)
        acts = [captured[n["name"]] for n in weighted]
        grads = torch.autograd.grad(loss, params + acts, create_graph=True)
    finally:
        for h in hooks:
            h.remove()
    gen = torch.Generator().manual_seed(seed)
    tr = np.zeros(2 * len(weighted))
    targets = params + acts
    for _ in range(probes):
        vs = [torch.randint(0, 2, t.shape, generator=gen).float() * 2 - 1 for t in targets]
        hv = torch.autograd.grad(grads, targets, vs, retain_graph=True)
        tr += np.array([float((v * h).sum()) for v, h in zip(vs, hv, strict=True)])
    tr = np.abs(tr / probes)
    out: dict[str, dict[str, float]] = {}
    traces = {}
    for i, n in enumerate(weighted):
        name = n["name"]
        W = params[i].detach().double()
        meta = ir.header["layers"][name]
        B = meta["w_stored"]
        s = torch.tensor(meta.get("w_scale") or [float(W.abs().max()) / (2 ** (B - 1) - 1)], dtype=torch.float64)
        s = s.reshape(-1, *([1] * (W.dim() - 1))) if s.numel() > 1 else s
        q = torch.clamp(torch.floor(W / s + 0.5), -(2 ** (B - 1)), 2 ** (B - 1) - 1)
        rnd = w_round(ir, name)

        def err(wb: int, W=W, q=q, s=s, B=B, rnd=rnd) -> float:
            step = s * 2.0 ** (B - wb)
            return float(((nested_view(q, B, wb, rnd) * step - W) ** 2).sum())

        d_w = {wb: err(wb) for wb in BITS if wb <= B}
        prod = _group(ir, n["inputs"][0])
        d8 = ref[prod]["out_scale"] if prod != INPUT else 1.0 / 255.0
        levels8 = 2 ** ref[name]["in"][0] - 1
        tw, ta = tr[i] / W.numel(), tr[len(weighted) + i]
        traces[name] = {"weights": float(tr[i]), "activations": float(ta)}
        for wb, e in d_w.items():
            for a in BITS:
                if prod == INPUT and a != 8:
                    continue
                da = d8 * levels8 / (2**a - 1)
                v = 0.5 * (tw * max(0.0, e - d_w[B]) + ta * max(0.0, da**2 - d8**2) / 12.0)
                if (wb, a) != (ref[name]["w_view"], ref[name]["in"][0]):
                    out.setdefault(name, {})[f"w{wb}a{a}"] = v
        log(f"  {name}: |Tr H_W| {tr[i]:.4g}, |Tr H_x| {ta:.4g}")
    return {"layers": out, "traces": traces, "probes": probes}
