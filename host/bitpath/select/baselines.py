"""The baselines every selector is measured against, computed once for the controller report and the bench.

Both ``bitpath select report`` (per-path mean costs from the cost table) and ``bitpath bench``
(per-image costs read from the board) call these functions, so a cascade or an oracle means the same
thing in every report. ``costs`` is either one mean cost per path, shape ``(K,)``, or one cost per
image and path, shape ``(N, K)``.

- :func:`oracle`: per image the cheapest path that is right (the cheapest path when none is), known
  only in hindsight: the bound no selector can pass.
- :func:`cascade`: run ``first``; when its top-1/top-2 logit margin is below a threshold, also run
  ``second`` and take its answer. Both runs' costs count.
- :func:`pareto`: the (cost, accuracy) points no cheaper-or-equal point beats.
- :func:`mix_front` / :func:`mix_accuracy`: a random split of the inputs between static paths (the
  concave envelope of their points); what a selector must beat to show it uses the input.

numpy only: the bench imports this without torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from bitpath.export.runner import top2_margin

#: Default cascade thresholds: these quantiles of the first path's margins (0 escalates nothing,
#: 1 escalates everything).
QUANTILES = tuple(float(q) for q in np.linspace(0, 1, 21))


def cost_order(costs: Sequence[float]) -> list[int]:
    """Path indices cheapest first (stable: equal costs keep their index order)."""
    return [int(i) for i in np.argsort(np.asarray(costs, dtype=np.float64), kind="stable")]


def _per_image(costs, n: int, k: int) -> np.ndarray:
    c = np.asarray(costs, dtype=np.float64)
    if c.ndim == 1:
        if c.shape[0] != k:
            raise ValueError(f"costs: {c.shape[0]} values for {k} paths")
        return np.broadcast_to(c, (n, k))
    if c.shape != (n, k):
        raise ValueError(f"costs: shape {c.shape}, expected ({k},) or ({n}, {k})")
    return c


def cascade(logits: np.ndarray, y: np.ndarray, costs, first: int, second: int,
            quantiles: Sequence[float] = QUANTILES) -> list[dict]:
    """One point per distinct threshold: ``escalate when margin(first) < threshold``.

    ``logits`` is ``(N, K, classes)`` (integer logits of every path on the same images), ``y`` the
    labels. A threshold is the ``q`` quantile of the first path's margins (the next integer above the
    largest margin for ``q >= 1``, so that every image escalates); thresholds that repeat are kept once.
    Each point: ``first``, ``second``, ``threshold``, ``quantile``, ``escalated`` (fraction),
    ``accuracy`` and ``cost`` (mean of ``cost[first] + escalated * cost[second]`` per image).
    """
    logits = np.asarray(logits)
    n, k = logits.shape[0], logits.shape[1]
    c = _per_image(costs, n, k)
    m = top2_margin(logits[:, first])[1]  # the device's margin (bp_runtime_top2)
    pred1, pred2 = logits[:, first].argmax(1), logits[:, second].argmax(1)
    y = np.asarray(y)
    out = []
    seen = set()
    for q in quantiles:
        t = int(np.quantile(m, q, method="higher")) + (1 if q >= 1 else 0) if len(m) else 0
        if t in seen:
            continue
        seen.add(t)
        esc = m < t
        pred = np.where(esc, pred2, pred1)
        out.append({"first": first, "second": second, "threshold": t, "quantile": float(q),
                    "escalated": float(esc.mean()) if n else 0.0,
                    "accuracy": float((pred == y).mean()) if n else 0.0,
                    "cost": float((c[:, first] + np.where(esc, c[:, second], 0.0)).mean()) if n else 0.0})
    return out


def oracle(correct: np.ndarray, costs) -> dict:
    """Per image the cheapest path that is right (the cheapest when none is): the hindsight bound.

    Returns ``accuracy``, ``cost`` (mean), ``count`` (images per path) and ``share`` (fraction of
    images per path). Equal costs go to the lower path index.
    """
    correct = np.asarray(correct, dtype=bool)
    n, k = correct.shape
    c = _per_image(costs, n, k)
    any_ok = correct.any(axis=1)
    pick = np.where(any_ok, np.where(correct, c, np.inf).argmin(axis=1), c.argmin(axis=1))
    count = np.bincount(pick, minlength=k)
    return {"accuracy": float(any_ok.mean()) if n else 0.0,
            "cost": float(c[np.arange(n), pick].mean()) if n else 0.0,
            "count": [int(v) for v in count],
            "share": [float(v) for v in count / max(n, 1)]}


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(cost, accuracy) points not dominated by a cheaper-or-equal, at-least-as-accurate one."""
    out: list[tuple[float, float]] = []
    best = -math.inf
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if a > best:
            out.append((c, a))
            best = a
    return out


def mix_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper concave envelope of (cost, accuracy) points: what splitting the inputs *at random*
    between static paths reaches (a fraction p to one path, 1 - p to another gives the straight line
    between them). Input-aware selection only pays where it beats this line."""
    hull: list[tuple[float, float]] = []
    for c, a in pareto(points):
        while len(hull) >= 2:
            (c1, a1), (c2, a2) = hull[-2], hull[-1]
            # drop the middle point when it lies on or below the chord from hull[-2] to (c, a)
            if (a2 - a1) * (c - c1) <= (a - a1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append((c, a))
    return hull


def mix_accuracy(front: Sequence[tuple[float, float]], cost: float) -> float | None:
    """Accuracy of the best random split of static paths at mean cost <= ``cost`` (None below the
    cheapest path)."""
    if not front or cost < front[0][0]:
        return None
    for (c1, a1), (c2, a2) in itertools.pairwise(front):
        if cost <= c2:
            return a1 + (a2 - a1) * (cost - c1) / (c2 - c1)
    return front[-1][1]
