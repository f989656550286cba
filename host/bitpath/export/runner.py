"""Run an IR on one path through the exact numpy reference (``bitpath.ref.ops``). No torch.

:func:`run` returns the int32 logits of one image; :func:`evaluate` the accuracy and the
predictions over a dataset. These are the numbers ``bitpath eval`` reports, and what the cffi
kernels and the firmware are compared against bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from bitpath.ir import INPUT, IR, controller_ir, layer_quant
from bitpath.ref import ops
from bitpath.ref.formats import ActFormat, Window


class Runner:
    """Executes one IR; weights are unpacked once and shared by all paths."""

    def __init__(self, ir: IR) -> None:
        self.ir = ir
        self._w = {n["name"]: ir.weights(n["name"]) for n in ir.graph if n["op"] in ("conv2d", "depthwise_conv2d",
                                                                                     "fully_connected")}
        self._q = {}
        sub = controller_ir(ir)
        self.controller = Runner(sub) if sub is not None else None

    def controller_scores(self, x: np.ndarray) -> np.ndarray:
        """The controller's int32 scores (one per path) for one image; the IR must have a controller."""
        if self.controller is None:
            raise ValueError("this IR has no controller; force a path instead")
        return self.controller.run(x, 0)

    def choose(self, x: np.ndarray) -> int:
        """The path the controller picks for one image (what the device does under ``bp-path auto``)."""
        c = self.ir.header["controller"]
        return int(choose(self.controller_scores(x)[None], c["penalty"], c["order"])[0])

    def run_auto(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        """The controller's path for one image and that path's logits."""
        p = self.choose(x)
        return p, self.run(x, p)

    def _quant(self, p: int, name: str):
        k = (p, name)
        if k not in self._q:
            self._q[k] = layer_quant(self.ir, p, name)
        return self._q[k]

    def run(self, x: np.ndarray, path: int | str) -> np.ndarray:
        """Int32 logits (as int64) of one uint8 image ``(H, W, C)`` on ``path`` (index or name)."""
        return self.values(x, path)[self.ir.header["output"]]

    def values(self, x: np.ndarray, path: int | str) -> dict[str, np.ndarray]:
        """Every graph value (the input and each node's output) of one image on ``path``."""
        ir = self.ir
        p = ir.path_index(path)
        shape = tuple(ir.header["input"]["shape"])
        xa = np.asarray(x)
        if xa.shape != shape or xa.dtype != np.uint8:
            raise ValueError(f"input must be uint8 of shape {shape}, got {xa.dtype} {xa.shape}")
        pq = ir.header["paths"][p]["nodes"]
        vals: dict[str, np.ndarray] = {INPUT: xa.astype(np.int64)}
        fmts: dict[str, ActFormat] = {INPUT: ActFormat(8, False)}
        for node in ir.graph:
            name, op, a = node["name"], node["op"], node["attrs"]
            x_in = vals[node["inputs"][0]]
            if op in ("conv2d", "depthwise_conv2d", "fully_connected"):
                q = self._quant(p, name)
                bias = ir.arrays[f"bias:{name}:{p}"]
                if q.out.bits == 32:
                    mult = shift = np.zeros_like(bias)
                else:
                    mult, shift = ir.arrays[f"mult:{name}:{p}"], ir.arrays[f"shift:{name}:{p}"]
                if op == "fully_connected":
                    out = ops.fully_connected(x_in, self._w[name], bias, mult, shift, q)
                else:
                    win = Window(*a["stride"], *a["pad"])
                    fn = ops.conv2d if op == "conv2d" else ops.depthwise_conv2d
                    out = fn(x_in, self._w[name], bias, mult, shift, q, win)
                fmts[name] = q.out
            elif op == "max_pool2d":
                fmts[name] = fmts[node["inputs"][0]]
                out = ops.max_pool2d(x_in, fmts[name], *a["kernel"], Window(*a["stride"], *a["pad"]))
            elif op == "avg_pool2d":
                fmts[name] = fmts[node["inputs"][0]]
                out = ops.avg_pool2d(x_in, fmts[name], *a["kernel"], *a["stride"])
            elif op == "flatten":
                fmts[name] = fmts[node["inputs"][0]]
                out = x_in.reshape(-1)  # HWC order; the exporter permuted the FC weights to match
            elif op == "add":
                q = pq[name]
                fa, fb = fmts[node["inputs"][0]], fmts[node["inputs"][1]]
                fmts[name] = ActFormat(*q["out"])
                out = ops.add(x_in, fa, vals[node["inputs"][1]], fb, q["mult_a"], q["mult_b"], q["shift"],
                              fmts[name], q["act_min"], q["act_max"])
            else:  # validated IRs never get here
                raise ValueError(f"layer {name!r}: unknown op {op!r}")
            vals[name] = out
        if ir.header["output"] not in vals:  # validated IRs always reach it
            raise ValueError("the IR graph never reaches its output layer")
        return vals

    def logits(self, xs: np.ndarray, path: int | str, progress: Callable[[Iterable], Iterable] | None = None
               ) -> np.ndarray:
        """Int32 logits for a batch ``(N, H, W, C)``."""
        it = range(len(xs))
        if progress is not None:
            it = progress(it)
        return np.stack([self.run(xs[i], path) for i in it]).astype(np.int64)


def choose(scores: np.ndarray, penalty, order) -> np.ndarray:
    """The controller's decision rule, exactly as ``bp_runtime_choose`` in C: for each row of int32
    ``scores`` ``(N, K)``, the path ``k`` with the largest ``scores[k] - penalty[k]`` (in int64); ties go to
    the path that comes first in ``order`` (cheapest first)."""
    s = np.asarray(scores, dtype=np.int64)
    adj = s - np.asarray(penalty, dtype=np.int64)[None, :]
    order = np.asarray(order, dtype=np.int64)
    ranked = adj[:, order]  # argmax takes the first maximum: the earliest in `order`
    return order[ranked.argmax(axis=1)]


def evaluate(ir: IR, x: np.ndarray, y: np.ndarray, path: int | str,
             progress: Callable[[Iterable], Iterable] | None = None) -> tuple[float, np.ndarray]:
    """Accuracy of the integer model on ``path`` and its predictions (first index of the max logit)."""
    logits = Runner(ir).logits(x, path, progress)
    pred = logits.argmax(axis=1)
    return float((pred == y).mean()) if len(y) else 0.0, pred
