"""Controller training, quantization and the knob; the baselines (cascade, oracle) computed on
hand-checked examples; the whole `fit` -> `evaluate` flow on a tiny IR with fake device costs."""

from __future__ import annotations

import numpy as np
import pytest
from sel_fixtures import FAKE_COSTS, chain_ir, labelled_two_paths, two_paths

from bitpath.export.runner import Runner, choose
from bitpath.select import baselines
from bitpath.select import controller as C
from bitpath.select import dynamic as D


def test_pooled_matches_the_integer_kernel_semantics() -> None:
    from bitpath.ref import ops
    from bitpath.ref.formats import ActFormat

    x = np.random.default_rng(0).integers(0, 256, (3, 9, 8, 2)).astype(np.uint8)
    got = C.pooled(x, 4)
    for i in range(3):
        want = ops.avg_pool2d(x[i].astype(np.int64), ActFormat(8, False), 4, 4, 4, 4).reshape(-1)
        assert got[i].tolist() == want.tolist()


def test_quantized_controller_tracks_the_float_one() -> None:
    import torch

    ir = chain_ir()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (400, 8, 8, 1)).astype(np.uint8)
    feats = C.pooled(x, 2)
    # a learnable target: path 1 is "right" on bright images
    correct = np.stack([np.ones(400, bool), feats[:, 0] > np.median(feats[:, 0])], 1)
    cfg = C.ControllerConfig(pool=2, hidden=8, epochs=150, lr=1e-2)
    net = C.train_float(feats, correct, cfg)
    header, arrays, scale = C.quantize(ir, net, feats, cfg)
    # attach to a 1-path IR needs 1 score: use a 2-path IR
    ir2 = two_paths(ir)
    full = C.attach(ir2, header, arrays, penalty=[0, 0], order=[0, 1], info={})
    s_int = C.integer_scores(full, x)
    with torch.no_grad():
        s_float = net(torch.from_numpy(feats.astype(np.float32) / 255)).numpy()
    err = np.abs(s_int * scale - s_float)
    assert err.max() < 0.05 * (np.abs(s_float).max() + 1), err.max()
    # it learnt something: the score of path 1 separates the two halves
    assert (s_int[correct[:, 1], 1].mean() > s_int[~correct[:, 1], 1].mean())
    assert C.parameter_bytes(full) == sum(a.nbytes for k, a in full.arrays.items() if k.startswith("ctrl/")) + 2 * 5


def test_penalty_and_order() -> None:
    pen = C.penalties(2.0, [100.0, 50.0, 75.0], ref=0, score_scale=0.01)
    assert pen.tolist() == [100, 0, 50]  # 2 * (c - 50)/100 / 0.01
    assert C.cost_order([100.0, 50.0, 75.0, 50.0]) == [1, 3, 2, 0]


def _pts():
    mk = C.Operating
    return [mk(0.0, [0, 0], 0.90, 100.0, [1, 0]), mk(1.0, [0, 1], 0.895, 90.0, [0.5, 0.5]),
            mk(2.0, [0, 2], 0.85, 80.0, [0, 1])]


def test_pick_operating_respects_the_knob() -> None:
    op, why = C.pick_operating(_pts(), ref_accuracy=0.90, ref_cost=100.0, max_loss_pp=0.5)
    assert op.lam == 1.0 and "within 0.5 pp" in why
    op, _ = C.pick_operating(_pts(), ref_accuracy=0.90, ref_cost=100.0, max_loss_pp=0.1)
    assert op.lam == 0.0
    op, why = C.pick_operating(_pts(), ref_accuracy=0.99, ref_cost=100.0, max_loss_pp=0.1)
    assert op.lam == 0.0 and "no setting" in why
    op, _ = C.pick_operating(_pts(), ref_accuracy=0.90, ref_cost=100.0, target_cost=0.85)
    assert op.lam == 2.0
    op, _ = C.pick_operating(_pts(), ref_accuracy=0.90, ref_cost=100.0, target_cost=0.95)
    assert op.lam == 1.0
    with pytest.raises(C.ControllerError, match="exactly one"):
        C.pick_operating(_pts(), ref_accuracy=0.9, ref_cost=100.0, max_loss_pp=0.3, target_cost=0.9)


