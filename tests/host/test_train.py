"""Multi-path training: resume after an interruption equals an uninterrupted run; CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import typer
from host_fixtures import TinyCNN, tiny_images
from typer.testing import CliRunner

from bitpath import cli_train
from bitpath.train.config import TrainConfig
from bitpath.train.trainer import CKPT, Interrupted, Trainer, pick_device


def _cfg(tiny_npz, out, **kw) -> TrainConfig:
    base = dict(dataset="npz", data_dir=str(tiny_npz), out=str(out), epochs_float=2, epochs_qat=2, batch_size=32,
                bn_batches=2, ckpt_every=2, lr_float=1e-2, lr_qat=3e-3, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(cfg) -> Trainer:
    torch.manual_seed(123)  # the model's initial weights
    return Trainer(cfg, model=TinyCNN(), input_shape=(12, 12, 1), log=lambda s: None, progress=False)


def _states(t: Trainer) -> dict:
    return {**{f"float.{k}": v for k, v in t.float_model.state_dict().items()},
            **{f"q.{k}": v for k, v in t.qnet.state_dict().items()}}


def test_resume_equals_uninterrupted(tiny_npz, tmp_path):
    a = _trainer(_cfg(tiny_npz, tmp_path / "a"))
    ma = a.run()
    # interrupted twice: mid-epoch in the float stage, then inside QAT
    b = _trainer(_cfg(tiny_npz, tmp_path / "b"))
    with pytest.raises(Interrupted):
        b.run(stop_after_steps=3)
    b = _trainer(_cfg(tiny_npz, tmp_path / "b"))
    assert b.resume() and (b.stage, b.epoch, b.step) == ("float", 0, 3)
    with pytest.raises(Interrupted):
        b.run(stop_after_steps=7)
    b = _trainer(_cfg(tiny_npz, tmp_path / "b"))
    assert b.resume() and b.stage == "qat"
    mb = b.run()
    sa, sb = _states(a), _states(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    ma.pop("train_seconds")
    mb.pop("train_seconds")
    assert ma == mb
    # checkpoints are written atomically: no temporary files are left behind
    assert not [p for p in (tmp_path / "b").iterdir() if ".tmp" in p.name]
    for name in a.table.names:  # the torch integer evaluation equals the fake-quant one here
        assert 0.0 <= ma[name]["integer"] <= 1.0


def test_resume_refuses_other_config(tiny_npz, tmp_path):
    t = _trainer(_cfg(tiny_npz, tmp_path / "c"))
    with pytest.raises(Interrupted):
        t.run(stop_after_steps=1)
    other = _trainer(_cfg(tiny_npz, tmp_path / "c", lr_float=0.5))
    with pytest.raises(ValueError, match=r"different config \(\['lr_float'\]\)"):
        other.resume()


def test_device_auto():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cli_train_export_eval(tmp_path):
    x, y = tiny_images(96, size=28)
    xt, yt = tiny_images(32, size=28, seed=5)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=x, y_train=y, x_test=xt, y_test=yt)
    app = typer.Typer()
    cli_train.register(app)
    r = CliRunner()
    out = tmp_path / "run"
    res = r.invoke(app, ["train", "--help"])
    assert res.exit_code == 0 and "--resume" in res.output and "--weight-views" in res.output
    res = r.invoke(app, ["train", "--out", str(out), "--weight-views", "nearest"])
    assert res.exit_code != 0 and "must be one of round, floor" in res.output
    args = ["train", "--out", str(out), "--dataset", "npz", "--data-dir", str(data), "--epochs-float", "1",
            "--epochs-qat", "1", "--batch-size", "32", "--bn-batches", "2", "--no-progress"]
    res = r.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (out / "final.pt").is_file() and (out / CKPT).is_file()
    res = r.invoke(app, args)  # an existing run is not silently overwritten
    assert res.exit_code != 0 and "--resume" in res.output
    res = r.invoke(app, ["export", str(out)])
    assert res.exit_code == 0, res.output
    ir_path = out / "model.bpir.npz"
    res = r.invoke(app, ["eval", str(ir_path), "--dataset", "npz", "--data-dir", str(data), "--compare", str(out),
                         "--json-out", str(tmp_path / "e.json"), "--no-progress"])
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "e.json").read_text())
    assert set(ev["paths"]) == {"w8a8", "w4a4", "w2a2-fl8", "mixed"} and ev["images"] == 32
    for r_ in ev["paths"].values():
        assert r_["torch_integer_logits_equal"] is True
        assert r_["fake_quant_disagree"] == 0


def test_init_float_skips_pretraining(tiny_npz, tmp_path):
    a = _trainer(_cfg(tiny_npz, tmp_path / "a", epochs_qat=0, bn_batches=1))
    a.run()
    c = _trainer(_cfg(tiny_npz, tmp_path / "c", weight_quant="ratio", epochs_qat=1, init_float=str(tmp_path / "a")))
    m = c.run()
    for k, v in a.float_model.state_dict().items():
        assert torch.equal(v, c.float_model.state_dict()[k]), k
    assert c.history and all(h["stage"] == "qat" for h in c.history)
    assert set(m) >= {"float", "w8a8", "mixed"}
    with pytest.raises(FileNotFoundError, match="no run to take the float model from"):
        _trainer(_cfg(tiny_npz, tmp_path / "d", init_float=str(tmp_path / "nope"))).run()


def test_runs_saved_before_init_step_still_load(tiny_npz, tmp_path):
    """A qnet state without the activation quantizers' ``init_step`` (older runs) loads, taking the
    saved step; any other missing key is still refused."""
    import copy

    from bitpath.quant.modules import ActQuantizer

    t = _trainer(_cfg(tiny_npz, tmp_path / "a", epochs_float=1, epochs_qat=1, bn_batches=1))
    t.run()
    old = {k: v for k, v in t.qnet.state_dict().items() if not k.endswith(".init_step")}
    assert len(old) < len(t.qnet.state_dict())
    net = copy.deepcopy(t.qnet)
    aqs = [m for m in net.modules() if isinstance(m, ActQuantizer)]
    for aq in aqs:
        aq.init_step.fill_(-1.0)
    net.load_state_dict(old)
    for aq in aqs:
        assert torch.equal(aq.init_step, aq.step().detach())
    for k, v in old.items():
        assert torch.equal(net.state_dict()[k], v), k
    broken = dict(old)
    broken.pop(next(k for k in broken if k.endswith("log_scale")))
    with pytest.raises(RuntimeError, match="Missing key"):
        net.load_state_dict(broken)


def test_holdout_images_are_never_trained_on(tiny_npz, tmp_path):
    full = _trainer(_cfg(tiny_npz, tmp_path / "a", epochs_float=0, epochs_qat=0))
    held = _trainer(_cfg(tiny_npz, tmp_path / "b", epochs_float=0, epochs_qat=0, holdout=7))
    n = len(full.x_train)
    assert len(held.x_train) == n - 7
    assert torch.equal(held.x_train, full.x_train[: n - 7]) and torch.equal(held.y_train, full.y_train[: n - 7])
    assert torch.equal(held.x_test, full.x_test)  # the test split is untouched


def test_weight_views_option_and_runs_saved_before_it(tiny_npz, tmp_path, monkeypatch):
    """``weight_views`` is "round" by default; a saved config without the key (runs trained before
    rounded views existed) reads as "floor" everywhere a saved run is compared or rebuilt."""
    from dataclasses import asdict

    from bitpath.demo import same_config
    from bitpath.train.trainer import FINAL, load_final

    assert TrainConfig().weight_views == "round" and TrainConfig().view_round
    with pytest.raises(ValueError, match="weight_views must be 'round' or 'floor', got 'nearest'"):
        TrainConfig(weight_views="nearest")
    floor = _cfg(tiny_npz, tmp_path / "old", epochs_float=1, epochs_qat=1, bn_batches=1, weight_views="floor")
    old = {k: v for k, v in asdict(floor).items() if k != "weight_views"}
    assert TrainConfig.from_dict(old).weight_views == "floor"
    assert not floor.differs_from(old)
    assert replace_views(floor, "round").differs_from(old) == {"weight_views"}
    assert same_config(old, floor) and not same_config(old, replace_views(floor, "round"))
    # a checkpoint and a final.pt written without the key: resumed and rebuilt with floored views
    t = _trainer(floor)
    with pytest.raises(Interrupted):
        t.run(stop_after_steps=1)
    st = torch.load(tmp_path / "old" / CKPT, weights_only=False)
    st["config"] = old
    torch.save(st, tmp_path / "old" / CKPT)
    with pytest.raises(ValueError, match=r"different config \(\['weight_views'\]\)"):
        _trainer(replace_views(floor, "round")).resume()
    t = _trainer(floor)
    assert t.resume()
    t.run()
    st = torch.load(tmp_path / "old" / FINAL, weights_only=False)
    st["config"] = old
    torch.save(st, tmp_path / "old" / FINAL)
    monkeypatch.setattr("bitpath.train.trainer.build", lambda name, classes, shape: (TinyCNN(), shape))
    net, _ = load_final(tmp_path / "old")
    assert not net.view_round and not any(layer.wq.view_round for layer in net.layers.values())
    # a new run with the default: rounded views in every layer
    t = _trainer(_cfg(tiny_npz, tmp_path / "new"))
    t._make_qnet(calibrate=False)
    assert t.qnet.view_round and all(layer.wq.view_round for layer in t.qnet.layers.values())


def replace_views(cfg: TrainConfig, views: str) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, weight_views=views)
