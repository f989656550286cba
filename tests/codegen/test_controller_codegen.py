"""The controller in the IR, the numpy reference and the generated C: round trip, refusals by field
name, the decision rule in C equal to numpy (ties included), and the generated model's `auto` runs
equal to the host reference on both kernel variants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_ir import tiny_ir, with_controller

from bitpath.codegen import render
from bitpath.codegen.hostbuild import build_host_model
from bitpath.export.runner import Runner, choose
from bitpath.ir import IRError, load, validate

INT32 = st.integers(-(2**31), 2**31 - 1)


@pytest.fixture(scope="module")
def host_models(tmp_path_factory):
    ir = with_controller(tiny_ir())
    gen = render(ir, tmp_path_factory.mktemp("ctrl-model"))
    return ir, {v: build_host_model(gen.model_c, v) for v in ("ref", "dsp")}


def test_round_trip(tmp_path) -> None:
    ir = with_controller(tiny_ir())
    h = ir.save(tmp_path / "m.bpir.npz")
    back = load(tmp_path / "m.bpir.npz")
    assert back.content_hash() == h
    assert back.header["controller"] == ir.header["controller"]
    assert set(back.arrays) == set(ir.arrays) and any(k.startswith("ctrl/") for k in back.arrays)
    x = np.random.default_rng(0).integers(0, 256, (8, 8, 1)).astype(np.uint8)
    assert Runner(back).controller_scores(x).tolist() == Runner(ir).controller_scores(x).tolist()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda h, a: h["controller"].update(penalty=[0]), "controller: field 'penalty' must have 2 entries"),
    (lambda h, a: h["controller"].update(penalty=[0, 2**31]), "controller: field 'penalty' must hold int32"),
    (lambda h, a: h["controller"].update(order=[0, 0]), "controller: field 'order' must be a permutation"),
    (lambda h, a: h["controller"].pop("order"), "controller: field 'order' missing"),
    (lambda h, a: a.pop("ctrl/w:fc1"), "controller: layer 'fc1': field 'weights' missing"),
    (lambda h, a: a.__setitem__("ctrl/shift:fc1:0", np.full(6, 70, np.int32)),
     "controller: path 'controller': layer 'fc1': field 'shift' must lie in [0, 62]"),
    (lambda h, a: h["controller"]["net"]["input"].update(shape=[4, 4, 1]), "controller: "),
    (lambda h, a: h["controller"]["net"]["paths"].append(h["controller"]["net"]["paths"][0]),
     "controller: header: field 'paths': duplicate path names"),
])
def test_bad_controller_refused_by_field(mutate, message) -> None:
    import copy

    ir = with_controller(tiny_ir())
    header, arrays = copy.deepcopy(ir.header), dict(ir.arrays)
    mutate(header, arrays)
    from bitpath.ir import IR

    with pytest.raises(IRError, match=None) as e:
        validate(IR(header, arrays))
    assert message in str(e.value)


def test_scores_count_must_match_paths() -> None:
    ir = tiny_ir()
    h = dict(ir.header)
    h["paths"] = h["paths"][:1]
    ir1 = with_controller(type(ir)(h, {k: v for k, v in ir.arrays.items() if not k.endswith(":1")}))
    with pytest.raises(IRError, match="scores 2 paths, the IR has 1"):
        validate(ir1)


def test_choose_ties_go_to_the_first_in_order() -> None:
    scores = np.array([[5, 5, 1], [0, 9, 9], [-(2**31), 2**31 - 1, 0]])
    assert choose(scores, [0, 0, 0], [2, 1, 0]).tolist() == [1, 2, 1]
    assert choose(scores, [0, 0, 0], [0, 1, 2]).tolist() == [0, 1, 1]
    # the subtraction is done in 64 bits: no wrap-around at the int32 edges
    assert choose(np.array([[2**31 - 1, -(2**31)]]), [-(2**31), 2**31 - 1], [1, 0]).tolist() == [0]


@given(scores=st.lists(INT32, min_size=4, max_size=4), penalty=st.lists(INT32, min_size=4, max_size=4),
       order=st.permutations([0, 1, 2, 3]), ties=st.booleans())
def test_choose_in_c_equals_numpy(host_models, scores, penalty, order, ties) -> None:
    _, models = host_models
    if ties:
        scores, penalty = [scores[0]] * 4, [penalty[0]] * 4
    m = models["ref"]
    got = m.lib.bp_runtime_choose(m.ffi.new("int32_t[]", scores), m.ffi.new("int32_t[]", penalty),
                                  m.ffi.new("int8_t[]", order), 4)
    assert got == int(choose(np.array([scores]), penalty, order)[0])


def test_choose_in_c_refuses_bad_order(host_models) -> None:
    m = host_models[1]["ref"]
    assert m.lib.bp_runtime_choose(m.ffi.new("int32_t[]", [1, 2]), m.ffi.new("int32_t[]", [0, 0]),
                                   m.ffi.new("int8_t[]", [0, 5]), 2) == -1


@pytest.mark.parametrize("variant", ["ref", "dsp"])
def test_generated_auto_equals_host_reference(host_models, variant) -> None:
    ir, models = host_models
    m, runner = models[variant], Runner(ir)
    assert m.has_controller
    rng = np.random.default_rng(5)
    chosen = set()
    for i in range(60):
        x = rng.integers(0, 256, (8, 8, 1)).astype(np.uint8) if i else np.zeros((8, 8, 1), np.uint8)
        path, logits = m.run_auto(x)
        want_path, want = runner.run_auto(x)
        assert path == want_path, f"input {i}"
        assert logits.tolist() == want.tolist(), f"input {i}"
        assert m.run(x, 1 - path).tolist() == runner.run(x, 1 - path).tolist()
        chosen.add(path)
    assert chosen == {0, 1}, "the fixture's controller should pick both paths on random inputs"


def test_penalty_moves_the_choice(tmp_path) -> None:
    """A huge penalty on one path means the controller never picks it (and the generated C agrees)."""
    ir = with_controller(tiny_ir(), penalty=(2**31 - 1, -(2**31)), order=(0, 1))
    m = build_host_model(render(ir, tmp_path).model_c, "ref")
    rng = np.random.default_rng(9)
    for _ in range(10):
        x = rng.integers(0, 256, (8, 8, 1)).astype(np.uint8)
        assert m.run_auto(x)[0] == 1 == Runner(ir).choose(x)


def test_model_without_controller_refuses_auto(tmp_path) -> None:
    m = build_host_model(render(tiny_ir(), tmp_path).model_c, "ref")
    assert not m.has_controller
    with pytest.raises(RuntimeError, match="no controller"):
        m.run_auto(np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(RuntimeError, match="status"):
        m.run(np.zeros((8, 8, 1), np.uint8), -1)