def test_sweep_accounts_controller_cost_and_choices() -> None:
    scores = np.array([[10, 0], [0, 10], [5, 5]])
    correct = np.array([[True, False], [False, True], [False, True]])
    pts = C.sweep(scores, correct, [100.0, 50.0], 7.0, ref=0, score_scale=1.0, lams=[0.0, 100.0])
    # lam 0: picks 0, 1, and for the tie the cheaper path 1
    assert pts[0].share == pytest.approx([1 / 3, 2 / 3]) and pts[0].accuracy == 1.0
    assert pts[0].cost == pytest.approx(7 + (100 + 50 + 50) / 3)
    # lam 100 -> penalty 50 on path 0: always path 1
    assert pts[1].penalty == [50, 0] and pts[1].share == [0.0, 1.0] and pts[1].cost == 57.0


def test_refine_reaches_settings_the_lambda_family_cannot() -> None:
    """Uninformative scores: every lambda >= 0 sends all images to the cheap path (ties go to it), which
    is right only half the time; refining the penalties finds 'always the accurate path'."""
    n = 200
    scores = np.zeros((n, 2), np.int64)
    correct = np.stack([np.ones(n, bool), np.arange(n) % 2 == 0], 1)
    costs = [100.0, 50.0]
    pts = C.sweep(scores, correct, costs, 1.0, ref=0, score_scale=1.0)
    assert all(p.share == [0.0, 1.0] for p in pts)
    start, _ = C.pick_operating(pts, ref_accuracy=1.0, ref_cost=100.0, max_loss_pp=0.3)
    best = C.refine(start, scores, correct, costs, 1.0, ref_accuracy=1.0, ref_cost=100.0, max_loss_pp=0.3)
    assert best.accuracy == 1.0 and best.share == [1.0, 0.0] and best.cost == 101.0
    assert choose(scores, best.penalty, C.cost_order(costs)).tolist() == [0] * n
    # with a cost budget instead, refining never breaks the budget
    cheap = C.refine(start, scores, correct, costs, 1.0, ref_accuracy=1.0, ref_cost=100.0, target_cost=0.6)
    assert cheap.cost <= 60.0


def test_cascade_counts_both_runs() -> None:
    # 4 images, 2 paths, 3 classes; path 0 margins 1, 5, 10, 20
    logits = np.zeros((4, 2, 3), np.int64)
    logits[:, 0] = [[1, 0, 0], [5, 0, 0], [0, 10, 0], [0, 0, 20]]
    logits[:, 1] = [[0, 9, 0], [9, 0, 0], [0, 9, 0], [9, 0, 0]]
    y = np.array([1, 0, 1, 2])
    out = baselines.cascade(logits, y, [10.0, 30.0], 0, 1, quantiles=[0.0, 0.5, 1.0])
    by_t = {e["threshold"]: e for e in out}
    assert by_t[1]["escalated"] == 0 and by_t[1]["accuracy"] == 0.75 and by_t[1]["cost"] == 10
    # threshold 10 escalates margins 1 and 5: image 0 becomes right, image 1 stays right
    assert by_t[10]["escalated"] == 0.5 and by_t[10]["accuracy"] == 1.0 and by_t[10]["cost"] == 25
    # q = 1 escalates everything: path 1 alone gets images 0, 1, 2 right
    assert by_t[21]["escalated"] == 1.0 and by_t[21]["accuracy"] == 0.75 and by_t[21]["cost"] == 40


