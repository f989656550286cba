"""`bitpath demo` end to end in a small configuration: train, export, controller, host accuracy,
generate C, build, and 200 real Fashion-MNIST test images per path and under the controller on the
emulated board, every logit bit-exact and every chosen path equal to the host reference."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator


def test_quick_demo_is_bit_exact_on_the_board(tmp_path: Path) -> None:
    from bitpath.demo import DemoConfig, run

    cfg = replace(DemoConfig.quick(tmp_path / "demo"), board_images=200, progress=False)
    r = run(cfg, log=lambda s: None)
    assert set(r["host"]) == set(r["device"]) and len(r["device"]) >= 3 and "auto" in r["device"]
    for name, d in r["device"].items():
        assert d["images"] == 200
        assert d["mismatches"] == 0, f"path {name}: board logits differ from the host reference"
        assert d["path_mismatches"] == 0, f"path {name}: the board's controller chose another path than the host's"
        assert d["mean_instructions"] > 0 and len(d["layer_instructions"]) == len(r["layers"])
    assert 0.0 <= min(h["accuracy"] for h in r["host"].values())
    # a smoke run still learns something on the widest path (10 classes: chance is 10 %)
    assert r["host"][next(iter(r["host"]))]["accuracy"] > 0.3
    assert json.loads((cfg.out / "demo.json").read_text())["ir_hash"] == r["ir_hash"]
    assert "| path |" in (cfg.out / "demo.md").read_text()
    assert r["arena_bytes"] < r["ram_bytes"]


def test_a_run_saved_before_a_config_key_existed_is_reused() -> None:
    from dataclasses import asdict

    from bitpath.demo import same_config
    from bitpath.train.config import TrainConfig

    cfg = TrainConfig(out="runs/demo", epochs_float=8, epochs_qat=4)
    old = {k: v for k, v in asdict(cfg).items() if k != "holdout"}  # saved before `holdout` was added
    assert same_config(old, cfg)
    assert same_config({**old, "out": "/elsewhere/runs/demo"}, cfg)  # the same run, moved or named absolutely
    assert not same_config({**old, "epochs_qat": 3}, cfg)
    assert not same_config({**old, "holdout": 5000}, cfg)
    assert not same_config({**old, "no_such_key": 1}, cfg) and not same_config(None, cfg)
