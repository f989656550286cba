"""Run an IR on one path through the exact numpy reference (``bitpath.ref.ops``). No torch.

:func:`run` returns the int32 logits of one image; :func:`evaluate` the accuracy and the
predictions over a dataset. These are the numbers ``bitpath eval`` reports, and what the cffi
kernels and the firmware are compared against bit for bit.

The on-device controller comes in two kinds (``bitpath.ir.controller_kind``), both mirrored here
exactly as the generated C runs them: ``"net"`` scores the paths with a tiny network and picks with
:func:`choose`; ``"escalate"`` runs the paths of its stages one at a time, cheapest first, and stops
at the first whose top-1/top-2 logit margin (:func:`top2_margin`) reaches the threshold of its top
class (:func:`escalate` is the batched form over precomputed logits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from bitpath.ir import INPUT, IR, controller_ir, controller_kind, layer_quant
from bitpath.ref import ops
from bitpath.ref.formats import ActFormat, Window


class Runner:
    """Executes one IR; weights are unpacked once and shared by all paths."""

    def __init__(self, ir: IR) -> None:
        self.ir = ir
        self._w = {n["name"]: ir.weights(n["name"]) for n in ir.graph if n["op"] in ("conv2d", "depthwise_conv2d",
                                                                                     "fully_connected")}
        self._q = {}
        self.controller_kind = controller_kind(ir)
        sub = controller_ir(ir)
        # the controller *network* (kind "net" only); an escalating controller has none
        self.controller = Runner(sub) if sub is not None else None

    @property
    def has_controller(self) -> bool:
        """Whether ``bp-path auto`` works for this IR (a controller of either kind)."""
        return self.controller_kind is not None

    def controller_scores(self, x: np.ndarray) -> np.ndarray:
        """The controller's int32 scores (one per path) for one image; the IR must have a controller net."""
        if self.controller is None:
            if self.controller_kind == "escalate":
                raise ValueError("this IR's controller escalates on logit margins and has no scores; "
                                 "use choose() or run_auto(), or top2_margin() on the paths' logits")
            raise ValueError("this IR has no controller; force a path instead")
        return self.controller.run(x, 0)

    def choose(self, x: np.ndarray) -> int:
        """The path the controller picks for one image (what the device does under ``bp-path auto``)."""
        if self.controller_kind == "escalate":
            return self.run_escalate(x)[0]
        c = self.ir.header["controller"]
        return int(choose(self.controller_scores(x)[None], c["penalty"], c["order"])[0])

    def run_auto(self, x: np.ndarray) -> tuple[int, np.ndarray]:
        """The controller's path for one image and that path's logits."""
        if self.controller_kind == "escalate":
            p, logits, _ = self.run_escalate(x)
            return p, logits
        p = self.choose(x)
        return p, self.run(x, p)

    def run_escalate(self, x: np.ndarray) -> tuple[int, np.ndarray, int]:
        """The escalating controller on one image, lazily like the device: run each stage's path in turn
        and accept it when its margin reaches the threshold of its top class, else run ``final``.
        Returns the path, its logits and the exit stage (``len(stages)`` when ``final`` ran)."""
        if self.controller_kind != "escalate":
            raise ValueError(f"this IR's controller is of kind {self.controller_kind!r}, not 'escalate'")
        c = self.ir.header["controller"]
        for si, stage in enumerate(c["stages"]):
            logits = self.run(x, stage["path"])
            top, margin = top2_margin(logits[None])
            if margin[0] >= stage["threshold"][top[0]]:
                return int(stage["path"]), logits, si
        return int(c["final"]), self.run(x, c["final"]), len(c["stages"])

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


def top2_margin(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top class and top-1/top-2 margin of each row of int32 ``logits`` ``(..., C)``, exactly as
    ``bp_runtime_top2`` in C: ``top`` is the first index of the maximum, ``margin`` = ``z[top]`` minus the
    largest other entry, in int64 (never negative, 0 on a tie, up to 2**32 - 1 at the int32 edges)."""
    z = np.asarray(logits, dtype=np.int64)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"top2_margin needs at least 2 classes per row, got shape {z.shape}")
    top = z.argmax(axis=-1)  # the first maximum, like the C loop's strict '>'
    best = np.take_along_axis(z, top[..., None], axis=-1)
    others = z.copy()
    np.put_along_axis(others, top[..., None], np.iinfo(np.int64).min, axis=-1)
    return top, best[..., 0] - others.max(axis=-1)


def escalate(logits: np.ndarray, stages: list[dict], final: int) -> tuple[np.ndarray, np.ndarray]:
    """The escalating controller's decision over precomputed logits ``(N, K, C)`` of every path.

    ``stages`` is ``header["controller"]["stages"]`` (``{"path", "threshold"}`` each, cheapest first). An
    image stops at the first stage whose path's margin reaches ``threshold[top]``; images no stage accepts
    run ``final``. Returns ``chosen`` ``(N,)``, the path whose logits are returned, and ``exit_stage``
    ``(N,)`` in ``0..len(stages)``: stages ``0..exit_stage`` ran (plus ``final`` when it is
    ``len(stages)``), which is what the run costs."""
    z = np.asarray(logits, dtype=np.int64)
    if z.ndim != 3:
        raise ValueError(f"logits must be (images, paths, classes), got shape {z.shape}")
    n = len(z)
    chosen = np.full(n, int(final), dtype=np.int64)
    exit_stage = np.full(n, len(stages), dtype=np.int64)
    open_ = np.ones(n, dtype=bool)
    for si, stage in enumerate(stages):
        p = int(stage["path"])
        top, margin = top2_margin(z[:, p])
        accept = open_ & (margin >= np.asarray(stage["threshold"], dtype=np.int64)[top])
        chosen[accept], exit_stage[accept] = p, si
        open_ &= ~accept
    return chosen, exit_stage


def evaluate(ir: IR, x: np.ndarray, y: np.ndarray, path: int | str,
             progress: Callable[[Iterable], Iterable] | None = None) -> tuple[float, np.ndarray]:
    """Accuracy of the integer model on ``path`` and its predictions (first index of the max logit)."""
    logits = Runner(ir).logits(x, path, progress)
    pred = logits.argmax(axis=1)
    return float((pred == y).mean()) if len(y) else 0.0, pred
