"""Export round trip (fake-quant -> IR -> numpy reference) and refusal of corrupted IR fields.

Tolerance: none. On the fixture inputs the numpy reference's int32 logits must equal the
integer-exact torch evaluation exactly, and the fake-quant model's predictions must equal the
integer model's predictions exactly (the eval-mode fake-quant rounds the folded bias to
accumulator units as the export does, so the two differ only by float32 rounding on exact ties).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from host_fixtures import TinyCNN, TinyResNet, tiny_images

from bitpath import ir as irmod
from bitpath.export.exporter import export
from bitpath.export.runner import Runner, evaluate
from bitpath.models import capture
from bitpath.train.paths import PathTable
from bitpath.train.qnet import MultiPathNet

TABLE = {"paths": [
    {"name": "w8a8", "default": [8, 8]},
    {"name": "w4a4", "default": [4, 4], "first": [4, 8]},
    {"name": "w2a2", "default": [2, 2], "first": [8, 8], "last": [8, 2]},
    {"name": "mixed", "default": [4, 2], "first": [2, 8], "last": [2, 2]},
]}


def _trained(model_cls, weight_mode="lsq", act_mode="lsq", steps=5, view_round=False):
    torch.manual_seed(0)
    model = model_cls()
    spec = capture(model, (12, 12, 1))
    table = PathTable.from_dict(TABLE, spec)
    net = MultiPathNet(model, spec, table, weight_mode, act_mode, view_round=view_round)
    x, y = tiny_images(64)
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)
    net.calibrate(xt)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    net.train()
    for _ in range(steps):  # a few steps so BN statistics and steps move away from their initial values
        opt.zero_grad()
        for p in range(len(table)):
            torch.nn.functional.cross_entropy(net(xt, p), yt).backward()
        opt.step()
        net.clamp_scales_()
    net.eval()
    return net


@pytest.mark.parametrize("views", ["round", "floor"])
@pytest.mark.parametrize("model_cls, wmode, amode", [(TinyResNet, "lsq", "lsq"), (TinyCNN, "ratio", "pact"),
                                                     (TinyCNN, "lsq", "lsq")])
def test_round_trip_exact(tmp_path, model_cls, wmode, amode, views):
    net = _trained(model_cls, wmode, amode, view_round=views == "round")
    ir = export(net, {"test": True})
    h = ir.save(tmp_path / "m.bpir.npz")
    loaded = irmod.load(tmp_path / "m.bpir.npz")
    assert loaded.content_hash() == h
    for n in net.spec.weighted:  # every weighted layer says how its views are read
        assert loaded.header["layers"][n.name]["w_round"] is (views == "round")
        assert irmod.w_round(loaded, n.name) is (views == "round")
    x, y = tiny_images(24, seed=3)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    runner = Runner(loaded)
    for p in range(len(net.table)):
        logits = runner.logits(x, p)
        with torch.no_grad():
            torch_int = net(xt, p, integer=True).numpy()
            fake = net(xt, p).numpy()
        np.testing.assert_array_equal(logits, torch_int)
        np.testing.assert_array_equal(logits.argmax(1), fake.argmax(1))
        # the float logits are the int32 logits times one per-tensor scale
        scale = loaded.header["paths"][p]["nodes"][loaded.header["output"]]["out_scale"]
        np.testing.assert_allclose(fake, logits * scale, rtol=1e-3, atol=1e-3 * np.abs(fake).max())
        acc, pred = evaluate(loaded, x, y, net.table.names[p])
        assert acc == pytest.approx((pred == y).mean())


def test_ir_without_w_round_runs_as_floor(tmp_path):
    """IRs written before rounded views existed have no ``w_round``: their views floor."""
    x, _ = tiny_images(24, seed=3)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    logits, nets = {}, {}
    for rnd in (False, True):
        net = nets[rnd] = _trained(TinyCNN, steps=2, view_round=rnd)
        ir = export(net)
        for meta in ir.header["layers"].values():
            del meta["w_round"]
        ir.save(tmp_path / f"old{rnd}.bpir.npz")
        old = irmod.load(tmp_path / f"old{rnd}.bpir.npz")
        runner = Runner(old)
        logits[rnd] = [runner.logits(x, p) for p in range(len(net.table))]
        if not rnd:  # the floored network, exactly
            with torch.no_grad():
                for p in range(len(net.table)):
                    np.testing.assert_array_equal(logits[rnd][p], net(xt, p, integer=True).numpy())
    # the flag matters: the same rounded-trained codes read as floored views give other logits on a narrow path
    with torch.no_grad():
        assert not np.array_equal(logits[True][2], nets[True](xt, 2, integer=True).numpy())


def test_nested_storage_single_copy():
    net = _trained(TinyCNN, steps=1)
    ir = export(net)
    # one packed weight array per layer, at the widest width: flash is the widest path alone
    assert sorted(k for k in ir.arrays if k.startswith("w:")) == ["w:conv", "w:fc1", "w:fc2"]
    assert ir.arrays["w:fc1"].shape == (8, 36)  # 8 rows of 36 int8 codes
    codes = ir.weights("fc1")
    torch_codes = net.layers["fc1"].wq.codes(net.layers["fc1"].weight).numpy()
    # the FC after flatten reads HWC order: columns permuted from torch's CHW
    np.testing.assert_array_equal(codes, torch_codes.reshape(8, 4, 3, 3).transpose(0, 2, 3, 1).reshape(8, 36))


@pytest.fixture(scope="module")
def good_ir():
    return export(_trained(TinyResNet, steps=2))


def _corrupt(ir, fn):
    bad = irmod.IR(copy.deepcopy(ir.header), {k: v.copy() for k, v in ir.arrays.items()})
    fn(bad)
    return bad


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b.arrays.__setitem__("shift:pw:0", np.full(4, 70, np.int32)),
         r"path 'w8a8': layer 'pw': field 'shift' must lie in \[0, 62\]"),
        (lambda b: b.arrays.__setitem__("bias:dw:1", np.zeros(3, np.int32)),
         r"path 'w4a4': layer 'dw': field 'bias' must have shape \(4,\)"),
        (lambda b: b.arrays.__setitem__("mult:conv1:0", np.zeros(4, np.int64)),
         r"layer 'conv1': field 'mult' must be int32"),
        (lambda b: b.arrays.pop("w:fc"), r"layer 'fc': field 'weights' missing"),
        (lambda b: b.arrays.__setitem__("w:dw", b.arrays["w:dw"][:, :1]),
         r"layer 'dw': field 'weights' must have shape"),
        (lambda b: b.header["paths"][1]["nodes"]["pw"].__setitem__("w_view", 16), r"layer 'pw': field 'w_view'"),
        (lambda b: b.header["layers"]["pw"].__setitem__("w_stored", 3), r"layer 'pw': field 'w_stored'"),
        (lambda b: b.header["graph"][2].__setitem__("out_shape", [5, 5, 4]), r"layer 'dw': field 'out_shape'"),
        (lambda b: b.header["graph"][3]["attrs"].__setitem__("in_ch", 7), r"layer 'pw': field 'attrs.in_ch'"),
        (lambda b: b.header["graph"][4].__setitem__("inputs", ["pw", "ghost"]), r"layer 'add': field 'inputs'"),
        (lambda b: b.header["graph"][0].__setitem__("op", "conv3d"), r"layer 'conv1': field 'op': unknown op"),
        (lambda b: b.header["paths"][0]["nodes"]["add"].__setitem__("act_max", 999),
         r"path 'w8a8': layer 'add': field 'act_min'/'act_max'"),
        (lambda b: b.header["paths"][0]["nodes"]["add"].__setitem__("mult_a", 2**31), r"layer 'add': field 'mult_a'"),
        (lambda b: b.header["paths"][2]["nodes"]["dw"].__setitem__("in", [4, False]), r"layer 'dw': field 'in'"),
        (lambda b: b.header["paths"][0]["nodes"].pop("conv1"), r"path 'w8a8': field 'nodes': field 'conv1' missing"),
        (lambda b: b.arrays.__setitem__("bias:pw:0", np.full(4, 2**31 - 1, np.int32)),
         r"layer 'pw': field 'bias': .*exceeds int32"),
        (lambda b: b.header.__setitem__("version", 99), r"field 'version'"),
        (lambda b: b.header.__setitem__("output", "pool"), r"field 'output'"),
    ],
)
def test_corrupted_fields_refused(good_ir, tmp_path, mutate, match):
    bad = _corrupt(good_ir, mutate)
    with pytest.raises(irmod.IRError, match=match):
        irmod.validate(bad)
    # the same refusal when a file that bypassed save()'s check is loaded
    path = tmp_path / "bad.npz"
    np.savez(path, header=np.frombuffer(irmod._canonical(bad.header), np.uint8),
             hash=np.frombuffer(bad.content_hash().encode(), np.uint8), **bad.arrays)
    with pytest.raises(irmod.IRError, match=match):
        irmod.load(path)


def test_hash_and_file_errors(good_ir, tmp_path):
    p = tmp_path / "m.npz"
    good_ir.save(p)
    z = dict(np.load(p))
    z["bias:fc:0"] = z["bias:fc:0"] + 1  # tamper with a tensor, keep the old hash
    np.savez(p, **z)
    with pytest.raises(irmod.IRError, match="field 'hash': content hash mismatch"):
        irmod.load(p)
    assert irmod.load(p, check_hash=False).arrays["bias:fc:0"].dtype == np.int32
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(irmod.IRError, match="not a bitpath IR"):
        irmod.load(tmp_path / "junk.npz")
    with pytest.raises(irmod.IRError, match="not found"):
        irmod.load(tmp_path / "missing.npz")
    with pytest.raises(irmod.IRError, match="no path named 'fast'"):
        Runner(good_ir).run(np.zeros((12, 12, 1), np.uint8), "fast")


def test_ir_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; import bitpath.ir, bitpath.export.runner; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