def test_oracle_takes_the_cheapest_right_path() -> None:
    correct = np.array([[True, True], [True, False], [False, False], [False, True]])
    o = baselines.oracle(correct, [10.0, 4.0])
    assert o["accuracy"] == 0.75
    assert o["cost"] == pytest.approx((4 + 10 + 4 + 4) / 4)
    assert o["share"] == [0.25, 0.75]


def test_pareto_front() -> None:
    assert baselines.pareto([(1, 0.5), (2, 0.4), (2, 0.7), (3, 0.7), (0.5, 0.2)]) == [(0.5, 0.2), (1, 0.5), (2, 0.7)]


def test_fit_and_evaluate_on_a_tiny_ir(tmp_path, monkeypatch) -> None:
    """The whole flow with the device measurement replaced by fixed costs (the board test covers it)."""
    ir, x, y = labelled_two_paths(300)
    r = Runner(ir)
    monkeypatch.setattr(D, "measure_costs", lambda ir_, work, images, log=None: dict(FAKE_COSTS))
    cfg = C.ControllerConfig(pool=2, hidden=8, epochs=20)
    new, info = D.fit(ir, x, y, val=100, cfg=cfg, reference=0, max_loss_pp=50.0, target_cost=None,
                      work=tmp_path, log=lambda s: None)
    c = new.header["controller"]
    assert c["order"] == [1, 0] and c["costs"]["paths"] == [1000.0, 600.0]
    # with a 50 pp allowance the cheapest setting sends (nearly) everything to the cheap path
    assert info["train"]["held_out_cost"] <= 620.0 + 1e-9
    rep = D.evaluate(new, x[:50], y[:50], tmp_path, log=lambda s: None)
    picks = choose(C.integer_scores(new, x[:50]), c["penalty"], c["order"])
    assert rep["dynamic"]["host_c_path_mismatches"] == 0
    assert rep["dynamic"]["cost"] == pytest.approx(20.0 + np.asarray([1000.0, 600.0])[picks].mean())
    truth = np.stack([[r.run(xi, p).argmax() == yi for p in (0, 1)] for xi, yi in zip(x[:50], y[:50], strict=True)])
    assert rep["static"][0]["accuracy"] == truth[:, 0].mean() and rep["static"][1]["accuracy"] == truth[:, 1].mean()
    assert rep["dynamic"]["accuracy"] == truth[np.arange(50), picks].mean()
    assert rep["oracle"]["accuracy"] == truth.any(1).mean()
    # the random split of the two static paths at the dynamic cost: the straight line between them
    (c0, a0), (c1, a1) = sorted((st["cost"], st["accuracy"]) for st in rep["static"])
    mix = rep["static_mix_at_equal_cost"]
    if a1 > a0:
        frac = min(max((rep["dynamic"]["cost"] - c0) / (c1 - c0), 0.0), 1.0)
        assert mix == pytest.approx(a0 + frac * (a1 - a0))
    else:
        assert mix == pytest.approx(a0)
    ia = rep["input_awareness"]
    assert ia is not None and ia["gain_over_mix"] == pytest.approx(
        ia["accuracy"] - baselines.mix_accuracy(rep["static_mix_front"], ia["cost"]))
    # what-if: the same answers re-costed; path 1 free -> the dynamic optimum can only get cheaper
    hyp = D.evaluate(new, x[:50], y[:50], tmp_path, what_if={"alt": 0.0}, log=lambda s: None)["what_if"]
    assert list(hyp["relative_costs"].values()) == [1.0, 0.0]
    if hyp["best_within_loss"] is not None:
        assert hyp["best_within_loss"]["cost"] <= rep["dynamic"]["cost"]
    with pytest.raises(C.ControllerError, match="unknown paths"):
        D.evaluate(new, x[:5], y[:5], tmp_path, what_if={"nope": 0.5}, log=lambda s: None)
    files = D.write_report(rep, tmp_path / "rep")
    assert files["png"].stat().st_size > 1000 and "oracle" in files["md"].read_text()
