"""Hessian-trace (Hutchinson, HAWQ-V3 style) sensitivity on a briefly trained tiny network."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
from host_fixtures import TinyCNN, tiny_images  # noqa: E402

from bitpath.export.exporter import export  # noqa: E402
from bitpath.models import capture  # noqa: E402
from bitpath.select import sensitivity as S  # noqa: E402
from bitpath.train.paths import PathTable  # noqa: E402
from bitpath.train.qnet import MultiPathNet  # noqa: E402


@pytest.mark.parametrize("view_round", [False, True])
def test_hessian_sensitivity_grows_with_lowering(view_round: bool) -> None:
    torch.manual_seed(0)
    model = TinyCNN()
    spec = capture(model, (12, 12, 1))
    table = PathTable.from_dict({"paths": [{"name": "w8a8", "default": [8, 8]},
                                           {"name": "w4a4", "default": [4, 4], "first": [4, 8]}]}, spec)
    net = MultiPathNet(model, spec, table, view_round=view_round)
    x, y = tiny_images(64)
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)
    net.calibrate(xt)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    net.train()
    for _ in range(10):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt, 0), yt).backward()
        opt.step()
        net.clamp_scales_()
    net.eval()
    ir = export(net)
    fm = S.float_model_from_net(net, model, 0)
    res = S.compute(ir, "hessian", x, y, model=fm, probes=4)
    assert res["method"] == "hessian" and set(res["traces"]) == {"conv", "fc1", "fc2"}
    L = res["layers"]
    assert L["conv"]["w2a8"] > L["conv"]["w4a8"] > 0
    for layer in ("fc1", "fc2"):
        assert L[layer]["w2a2"] > L[layer]["w4a4"] > L[layer]["w8a4"] > 0
    if view_round:  # the weight perturbation is the layer's own (rounded) view, not the floored one
        import copy

        from bitpath.ir import IR

        h = copy.deepcopy(ir.header)
        for meta in h["layers"].values():
            meta["w_round"] = False
        fl = S.compute(IR(h, dict(ir.arrays)), "hessian", x, y, model=fm, probes=4)["layers"]
        assert fl["fc1"]["w2a2"] != L["fc1"]["w2a2"] and fl["fc1"]["w8a2"] == L["fc1"]["w8a2"]
    with pytest.raises(ValueError, match="--run"):
        S.compute(ir, "hessian", x, y)
