"""The escalating controller's fitting (per-class thresholds against brute force, the knob sweep, the
cost of every run) and the whole `fit` -> `evaluate` flow on a tiny IR; the decision's device cost
measured on the emulated board."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sel_fixtures import FAKE_COSTS, chain_ir, labelled_two_paths, two_paths

from bitpath.export.runner import Runner
from bitpath.ir import INT32_MAX
from bitpath.select import baselines
from bitpath.select import controller as C
from bitpath.select import dynamic as D
from bitpath.select import escalate as E


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(-3, 3)), min_size=0, max_size=30))
def test_class_threshold_keeps_the_best_set(pairs) -> None:
    """Against every threshold that could matter: the kept set's gain is the best any threshold gets,
    and the threshold sits strictly above every escalated margin and at or below every kept one."""
    m = np.array([p[0] for p in pairs], dtype=np.int64)
    g = np.array([p[1] for p in pairs], dtype=np.float64)
    t = E.class_threshold(m, g)
    best = max(g[m >= u].sum() for u in [*range(0, 15), INT32_MAX])
    assert g[m >= t].sum() == best
    if len(m):
        assert 0 <= t <= INT32_MAX
        if (m < t).any() and (m >= t).any():
            assert m[m < t].max() < t <= m[m >= t].min()


def test_class_threshold_goes_half_way_and_to_the_safe_side() -> None:
    # keep the two confident images (gain +1), escalate the two unsure ones (gain -1): half way between 10 and 20
    assert E.class_threshold(np.array([30, 20, 10, 0]), np.array([1.0, 1.0, -1.0, -1.0])) == 15
    assert E.class_threshold(np.array([5, 9]), np.array([1.0, 1.0])) == 0  # keep everything
    assert E.class_threshold(np.array([5, 9]), np.array([-1.0, -1.0])) == INT32_MAX  # escalate everything
    assert E.class_threshold(np.array([], dtype=np.int64), np.array([])) == INT32_MAX  # unseen class: escalate
    assert E.class_threshold(np.array([4, 4]), np.array([1.0, -1.0])) == INT32_MAX  # a tie: the safe side


def _logits(seed: int = 0, n: int = 400, k: int = 3, c: int = 4):
    """Random logits where path 0 is cheap and noisy, the others dearer and cleaner."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = np.zeros((n, k, c), dtype=np.int64)
    for p in range(k):
        z[:, p] = rng.normal(0, 1000 * (3 - p), (n, c)).round()
        z[np.arange(n), p, y] += 1500
    return z, y


def test_image_costs_count_every_run_and_decision() -> None:
    stages = [{"path": 2, "threshold": [0]}, {"path": 1, "threshold": [0]}]
    got = E.image_costs(np.array([0, 1, 2]), stages, 0, [100.0, 50.0, 10.0], 3.0)
    assert got.tolist() == [10 + 3, 10 + 3 + 50 + 3, 10 + 3 + 50 + 3 + 100]


def test_fit_per_class_beats_shared_on_its_images_and_scores_like_decide() -> None:
    z, y = _logits()
    costs = [600.0, 800.0, 1000.0]
    for mu in (0.0, 0.1, 1.0):
        shared = E.fit_two_stage(z, y, 0, 2, mu, costs, 1000.0, per_class=False)
        own = E.fit_two_stage(z, y, 0, 2, mu, costs, 1000.0, per_class=True)
        assert len(set(shared.stages[0]["threshold"])) == 1
        a, b = (E.score(s, z, y, costs, 5.0) for s in (shared, own))
        assert b.accuracy - mu * (b.cost - 5.0) / 1000 >= a.accuracy - mu * (a.cost - 5.0) / 1000 - 1e-9
        chosen, exit_ = E.decide(z, own.stages, own.final)
        pred = z[np.arange(len(y)), chosen].argmax(1)
        assert b.accuracy == (pred == y).mean()
        assert b.cost == pytest.approx(np.where(exit_ == 0, 605.0, 1605.0).mean())
        assert b.escalated == (exit_ > 0).mean()


