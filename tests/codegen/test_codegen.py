"""Code generation: golden snapshot, arena plan, and the generated C compiled for the host giving
exactly the numpy reference's logits on every path (portable and DSP kernels)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tiny_ir import tiny_ir

from bitpath.codegen import CodegenError, render
from bitpath.codegen.hostbuild import build_host_model
from bitpath.codegen.plan import check_plan, plan
from bitpath.export.runner import Runner

GOLDEN = Path(__file__).parent / "golden" / "tiny_model.c"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    ir = tiny_ir()
    return ir, render(ir, tmp_path_factory.mktemp("gen"))


def test_golden_snapshot(generated) -> None:
    _, gen = generated
    text = gen.model_c.read_text()
    if os.environ.get("BITPATH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.is_file(), "no golden file: run with BITPATH_UPDATE_GOLDEN=1 once and review it"
    assert text == GOLDEN.read_text(), "generated C changed: review the diff, then BITPATH_UPDATE_GOLDEN=1"


def test_banner_names_the_ir_hash(generated) -> None:
    ir, gen = generated
    head = gen.model_c.read_text().splitlines()[:4]
    assert any(ir.content_hash() in line for line in head)
    assert any("DO NOT EDIT" in line for line in head)


@pytest.mark.parametrize("variant", ["ref", "dsp"])
def test_generated_c_matches_numpy_reference(generated, variant: str) -> None:
    ir, gen = generated
    model = build_host_model(gen.model_c, variant)
    runner = Runner(ir)
    assert model.num_paths == 2 and model.num_classes == 3 and model.arena_bytes == gen.arena_bytes
    rng = np.random.default_rng(1)
    inputs = [rng.integers(0, 256, (8, 8, 1)).astype(np.uint8) for _ in range(100)]
    inputs += [np.zeros((8, 8, 1), np.uint8), np.full((8, 8, 1), 255, np.uint8)]
    for x in inputs:
        for p in range(2):
            np.testing.assert_array_equal(model.run(x, p), runner.run(x, p))


@pytest.mark.parametrize("variant", ["ref", "dsp"])
def test_generated_c_with_rounded_views_matches_numpy_reference(tmp_path, variant: str) -> None:
    # The same network with w_round set: the generated layer table must carry it to the kernels. The
    # floor model's logits differ on the narrow path (so a dropped flag cannot pass); path 0 reads
    # every layer at its stored width, where the two roundings agree.
    ir, floor = tiny_ir(w_round=True), Runner(tiny_ir(w_round=False))
    model = build_host_model(render(ir, tmp_path).model_c, variant)
    runner = Runner(ir)
    rng = np.random.default_rng(2)
    inputs = [rng.integers(0, 256, (8, 8, 1)).astype(np.uint8) for _ in range(60)]
    differ = 0
    for x in inputs:
        for p in range(2):
            got = model.run(x, p)
            np.testing.assert_array_equal(got, runner.run(x, p))
            differ += p == 1 and not np.array_equal(got, floor.run(x, p))
        np.testing.assert_array_equal(runner.run(x, 0), floor.run(x, 0))  # every view of path 0 is full width
    assert differ > len(inputs) // 2


def test_generated_model_refuses_bad_calls(generated) -> None:
    _, gen = generated
    model = build_host_model(gen.model_c, "ref")
    x = np.zeros(64, np.uint8)
    with pytest.raises(RuntimeError, match="status -1"):
        model.run(x, 2)  # no such path
    with pytest.raises(RuntimeError, match="status -1"):
        model.run(x, -1)  # BP_PATH_AUTO without a controller
    with pytest.raises(RuntimeError, match="status -1"):
        model.run(np.zeros(63, np.uint8), 0)  # wrong input length


def test_arena_plan_is_consistent_and_tight() -> None:
    ir = tiny_ir()
    p = plan(ir)
    check_plan(p)  # no two live tensors overlap, all inside the arena, 4-byte aligned
    # Lower bound: at every step, everything alive must fit at once.
    peak = max(
        sum(t.size for t in p.tensors.values() if t.first <= s.index <= t.last) for s in p.steps
    )
    assert peak <= p.arena_bytes <= peak + 4 * len(p.tensors)
    # conv1 writes 8x8x4 at 8 bits (256 B) while its scratch (2 x 12 int16 = 48 B) is live.
    assert p.tensors["conv1"].size == 256 and p.tensors["conv1.scratch"].size == 48
    # the flatten is an alias: no tensor of its own
    assert "flat" not in p.tensors and p.offset("flat") == p.offset("gap")


def test_flatten_with_padding_bits_is_refused() -> None:
    # 'gap' leaves 2x2 pixels of 3 channels; path 1 holds them at 4 bits: 12 bits per pixel row,
    # so the flattened vector would have 4 padding bits after every pixel.
    ir = tiny_ir(channels=3, gap=3)
    from bitpath.ir import validate

    validate(ir)
    with pytest.raises(CodegenError, match="'flat'"):
        plan(ir)
    plan(tiny_ir(channels=4, gap=3))  # 4 channels at 4 bits fill two bytes: accepted
