"""Layer sensitivity (KL of the logits, imprinting) grows with more aggressive lowering."""

from __future__ import annotations

import numpy as np
import pytest
from sel_fixtures import chain_ir

from bitpath.export.runner import Runner
from bitpath.select import sensitivity as S


def _data(n: int = 96):
    """Labelled 8x8 images: the label is the brightest quadrant (learnable by imprinting)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, 8, 8, 1))
    for i, c in enumerate(y):
        r0, c0 = [(0, 0), (0, 4), (4, 0)][c]
        x[i, r0 : r0 + 4, c0 : c0 + 4] += 170
    return np.clip(x, 0, 255).astype(np.uint8), y


def test_lowered_reference_path_is_exact_and_run_all_matches_runner() -> None:
    ir = chain_ir()
    x, _ = _data(4)
    items = S.lowerings(ir)
    assert ("conv1", 4, 8) in items and ("conv1", 4, 4) not in items  # the first layer reads the image
    lir = S.lowered_ir(ir, items)
    r0, r = Runner(ir), Runner(lir)
    for xi in x:
        assert r.run(xi, 0).tolist() == r0.run(xi, 0).tolist()
        for p in (0, 3, len(items)):
            assert S.run_all(r, xi, p)["fc"].tolist() == r.run(xi, p).tolist()


def test_lowered_paths_keep_the_layers_rounding() -> None:
    """A lowered view of a layer whose views round is read rounded (the header's ``w_round`` is kept)."""
    import copy

    from bitpath.ir import IR, w_round

    ir = chain_ir()
    h = copy.deepcopy(ir.header)
    for meta in h["layers"].values():
        meta["w_round"] = True
    rounded = IR(h, dict(ir.arrays))
    items = [("conv2", 2, 8), ("fc", 4, 8)]
    lir, lfl = S.lowered_ir(rounded, items), S.lowered_ir(ir, items)
    assert all(w_round(lir, n) for n in ("conv1", "conv2", "fc"))
    x, _ = _data(4)
    r, rf = Runner(lir), Runner(lfl)
    for xi in x:
        assert r.run(xi, 0).tolist() == rf.run(xi, 0).tolist()  # 8-bit views: rounding does not apply
    assert any(r.run(xi, 1).tolist() != rf.run(xi, 1).tolist() for xi in x)


def test_kl_grows_with_lowering() -> None:
    ir = chain_ir()
    x, y = _data(64)
    res = S.compute(ir, "kl", x, y)
    L = res["layers"]
    for layer in ("conv2", "fc"):
        assert L[layer]["w2a2"] > L[layer]["w4a4"] > L[layer]["w8a8" if "w8a8" in L[layer] else "w8a4"] >= 0
    assert L["conv1"]["w2a8"] > L["conv1"]["w4a8"] >= 0
    assert sum(v["w2a2"] for k, v in L.items() if k != "conv1") > sum(v["w4a4"] for k, v in L.items() if k != "conv1")
    assert "w2a2" in S.markdown(res)


def test_imprinting_sensitivity_grows_with_lowering(tmp_path) -> None:
    ir = chain_ir()
    x, y = _data(96)
    res = S.compute(ir, "imprint", x, y, n_embed=32)
    assert set(res["importance"]) == {"conv1", "conv2", "fc"}
    assert res["exit_accuracy"]["conv1"] > 0.5  # imprinting reads the class from the first layer's features
    L = res["layers"]
    total = {c: sum(v.get(c, 0.0) for v in L.values()) for c in ("w8a4", "w4a4", "w2a2")}
    assert total["w2a2"] > total["w4a4"] >= 0
    assert total["w2a2"] > total["w8a4"]
    p = S.save(res, tmp_path / "s.json")
    assert S.load(p)["method"] == "imprint"
    with pytest.raises(ValueError, match="unknown sensitivity method"):
        S.compute(ir, "fisher", x, y)