def test_sweep_is_a_front_and_the_knob_respects_it() -> None:
    z, y = _logits(1)
    costs = [600.0, 800.0, 1000.0]
    pts = E.sweep(z, y, costs, 5.0, ref=2)
    assert all(p.stages[0]["path"] != p.final and costs[p.final] > costs[p.stages[0]["path"]] for p in pts)
    assert [p.cost for p in pts] == sorted(p.cost for p in pts)
    assert all(b.accuracy > a.accuracy for a, b in zip(pts, pts[1:], strict=False))
    ref_acc = float((z[:, 2].argmax(1) == y).mean())
    op, _ = C.pick_operating(pts, ref_accuracy=ref_acc, ref_cost=1000.0, max_loss_pp=1.0)
    assert op.accuracy >= ref_acc - 0.01 - 1e-12
    assert all(p.cost >= op.cost for p in pts if p.accuracy >= ref_acc - 0.01 - 1e-12)
    op, _ = C.pick_operating(pts, ref_accuracy=ref_acc, ref_cost=1000.0, target_cost=0.7)
    assert op.cost <= 700.0
    # every shared-threshold cascade through the same pair is a rule each fit could have chosen, so for a
    # fine knob grid the envelope of the sweep (mixing neighbouring settings) is at least as good at its cost
    fine = E.sweep(z, y, costs, 5.0, ref=2, mus=[0.0, *np.geomspace(1e-5, 100.0, 2001)])
    env = baselines.mix_front([(p.cost, p.accuracy) for p in fine])
    for q in baselines.cascade(z, y, costs, 0, 2):
        a = baselines.mix_accuracy(env, q["cost"] + 5.0)
        assert a is not None and a >= q["accuracy"] - 1e-3, (q, a)
    with pytest.raises(E.EscalateError, match="cheaper path"):
        E.sweep(z, y, [1.0, 1.0, 1.0], 0.0, ref=0)


def test_chains_are_every_strictly_dearer_sequence() -> None:
    costs = [600.0, 800.0, 1000.0, 800.0]
    assert E.chains(costs) == [(0, 1), (0, 2), (0, 3), (1, 2), (3, 2)]
    three = E.chains(costs, 3)
    assert three[:5] == E.chains(costs) and three[5:] == [(0, 1, 2), (0, 3, 2)]


def _objective(s: E.Setting, z, y, costs, dec: float, mu: float) -> float:
    r = E.score(s, z, y, costs, dec)
    return r.accuracy - mu * r.cost / 1000.0


@pytest.mark.parametrize("per_class", [False, True])
def test_three_stage_fit_cannot_be_improved_one_threshold_at_a_time(per_class: bool) -> None:
    """After the coordinate ascent has settled, no single threshold of either stage, changed to any
    value that could matter (every margin, 0, never), raises accuracy - mu * cost: brute force."""
    z, y = _logits(2, n=300, k=3)
    costs, dec = [300.0, 550.0, 1000.0], 5.0
    for mu in (0.05, 0.5):
        fit = E.fit_chain(z, y, [0, 1, 2], mu, costs, 1000.0, dec, per_class=per_class, rounds=8)
        assert [st["path"] for st in fit.stages] == [0, 1] and fit.final == 2
        base = _objective(fit, z, y, costs, dec, mu)
        for j in range(2):
            _, m = E.top2_margin(z[:, fit.stages[j]["path"]])
            for cl in range(z.shape[2]) if per_class else [None]:
                for u in [0, INT32_MAX, *np.unique(m).tolist(), *(np.unique(m) + 1).tolist()]:
                    stages = [dict(st, threshold=list(st["threshold"])) for st in fit.stages]
                    if cl is None:
                        stages[j]["threshold"] = [int(u)] * z.shape[2]
                    else:
                        stages[j]["threshold"][cl] = int(u)
                    alt = E.Setting(mu, stages, 2)
                    assert _objective(alt, z, y, costs, dec, mu) <= base + 1e-12, (mu, j, cl, u)


