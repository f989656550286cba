"""Oracle and cascade with per-image costs (what the bench measures), against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bitpath.select import baselines as B


def test_oracle_per_image_costs_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    n, k = 60, 3
    correct = rng.random((n, k)) < 0.6
    cost = rng.integers(90, 110, size=(n, k)).astype(float)
    o = B.oracle(correct, cost)
    picks = []
    for i in range(n):
        right = [j for j in range(k) if correct[i, j]]
        pool = right or list(range(k))
        picks.append(min(pool, key=lambda j: (cost[i, j], j)))
    assert o["accuracy"] == pytest.approx(correct.any(axis=1).mean())
    assert o["cost"] == pytest.approx(np.mean([cost[i, p] for i, p in enumerate(picks)]))
    assert o["count"] == [picks.count(j) for j in range(k)]
    # per-path costs are the same as per-image costs that do not vary
    mean = np.array([100.0, 50.0, 75.0])
    assert B.oracle(correct, mean) == B.oracle(correct, np.tile(mean, (n, 1)))


def test_cascade_per_image_costs_counts_both_runs_of_each_image() -> None:
    logits = np.zeros((3, 2, 2), np.int64)
    logits[:, 0] = [[3, 0], [0, 1], [0, 9]]  # margins 3, 1, 9
    logits[:, 1] = [[0, 5], [5, 0], [0, 5]]
    y = np.array([0, 0, 1])
    cost = np.array([[10.0, 40.0], [12.0, 44.0], [14.0, 48.0]])
    by_t = {p["threshold"]: p for p in B.cascade(logits, y, cost, 0, 1, quantiles=[0.5])}
    # threshold = median margin 3: only image 1 (margin 1) escalates
    p = by_t[3]
    assert p["escalated"] == pytest.approx(1 / 3)
    assert p["accuracy"] == 1.0
    assert p["cost"] == pytest.approx((10 + (12 + 44) + 14) / 3)


def test_costs_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="costs"):
        B.oracle(np.ones((4, 2), bool), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="costs"):
        B.cascade(np.zeros((4, 2, 3)), np.zeros(4), np.ones((3, 2)), 0, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_pareto_keeps_exactly_the_undominated_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = [(float(c), float(a)) for c, a in zip(rng.integers(0, 10, 30), rng.random(30), strict=True)]
    front = B.pareto(pts)
    for c, a in pts:
        dominated = any(c2 <= c and a2 >= a and (c2, a2) != (c, a) for c2, a2 in pts)
        assert ((c, a) in front) == (not dominated)
    assert all(a1 < a2 and c1 < c2 for (c1, a1), (c2, a2) in itertools.pairwise(front))


def test_mix_front_is_the_concave_envelope_of_the_pareto_points() -> None:
    # (1, 0.80) (2, 0.84) (3, 0.90) (4, 0.91) (2.5, 0.5: dominated)
    pts = [(1.0, 0.80), (2.0, 0.84), (3.0, 0.90), (4.0, 0.91), (2.5, 0.5)]
    front = B.mix_front(pts)
    # (2, 0.84) lies below the chord (1, 0.80)-(3, 0.90), which passes 0.85 at cost 2
    assert front == [(1.0, 0.80), (3.0, 0.90), (4.0, 0.91)]
    assert B.mix_accuracy(front, 0.5) is None
    assert B.mix_accuracy(front, 2.0) == pytest.approx(0.85)
    assert B.mix_accuracy(front, 3.5) == pytest.approx(0.905)
    assert B.mix_accuracy(front, 9.0) == pytest.approx(0.91)
    # brute force: no random split of two static paths beats the front at any cost
    for (c1, a1), (c2, a2) in itertools.combinations(pts, 2):
        for p in np.linspace(0, 1, 11):
            c, a = p * c1 + (1 - p) * c2, p * a1 + (1 - p) * a2
            assert a <= B.mix_accuracy(front, c) + 1e-12
