"""The escalating controller (kind "escalate") in the IR, the numpy reference and the generated C:
round trip, refusals by field name, the top-1/top-2 margin in numpy and C against a brute-force loop
(ties and int32 edges), the batched decision equal to the lazy per-image one, and the generated
model's `auto` runs equal to the host reference (path, logits and how the cost is split) on both
kernel variants, with every stage both accepting and escalating."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_ir import median_thresholds, tiny_ir, varied_images, with_controller, with_escalate

from bitpath.codegen import render
from bitpath.codegen.hostbuild import build_host_model
from bitpath.export.runner import Runner, escalate, top2_margin
from bitpath.ir import IR, IRError, controller_ir, controller_kind, load, validate

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT32 = st.integers(INT32_MIN, INT32_MAX)
# fewest bits first, then the middle path, then w8a8 (on this tiny net the 2-bit path is not the fewest
# instructions; the tests check the mechanism, not the economics)
STAGE_PATHS, FINAL = (1, 2), 0


def escalate_ir() -> IR:
    """The three-path tiny IR with two stages whose thresholds split the images at every stage."""
    base = tiny_ir(third_path=True)
    thr = median_thresholds(base, varied_images(100, 120), STAGE_PATHS)
    return with_escalate(base, list(zip(STAGE_PATHS, thr, strict=True)), FINAL)


@pytest.fixture(scope="module")
def esc_ir() -> IR:
    return escalate_ir()


@pytest.fixture(scope="module")
def host_models(esc_ir, tmp_path_factory):
    gen = render(esc_ir, tmp_path_factory.mktemp("esc-model"))
    return {v: build_host_model(gen.model_c, v) for v in ("ref", "dsp")}


def brute_top2(row: list[int]) -> tuple[int, int]:
    top = 0
    for i, v in enumerate(row):
        if v > row[top]:
            top = i
    second = max(v for i, v in enumerate(row) if i != top)
    return top, row[top] - second


# ---------------------------------------------------------------------- IR
def test_round_trip(esc_ir, tmp_path) -> None:
    h = esc_ir.save(tmp_path / "m.bpir.npz")
    back = load(tmp_path / "m.bpir.npz")
    assert back.content_hash() == h
    assert back.header == esc_ir.header
    assert not any(k.startswith("ctrl/") for k in back.arrays)
    assert controller_kind(back) == "escalate" and controller_ir(back) is None
    xs = varied_images(3, 10)
    assert [Runner(back).choose(x) for x in xs] == [Runner(esc_ir).choose(x) for x in xs]


def test_controller_kind() -> None:
    assert controller_kind(tiny_ir()) is None
    net = with_controller(tiny_ir())
    assert controller_kind(net) == "net"
    net.header["controller"]["kind"] = "net"  # explicit "net" is the same controller as no kind at all
    validate(net)
    assert controller_kind(net) == "net" and controller_ir(net) is not None


def _stages(h):
    return h["controller"]["stages"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda h, a: h["controller"].update(kind="tree"), "controller: field 'kind' must be one of ('net', 'escalate')"),
    (lambda h, a: h["controller"].update(stages=[]), "controller: field 'stages' must be a non-empty list"),
    (lambda h, a: h["controller"].update(stages={"path": 1}), "controller: field 'stages' must be a non-empty list"),
    (lambda h, a: h["controller"].pop("stages"), "controller: field 'stages' missing"),
    (lambda h, a: _stages(h).__setitem__(0, 5), "controller: field 'stages[0]' must be an object"),
    (lambda h, a: _stages(h)[0].pop("threshold"), "controller: stages[0]: field 'threshold' missing"),
    (lambda h, a: _stages(h)[0].update(threshold=[1, 2]),
     "controller: field 'stages[0].threshold' must have 3 entries"),
    (lambda h, a: _stages(h)[1].update(threshold=[0, -1, 0]),
     "controller: field 'stages[1].threshold' must hold values in [0, 2147483647]"),
    (lambda h, a: _stages(h)[1].update(threshold=[0, 2**31, 0]),
     "controller: field 'stages[1].threshold' must hold values in [0, 2147483647]"),
    (lambda h, a: _stages(h)[0].update(threshold=[0, 1.5, 0]),
     "controller: field 'stages[0].threshold' must be a list of integers"),
    (lambda h, a: _stages(h)[0].update(path=3), "controller: field 'stages[0].path' must be a path index in 0..2"),
    (lambda h, a: _stages(h)[0].update(path=True), "controller: field 'stages[0].path' must be a path index"),
    (lambda h, a: _stages(h)[0].update(path="w8a8"), "controller: field 'stages[0].path' must be a path index"),
    (lambda h, a: _stages(h)[1].update(path=1), "controller: field 'stages[1].path': path 1 is already used"),
    (lambda h, a: h["controller"].update(final=2), "controller: field 'final': path 2 is already used"),
    (lambda h, a: h["controller"].update(final=-1), "controller: field 'final' must be a path index in 0..2"),
    (lambda h, a: h["controller"].pop("final"), "controller: field 'final' missing"),
    (lambda h, a: a.__setitem__("ctrl/w:fc1", np.zeros((6, 4), np.uint8)),
     "controller: field 'kind' is 'escalate', which has no network, but the IR holds controller-net arrays"),
])
def test_bad_escalate_refused_by_field(esc_ir, mutate, message) -> None:
    header, arrays = copy.deepcopy(esc_ir.header), dict(esc_ir.arrays)
    mutate(header, arrays)
    with pytest.raises(IRError) as e:
        validate(IR(header, arrays))
    assert message in str(e.value)


def test_free_form_keys_are_ignored(esc_ir) -> None:
    header = copy.deepcopy(esc_ir.header)
    header["controller"].update(knob={"lambda": 0.5}, costs=[3.0, 1.0, 2.0], rule="anything at all\\")
    validate(IR(header, dict(esc_ir.arrays)))


def test_controller_scores_is_net_only(esc_ir) -> None:
    with pytest.raises(ValueError, match="escalates on logit margins and has no scores"):
        Runner(esc_ir).controller_scores(np.zeros((8, 8, 1), np.uint8))
    r = Runner(esc_ir)
    assert r.has_controller and r.controller is None and r.controller_kind == "escalate"
    assert not Runner(tiny_ir()).has_controller


# ---------------------------------------------------------------------- top-1/top-2 margin
def test_top2_margin_ties_and_edges() -> None:
    rows = np.array([[5, 5, 1], [0, 9, 9], [INT32_MIN, INT32_MAX, 0], [INT32_MAX, INT32_MIN, INT32_MIN],
                     [INT32_MIN, INT32_MIN, INT32_MIN], [-3, -7, -3]])
    top, margin = top2_margin(rows)
    assert top.tolist() == [0, 1, 1, 0, 0, 0]
    assert margin.tolist() == [0, 0, 2**31 - 1, 2**32 - 1, 0, 0]
    assert margin.dtype == np.int64
    with pytest.raises(ValueError, match="at least 2 classes"):
        top2_margin(np.array([[7]]))


@given(rows=st.lists(st.lists(INT32, min_size=2, max_size=6), min_size=1, max_size=8), ties=st.booleans())
def test_top2_margin_equals_brute_force(rows, ties) -> None:
    c = len(rows[0])
    rows = [(r * c)[:c] for r in rows]
    if ties:  # copy each row's maximum onto a later index
        rows = [r[:-1] + [max(r)] for r in rows]
    top, margin = top2_margin(np.array(rows, dtype=np.int64))
    assert list(zip(top.tolist(), margin.tolist(), strict=True)) == [brute_top2(r) for r in rows]


@given(row=st.lists(INT32, min_size=2, max_size=12), ties=st.booleans())
def test_top2_in_c_equals_numpy(host_models, row, ties) -> None:
    if ties:
        row = [max(row)] * 2 + row[2:]
    m = host_models["ref"]
    top, margin = top2_margin(np.array([row]))
    assert m.top2(row) == (int(top[0]), int(margin[0])) == brute_top2(row)


def test_top2_in_c_refuses_bad_args(host_models) -> None:
    m = host_models["ref"]
    assert m.top2([5])[0] == -1
    margin = m.ffi.new("int64_t *", 77)
    assert m.lib.bp_runtime_top2(m.ffi.NULL, 3, margin) == -1 and margin[0] == 77
    assert m.lib.bp_runtime_top2(m.ffi.new("int32_t[]", [1, 2]), 2, m.ffi.NULL) == -1


# ---------------------------------------------------------------------- the decision
def test_batched_escalate_equals_lazy_runner(esc_ir) -> None:
    r = Runner(esc_ir)
    c = esc_ir.header["controller"]
    xs = varied_images(7, 80)
    logits = np.stack([[r.run(x, p) for p in range(3)] for x in xs])
    chosen, exit_stage = escalate(logits, c["stages"], c["final"])
    for i, x in enumerate(xs):
        p, z, s = r.run_escalate(x)
        assert (p, s) == (chosen[i], exit_stage[i]), f"input {i}"
        assert z.tolist() == logits[i, p].tolist()
        assert r.run_auto(x)[0] == r.choose(x) == p
    assert set(exit_stage.tolist()) == {0, 1, 2}, "every stage should accept some images and escalate others"
    assert set(chosen.tolist()) == {*STAGE_PATHS, FINAL}


def test_escalate_thresholds_at_the_edges() -> None:
    z = np.array([[[0, 0, 0], [3, 1, 0]], [[0, 0, 0], [2, 2, 0]]])  # (2 images, 2 paths, 3 classes)
    stages = [{"path": 1, "threshold": [2, 0, 0]}]
    chosen, exit_stage = escalate(z, stages, 0)
    assert chosen.tolist() == [1, 0] and exit_stage.tolist() == [0, 1]  # margin 2 >= 2 accepts; tie: 0 < 2
    zero = [{"path": 1, "threshold": [0, 0, 0]}]
    assert escalate(z, zero, 0)[0].tolist() == [1, 1]  # threshold 0 accepts even a tie
    never = [{"path": 1, "threshold": [INT32_MAX] * 3}]
    assert escalate(z, never, 0)[0].tolist() == [0, 0]


# ---------------------------------------------------------------------- generated C
@pytest.mark.parametrize("variant", ["ref", "dsp"])
def test_generated_auto_equals_host_reference(esc_ir, host_models, variant) -> None:
    m, runner = host_models[variant], Runner(esc_ir)
    assert m.has_controller
    chosen = set()
    xs = varied_images(11, 80)
    for i, x in enumerate(xs):
        path, logits = m.run_auto(x)
        want_path, want = runner.run_auto(x)
        assert path == want_path, f"input {i}"
        assert logits.tolist() == want.tolist(), f"input {i}"
        chosen.add(path)
    assert chosen == {*STAGE_PATHS, FINAL}, "every stage should accept some inputs and escalate others"
    for p in range(3):
        assert m.run(xs[0], p).tolist() == runner.run(xs[0], p).tolist()


def test_generated_cost_split(esc_ir, host_models) -> None:
    """Under a clock that ticks once per read, each layer of a run costs 1 and the whole auto run spans
    2 reads per layer per path run plus one; everything but the returned run's layers is controller."""
    m, runner = host_models["ref"], Runner(esc_ir)
    layers = m.num_layers
    seen = set()
    for i, x in enumerate(varied_images(12, 40)):
        path, logits, ctrl, per_layer = m.run_timed(x, -1)
        want_path, want, exit_stage = runner.run_escalate(x)
        assert (path, logits.tolist()) == (want_path, want.tolist()), f"input {i}"
        runs = exit_stage + 1  # stages 0..exit_stage, the last of them being `final` when it ran
        assert per_layer == [1] * layers
        assert ctrl == (2 * runs - 1) * layers + 1, f"input {i}: {runs} runs"
        seen.add(exit_stage)
    assert seen == {0, 1, 2}
    for p in range(3):
        path, logits, ctrl, per_layer = m.run_timed(varied_images(13, 1)[0], p)
        assert path == p and ctrl == 0 and per_layer == [1] * layers