def test_longer_chains_never_lose_on_the_fitting_images() -> None:
    # Up to three paths per chain includes every two-path chain, so each knob value's best is at least as good.
    z, y = _logits(3, n=300, k=3)
    costs, dec = [300.0, 550.0, 1000.0], 5.0
    for mu in (0.0, 0.02, 0.2, 2.0):
        two = E.sweep(z, y, costs, dec, ref=2, mus=[mu])[0]
        three = E.sweep(z, y, costs, dec, ref=2, mus=[mu], length=3)[0]
        assert _objective(three, z, y, costs, dec, mu) >= _objective(two, z, y, costs, dec, mu) - 1e-12
    assert any(len(p.stages) == 2 for p in E.sweep(z, y, costs, dec, ref=2, length=3))


def test_fit_and_evaluate_on_a_tiny_ir(tmp_path, monkeypatch) -> None:
    """`fit(kind="escalate")` -> IR -> `evaluate`, with the device measurement replaced by fixed costs."""
    ir, x, y = labelled_two_paths(240)
    r = Runner(ir)
    monkeypatch.setattr(D, "measure_costs", lambda ir_, work, images, log=None: dict(FAKE_COSTS))
    new, info = D.fit(ir, x, y, val=1, cfg=C.ControllerConfig(), reference=0, max_loss_pp=5.0, target_cost=None,
                      work=tmp_path, log=lambda s: None, kind="escalate", per_class=True)
    c = new.header["controller"]
    assert c["kind"] == "escalate" and c["stages"][0]["path"] == 1 and c["final"] == 0
    assert not any(k.startswith("ctrl/") for k in new.arrays)
    assert info["train"]["calibration_accuracy"] >= info["train"]["calibration_reference_accuracy"] - 0.05 - 1e-12
    assert C.parameter_bytes(new) == 4 * 3 + 1 + 1
    rep = D.evaluate(new, x[:60], y[:60], tmp_path, log=lambda s: None)
    d = rep["dynamic"]
    assert d["kind"] == "escalate" and d["host_c_path_mismatches"] == 0
    auto = [r.__class__(new).run_escalate(xi) for xi in x[:60]]
    picks = np.array([a[0] for a in auto])
    exits = np.array([a[2] for a in auto])
    assert d["accuracy"] == np.mean([a[1].argmax() == yi for a, yi in zip(auto, y[:60], strict=True)])
    assert d["cost"] == pytest.approx(np.where(exits == 0, 620.0, 1620.0).mean())
    assert d["escalated"] == (exits > 0).mean() and d["share"][0] == (picks == 0).mean()
    assert d["controller_cost"] == 20.0
    assert len(rep["sweep"]) == len(c["sweep"]) >= 1
    hyp = D.evaluate(new, x[:60], y[:60], tmp_path, what_if={"alt": 0.1}, log=lambda s: None)["what_if"]
    assert hyp["relative_costs"] == {"w8a8": 1.0, "alt": 0.1}
    if hyp["best_within_loss"] is not None:
        assert hyp["best_within_loss"]["cost"] <= 20.0 + 100.0 + 1000.0
    # the baseline on equal terms: the plain cascade (cheapest -> reference, one threshold), fitted by the
    # same knob on the same calibration images, scored on the report's images like the controller
    cc = c["calibrated_cascade"]
    assert cc["final"] == 0 and [st["path"] for st in cc["stages"]] == [1]
    assert len(set(cc["stages"][0]["threshold"])) == 1
    assert cc["calibration_accuracy"] >= info["train"]["calibration_reference_accuracy"] - 0.05 - 1e-12
    thr = cc["stages"][0]["threshold"][0]
    cheap_logits = np.array([r.run(xi, path=1) for xi in x[:60]], dtype=np.int64)
    top2 = np.sort(cheap_logits, axis=1)
    kept = (top2[:, -1] - top2[:, -2]) >= thr
    assert rep["calibrated_cascade"]["escalated"] == pytest.approx(1.0 - kept.mean())
    assert rep["calibrated_cascade"]["cost"] == pytest.approx(np.where(kept, 620.0, 1620.0).mean())
    # its whole knob sweep travels in the IR (the chosen rule is one of its settings) and is scored here too
    assert {k: cc[k] for k in ("lam", "stages", "final")} in cc["sweep"]
    assert len(rep["calibrated_cascade"]["sweep"]) == len(cc["sweep"])
    vs = rep["calibrated_cascade"]["versus"]
    assert vs is not None and vs["ahead"] + vs["tied"] + vs["behind"] == vs["compared"] >= 1
    files = D.write_report(rep, tmp_path / "rep")
    md = files["md"].read_text()
    assert "escalating controller alt -> w8a8" in md and "cascade fitted like the controller (alt -> w8a8" in md


