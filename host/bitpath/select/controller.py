"""The on-device controller: a tiny integer network that picks a bit-path for each input.

What runs on the device (and, bit for bit, in :class:`bitpath.export.runner.Runner`):

1. ``avg_pool2d`` of the raw uint8 input (window = stride = ``pool``), ``flatten`` (HWC order);
2. ``fully_connected`` -> ``hidden`` uint8 units (ReLU), ``fully_connected`` -> one int32 score per path;
3. the decision rule ``path = argmax_k(score[k] - penalty[k])``, ties to the cheaper path
   (``bp_runtime_choose`` in C, :func:`bitpath.export.runner.choose` on the host).

Each score estimates the log-odds that path ``k`` classifies this input correctly: the float network
is trained with a binary cross-entropy per path on labels taken from the exported *integer* model
(the generated C run on the host, the same code the board runs). It is then quantized after training
(8-bit weights, per-channel multipliers, int32 scores) and every later decision uses the integer
scores. The penalty carries the measured device cost: ``penalty[k] = round(lambda * (cost[k] -
min cost) / cost[ref] / score_scale)``, so ``lambda`` (log-odds per 100 % of the reference path's
cost) is the single knob that trades accuracy for cost. It is chosen on held-out images for either
an allowed accuracy loss against the reference path or a target average cost; the controller's own
measured cost is part of every average.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bitpath.export.runner import Runner, choose
from bitpath.ir import CTRL_PREFIX, INT32_MAX, INT32_MIN, IR, controller_ir, controller_kind, validate
from bitpath.ref.formats import Window
from bitpath.ref.packing import pack
from bitpath.ref.requant import quantize_multiplier
from bitpath.select.baselines import cost_order

RULE = "path = argmax_k(score[k] - penalty[k]); ties to the earlier path in `order` (cheapest first)"


class ControllerError(ValueError):
    """The controller cannot be trained or placed as asked; the message says what to change."""


@dataclass
class ControllerConfig:
    """How the controller network is shaped and trained."""

    pool: int = 4  # average-pool window (and stride) on the raw input
    hidden: int = 16  # hidden units
    epochs: int = 30
    lr: float = 3e-3
    batch: int = 256
    seed: int = 0
    act_percentile: float = 99.99  # hidden-activation range for the uint8 requantization


# ---------------------------------------------------------------------------------------- features
def pooled(x: np.ndarray, pool: int) -> np.ndarray:
    """The controller's first two steps on a batch ``(N, H, W, C)`` uint8: integer average pooling
    ``floor((sum + n//2) / n)`` exactly as the kernel, flattened in HWC order -> ``(N, F)`` int64."""
    xa = np.asarray(x, dtype=np.int64)
    n, h, w, c = xa.shape
    oh, ow = Window(pool, pool).out_size(h, w, pool, pool)
    xa = xa[:, : oh * pool, : ow * pool].reshape(n, oh, pool, ow, pool, c)
    s = xa.sum(axis=(2, 4))
    return ((s + (pool * pool) // 2) // (pool * pool)).reshape(n, -1)


def integer_scores(ir: IR, x: np.ndarray) -> np.ndarray:
    """Controller scores ``(N, K)`` of a batch, computed by the numpy reference of the controller net."""
    sub = controller_ir(ir)
    if sub is None:
        raise ControllerError("this IR has no controller")
    r = Runner(sub)
    return np.stack([r.run(xi, 0) for xi in x]).astype(np.int64)


# ---------------------------------------------------------------------------------------- training
def train_float(feats: np.ndarray, correct: np.ndarray, cfg: ControllerConfig,
                progress: Callable[[Iterable], Iterable] | None = None):
    """Train the float controller (pooled uint8 features / 255 -> per-path log-odds of being right)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    xf = torch.from_numpy(feats.astype(np.float32) / 255.0)
    yc = torch.from_numpy(correct.astype(np.float32))
    k = correct.shape[1]
    net = nn.Sequential(nn.Linear(xf.shape[1], cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, k))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    epochs: Iterable[int] = range(cfg.epochs)
    if progress is not None:
        epochs = progress(epochs)
    for _ in epochs:
        perm = torch.randperm(len(xf), generator=g)
        for i in range(0, len(xf), cfg.batch):
            idx = perm[i : i + cfg.batch]
            loss = F.binary_cross_entropy_with_logits(net(xf[idx]), yc[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    net.eval()
    return net


def quantize(ir: IR, net, feats: np.ndarray, cfg: ControllerConfig) -> tuple[dict, dict[str, np.ndarray], float]:
    """The controller network as IR header/arrays (8-bit weights, uint8 hidden, int32 scores).

    Returns ``(net_header, arrays, score_scale)``; arrays are named without the ``ctrl/`` prefix.
    """
    import torch

    fc1, fc2 = net[0], net[2]
    w1 = fc1.weight.detach().double().numpy()
    b1 = fc1.bias.detach().double().numpy()
    w2 = fc2.weight.detach().double().numpy()
    b2 = fc2.bias.detach().double().numpy()
    s_in = 1.0 / 255.0
    with torch.no_grad():
        h = torch.relu(fc1(torch.from_numpy(feats.astype(np.float32) / 255.0))).double().numpy()
    top = float(np.percentile(h, cfg.act_percentile)) if h.size else 0.0
    s_h = max(top, 1e-6) / 255.0

    sw1 = np.maximum(np.abs(w1).max(axis=1), 1e-12) / 127.0
    q1 = np.clip(np.round(w1 / sw1[:, None]), -127, 127).astype(np.int64)
    bias1 = np.round(b1 / (sw1 * s_in)).astype(np.int64)
    mult1, shift1 = zip(*(quantize_multiplier(float(sw1[r] * s_in / s_h)) for r in range(len(sw1))), strict=True)
    sw2 = max(float(np.abs(w2).max()), 1e-12) / 127.0
    q2 = np.clip(np.round(w2 / sw2), -127, 127).astype(np.int64)
    bias2 = np.round(b2 / (sw2 * s_h)).astype(np.int64)
    score_scale = sw2 * s_h
    if max(np.abs(bias1).max(), np.abs(bias2).max()) >= 2**30:
        raise ControllerError("controller bias does not fit the int32 accumulator; retrain with a smaller --lr")

    shape = list(ir.header["input"]["shape"])
    oh, ow = Window(cfg.pool, cfg.pool).out_size(shape[0], shape[1], cfg.pool, cfg.pool)
    nfeat = oh * ow * shape[2]
    k = w2.shape[0]
    header = {
        "input": dict(ir.header["input"]),
        "num_classes": k,
        "graph": [
            {"name": "pool", "op": "avg_pool2d", "inputs": ["input"], "out_shape": [oh, ow, shape[2]],
             "attrs": {"kernel": [cfg.pool, cfg.pool], "stride": [cfg.pool, cfg.pool]}},
            {"name": "flat", "op": "flatten", "inputs": ["pool"], "out_shape": [nfeat], "attrs": {}},
            {"name": "fc1", "op": "fully_connected", "inputs": ["flat"], "out_shape": [cfg.hidden],
             "attrs": {"act": "relu", "in_ch": nfeat, "out_ch": cfg.hidden}},
            {"name": "fc2", "op": "fully_connected", "inputs": ["fc1"], "out_shape": [k],
             "attrs": {"act": None, "in_ch": cfg.hidden, "out_ch": k}},
        ],
        "output": "fc2",
        "layers": {
            "fc1": {"w_stored": 8, "w_shape": [cfg.hidden, nfeat], "row_len": nfeat,
                    "w_scale": [float(v) for v in sw1], "quantizer": "post-training max-abs, per channel"},
            "fc2": {"w_stored": 8, "w_shape": [k, cfg.hidden], "row_len": cfg.hidden,
                    "w_scale": [sw2], "quantizer": "post-training max-abs, per tensor"},
        },
        "paths": [{"name": "controller", "nodes": {
            "fc1": {"in": [8, False], "out": [8, False], "w_view": 8, "act_min": 0, "act_max": 255,
                    "out_scale": s_h},
            "fc2": {"in": [8, False], "out": [32, True], "w_view": 8, "act_min": INT32_MIN, "act_max": INT32_MAX,
                    "out_scale": score_scale},
        }}],
    }
    arrays = {
        "w:fc1": pack(q1, 8, True), "bias:fc1:0": bias1.astype(np.int32),
        "mult:fc1:0": np.asarray(mult1, dtype=np.int32), "shift:fc1:0": np.asarray(shift1, dtype=np.int32),
        "w:fc2": pack(q2, 8, True), "bias:fc2:0": bias2.astype(np.int32),
    }
    return header, arrays, score_scale


def attach(ir: IR, net_header: dict, arrays: dict[str, np.ndarray], *, penalty: Sequence[int],
           order: Sequence[int], info: dict) -> IR:
    """A copy of ``ir`` carrying the controller (validated)."""
    header = dict(ir.header)
    header["controller"] = {"net": net_header, "penalty": [int(v) for v in penalty],
                            "order": [int(v) for v in order], "rule": RULE, **info}
    out = {k: v for k, v in ir.arrays.items() if not k.startswith(CTRL_PREFIX)}
    out.update({CTRL_PREFIX + k: v for k, v in arrays.items()})
    new = IR(header, out)
    validate(new)
    return new


def parameter_bytes(ir: IR) -> int:
    """Flash the controller takes: packed weights, int32 biases/multipliers/shifts, penalty (int32) and
    order; for the escalating controller its thresholds and stage paths."""
    if controller_kind(ir) == "escalate":
        from bitpath.select.escalate import parameter_bytes as escalate_bytes

        return escalate_bytes(ir.header["controller"]["stages"])
    sub = controller_ir(ir)
    if sub is None:
        return 0
    k = len(ir.path_names)
    return int(sum(a.nbytes for a in sub.arrays.values())) + 4 * k + k


# ---------------------------------------------------------------------------------------- the knob
def penalties(lam: float, costs: Sequence[float], ref: int, score_scale: float) -> np.ndarray:
    """Integer penalty per path for knob ``lam`` (log-odds per 100 % of the reference path's cost)."""
    c = np.asarray(costs, dtype=np.float64)
    pen = np.round(lam * (c - c.min()) / c[ref] / score_scale)
    return np.clip(pen, 0, INT32_MAX).astype(np.int64)


@dataclass
class Operating:
    """One setting of the knob, evaluated on a set of images."""

    lam: float
    penalty: list[int]
    accuracy: float
    cost: float  # mean per inference, controller included
    share: list[float]  # fraction of images per path

    def asdict(self) -> dict:
        return asdict(self)


def sweep(scores: np.ndarray, correct: np.ndarray, costs: Sequence[float], ctrl_cost: float, ref: int,
          score_scale: float, lams: Sequence[float] | None = None) -> list[Operating]:
    """Accuracy and mean cost of the dynamic model for each knob value."""
    order = cost_order(costs)
    c = np.asarray(costs, dtype=np.float64)
    if lams is None:
        lams = [0.0, *np.geomspace(0.01, 1000.0, 61)]
    s = np.asarray(scores, dtype=np.int64)
    return [_evaluate(s, correct, c, ctrl_cost, penalties(lam, costs, ref, score_scale), order, float(lam))
            for lam in lams]


def pick_operating(points: Sequence[Operating], *, ref_accuracy: float, ref_cost: float,
                   max_loss_pp: float | None = None, target_cost: float | None = None,
                   images: str = "held-out") -> tuple[Operating, str]:
    """The knob setting for an allowed accuracy loss (pp against the reference path) or a target mean
    cost (fraction of the reference path's cost); returns it and a sentence saying how it was chosen.
    ``images`` names the images the points were scored on, for that sentence."""
    if (max_loss_pp is None) == (target_cost is None):
        raise ControllerError("give exactly one of max_loss_pp and target_cost")
    if max_loss_pp is not None:
        ok = [p for p in points if p.accuracy >= ref_accuracy - max_loss_pp / 100.0 - 1e-12]
        if ok:
            best = min(ok, key=lambda p: (p.cost, -p.accuracy))
            return best, (f"cheapest setting within {max_loss_pp} pp of the reference path's {images} accuracy "
                          f"({100 * ref_accuracy:.2f} %)")
        best = max(points, key=lambda p: (p.accuracy, -p.cost))
        return best, (f"no setting stays within {max_loss_pp} pp of the reference ({100 * ref_accuracy:.2f} %) "
                      f"on the {images} images: took the most accurate one")
    assert target_cost is not None
    ok = [p for p in points if p.cost <= target_cost * ref_cost]
    if ok:
        best = max(ok, key=lambda p: (p.accuracy, -p.cost))
        return best, f"most accurate setting with mean cost <= {target_cost:.3f}x the reference path"
    best = min(points, key=lambda p: (p.cost, -p.accuracy))
    return best, f"no setting reaches {target_cost:.3f}x the reference path's cost: took the cheapest one"


def _evaluate(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray, ctrl_cost: float, pen: np.ndarray,
              order: list[int], lam: float) -> Operating:
    pick = choose(scores, pen, order)
    share = np.bincount(pick, minlength=len(costs)) / max(len(pick), 1)
    acc = float(correct[np.arange(len(pick)), pick].mean()) if len(pick) else 0.0
    return Operating(lam, [int(v) for v in pen], acc, float(ctrl_cost + costs[pick].mean()), [float(v) for v in share])


def _better(a: Operating, b: Operating, *, floor: float | None, budget: float | None) -> bool:
    """Is ``a`` a better setting than ``b`` for the knob (accuracy floor, or cost budget)?"""
    if floor is not None:
        fa, fb = a.accuracy >= floor - 1e-12, b.accuracy >= floor - 1e-12
        if fa != fb:
            return fa
        return (a.cost, -a.accuracy) < (b.cost, -b.accuracy) if fa else a.accuracy > b.accuracy
    assert budget is not None
    fa, fb = a.cost <= budget, b.cost <= budget
    if fa != fb:
        return fa
    return (a.accuracy, -a.cost) > (b.accuracy, -b.cost) if fa else a.cost < b.cost


def refine(start: Operating, scores: np.ndarray, correct: np.ndarray, costs: Sequence[float], ctrl_cost: float, *,
           ref_accuracy: float, ref_cost: float, max_loss_pp: float | None = None, target_cost: float | None = None,
           rounds: int = 3, grid: int = 41) -> Operating:
    """Refine the knob's penalty vector one path at a time (coordinate search on the held-out images).

    ``lambda * cost`` fixes the penalties' ratios; the search lets each path's penalty move on its
    own, so settings such as "almost always path A, path B only when very sure" become reachable.
    The knob's meaning is unchanged: the accuracy floor or the cost budget is the constraint."""
    floor = ref_accuracy - max_loss_pp / 100.0 if max_loss_pp is not None else None
    budget = target_cost * ref_cost if target_cost is not None else None
    c = np.asarray(costs, dtype=np.float64)
    order = cost_order(costs)
    s = np.asarray(scores, dtype=np.int64)
    best = start
    pen = np.asarray(start.penalty, dtype=np.int64)
    spread = np.abs(s[:, :, None] - s[:, None, :]).reshape(-1)
    top = int(np.quantile(spread, 0.999)) + 1 if spread.size else 1
    cands = np.unique(np.concatenate([np.linspace(-top, top, grid).round(), [-(2**31), 2**31 - 1]])).astype(np.int64)
    for _ in range(rounds):
        improved = False
        for k in range(len(c)):
            for v in cands:
                trial = pen.copy()
                trial[k] = v
                op = _evaluate(s, correct, c, ctrl_cost, trial, order, start.lam)
                if _better(op, best, floor=floor, budget=budget):
                    best, pen, improved = op, trial, True
        if not improved:
            break
    return best