def test_generated_refuses_bad_paths(host_models) -> None:
    m = host_models["ref"]
    x = np.zeros((8, 8, 1), np.uint8)
    for p in (-2, 3):
        with pytest.raises(RuntimeError, match="status"):
            m.run(x, p)


def test_explicit_net_kind_generates_the_same_c(tmp_path) -> None:
    """Writing "kind": "net" changes the IR hash, nothing else in the generated C."""
    plain = with_controller(tiny_ir())
    explicit = with_controller(tiny_ir())
    explicit.header["controller"]["kind"] = "net"
    a = render(plain, tmp_path / "a").model_c.read_text().replace(plain.content_hash(), "H")
    b = render(explicit, tmp_path / "b").model_c.read_text().replace(explicit.content_hash(), "H")
    assert a.replace(plain.content_hash()[:16], "H") == b.replace(explicit.content_hash()[:16], "H")


def test_generated_c_carries_the_stage_tables(esc_ir, tmp_path) -> None:
    text = render(esc_ir, tmp_path).model_c.read_text()
    assert "with an escalating controller" in text and esc_ir.header["controller"]["rule"] in text
    assert "bpm_ctrl" not in text, "no controller network for this kind"
    for s in esc_ir.header["controller"]["stages"]:
        assert "{" + ", ".join(str(t) for t in s["threshold"]) + "}" in text
    assert ".has_controller = 1," in text