def test_calibrated_cascade_is_the_controller_when_the_controller_is_a_cascade(tmp_path, monkeypatch) -> None:
    # two paths and one threshold for all classes: the controller's search space is the cascade's, so
    # the same knob on the same images must pick the same rule
    ir, x, y = labelled_two_paths(240)
    monkeypatch.setattr(D, "measure_costs", lambda ir_, work, images, log=None: dict(FAKE_COSTS))
    new, _ = D.fit(ir, x, y, val=1, cfg=C.ControllerConfig(), reference=0, max_loss_pp=1.0, target_cost=None,
                   work=tmp_path, log=lambda s: None, kind="escalate", per_class=False)
    c = new.header["controller"]
    assert c["calibrated_cascade"]["stages"] == c["stages"] and c["calibrated_cascade"]["final"] == c["final"]
    # the same search space: the two knob sweeps are the same curve, so every setting ties
    vs = D.evaluate(new, x[:80], y[:80], tmp_path, log=lambda s: None)["calibrated_cascade"]["versus"]
    assert vs["tied"] == vs["compared"] >= 1 and vs["at_chosen_pp"] == pytest.approx(0.0)


def test_versus_curve_at_equal_cost() -> None:
    ours = [(1.0, 0.50), (2.0, 0.70), (3.0, 0.80)]
    theirs = [(1.5, 0.60), (2.0, 0.72), (3.5, 0.95)]
    vs = D.versus_curve(ours, theirs, (2.5, 0.75))
    # cost 1.0: nothing of theirs that cheap (left out); 2.0: 0.70 - 0.72; 3.0: 0.80 - 0.72
    assert vs["compared"] == 2 and (vs["ahead"], vs["tied"], vs["behind"]) == (1, 0, 1)
    assert vs["min_pp"] == pytest.approx(-2.0) and vs["max_pp"] == pytest.approx(8.0)
    assert vs["mean_pp"] == pytest.approx(3.0) and vs["at_chosen_pp"] == pytest.approx(3.0)
    assert D.versus_curve([(1.0, 0.5)], theirs, (1.0, 0.5)) is None


@pytest.mark.emulator
def test_decision_cost_measured_on_the_board(tmp_path) -> None:
    """The probe escalates through every path; the decision's cost is the `auto` total less the forced runs."""
    ir = two_paths(chain_ir())
    x = np.random.default_rng(9).integers(0, 256, (2, 8, 8, 1)).astype(np.uint8)
    costs = D.measure_costs(E.probe(ir), tmp_path, x)
    assert costs["key"]["controller_shape"] == "escalate"
    assert all(p > 1000 for p in costs["paths"])
    # a top-2 scan over 3 logits, a compare and the second run's bookkeeping: tens to a few hundred instructions
    assert 10 < costs["controller"] < 500, costs["controller"]
