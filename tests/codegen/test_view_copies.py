"""2-bit view copies: a conv2d/FC layer stored wider than 2 bits that a path reads at a 2-bit view
gets that view packed at 2 bits, and that path reads it as 2-bit storage. The values are the same,
so the generated C must give the same logits with and without copies, on both kernel variants."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tiny_ir import tiny_ir

from bitpath.codegen import copies_view, render, view_copy
from bitpath.codegen.hostbuild import build_host_model
from bitpath.export.runner import Runner
from bitpath.ref.packing import row_bytes, unpack, weight_view


def test_which_layers_get_a_copy() -> None:
    assert copies_view("conv2d", 8, 2) and copies_view("conv2d", 4, 2) and copies_view("fully_connected", 8, 2)
    assert not copies_view("conv2d", 2, 2)  # already 2-bit storage
    assert not copies_view("conv2d", 8, 4) and not copies_view("fully_connected", 8, 8)
    assert not copies_view("depthwise_conv2d", 8, 2)  # depthwise packs its views once per group: no gain


@pytest.mark.parametrize("rnd", [False, True])
def test_the_copy_holds_the_layers_2bit_view(rnd: bool) -> None:
    ir = tiny_ir(w_round=rnd)
    meta = ir.header["layers"]["pw2"]
    got = unpack(view_copy(ir, "pw2"), 2, True, meta["row_len"]).reshape(meta["w_shape"])
    want = weight_view(ir.weights("pw2"), meta["w_stored"], 2, round=rnd)
    np.testing.assert_array_equal(got, want)


def test_generated_table_points_the_2bit_path_at_the_copy(tmp_path) -> None:
    ir = tiny_ir()
    on, off = render(ir, tmp_path / "on"), render(ir, tmp_path / "off", view_copies=False)
    # pw2 (4-bit storage) is read at a 2-bit view by path 1 only: one copy of K * Cout / 4 bytes
    meta = ir.header["layers"]["pw2"]
    assert on.copy_bytes == meta["w_shape"][0] * row_bytes(meta["row_len"], 2) == 4
    assert off.copy_bytes == 0 and on.weight_bytes == off.weight_bytes + on.copy_bytes
    text = on.model_c.read_text()
    copy = re.search(r"// pw2: 4 bytes, 2-bit copy.*\nstatic const uint8_t (\w+)\[4\]", text)
    assert copy is not None
    # pw2 is layer 3; its path-1 entry reads the copy as 2-bit storage, path 0 the layer's 4-bit codes
    table = text[text.index("bpm_paths_3[2]"):text.index("bpm_paths_4[2]")]
    w8, w2 = table.split("// w8a8")
    assert ".w_stored = 4, .w_view = 4" in w8 and ".weights = NULL" in w8
    assert ".w_stored = 2, .w_view = 2" in w2 and f".weights = {copy.group(1)}" in w2
    off_text = off.model_c.read_text()
    assert "2-bit copy of the" not in off_text and not re.search(r"\.shift = -?\d+, \.weights = bpm", off_text)
    assert len(re.findall(r"\.shift = -?\d+, \.weights = bpm", text)) == 1


@pytest.mark.parametrize("variant", ["ref", "dsp"])
@pytest.mark.parametrize("rnd", [False, True])
def test_same_logits_with_and_without_copies(tmp_path, variant: str, rnd: bool) -> None:
    ir = tiny_ir(w_round=rnd)
    on = build_host_model(render(ir, tmp_path / "on").model_c, variant)
    off = build_host_model(render(ir, tmp_path / "off", view_copies=False).model_c, variant)
    runner = Runner(ir)
    rng = np.random.default_rng(5)
    for x in [rng.integers(0, 256, (8, 8, 1)).astype(np.uint8) for _ in range(40)]:
        for p in range(2):
            want = runner.run(x, p)
            np.testing.assert_array_equal(on.run(x, p), want)
            np.testing.assert_array_equal(off.run(x, p), want)
