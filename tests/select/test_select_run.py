"""`bitpath select run` end to end on a quickly trained Fashion-MNIST run: costs on the emulated
board, sensitivity, ILP paths, fine-tuning with exactly those paths, export, controller, report; a
second invocation reuses every step's output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> Path:
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "pio") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: bash host/run.sh setup")
    from bitpath.train.config import TrainConfig
    from bitpath.train.trainer import Trainer

    out = tmp_path_factory.mktemp("src")
    Trainer(TrainConfig(out=str(out), epochs_float=1, epochs_qat=1, limit_train=1500, limit_test=200,
                        bn_batches=2), log=lambda s: None).run()
    return out


def test_select_run_chain_and_resume(source_run: Path, tmp_path: Path) -> None:
    from bitpath.ir import load
    from bitpath.select.pipeline import SelectRun, run

    cfg = SelectRun(src=source_run, out=tmp_path / "sel", k=3, sens_images=32, stored=(8,), epochs_qat=1,
                    limit_train=800, limit_test=200, controller_images=600, held_out=200, report_images=200,
                    board_images=8)
    lines: list[str] = []
    r = run(cfg, log=lines.append)
    chosen = json.loads((cfg.out / "paths.json").read_text())
    names = [p["name"] for p in chosen["paths"]]
    assert len(names) == 3
    ir = load(cfg.out / "train" / "model.ctrl.bpir.npz")
    assert ir.path_names == names, "the fine-tuned model must carry exactly the chosen paths"
    for p, want in zip(ir.header["paths"], chosen["paths"], strict=True):
        assert p["layers"] == want["layers"]
        for layer, (w, a) in want["layers"].items():  # a: the layer's input activation width
            assert (p["nodes"][layer]["w_view"], p["nodes"][layer]["in"][0]) == (w, a), (p["name"], layer)
    assert ir.header["controller"] is not None
    assert r["paths"] == names and r["images"] == 200
    bc = r["board_check"]
    assert bc["images"] == 8 and bc["path_mismatches"] == [] and bc["logit_mismatches"] == []
    assert (cfg.out / "report" / "pareto.png").is_file()

    again: list[str] = []
    run(cfg, log=again.append)
    text = "\n".join(again)
    assert "current" in text and text.count("reusing") >= 3 and "measuring" not in text
