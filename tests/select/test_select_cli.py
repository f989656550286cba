"""`bitpath select costs / sensitivity / paths` end to end on a tiny IR (cost table faked, no emulator)."""

from __future__ import annotations

import json

import numpy as np
from sel_fixtures import chain_ir
from test_select_costs import _fake_table
from test_select_sensitivity import _data
from typer.testing import CliRunner

from bitpath.cli import app
from bitpath.select import costs as C


def test_select_cli_sub_steps(tmp_path) -> None:
    ir = chain_ir()
    ir_path = tmp_path / "m.bpir.npz"
    ir.save(ir_path)
    costs = tmp_path / "m.costs-qemu_f405.json"
    C.save(_fake_table(ir), costs)
    x, y = _data(64)
    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=x, y_train=y, x_test=x, y_test=y)
    run = CliRunner()

    r = run.invoke(app, ["select", "costs", str(ir_path), "--markdown"])
    assert r.exit_code == 0, r.output
    assert "current table" in r.output and "### `conv2`" in r.output

    r = run.invoke(app, ["select", "sensitivity", str(ir_path), "--method", "kl", "--dataset", "npz",
                         "--data-dir", str(npz), "--images", "32"])
    assert r.exit_code == 0, r.output
    sens = tmp_path / "m.sens-kl.json"
    assert json.loads(sens.read_text())["method"] == "kl"

    r = run.invoke(app, ["select", "paths", str(ir_path), "--costs", str(costs), "--sensitivity", str(sens),
                         "-k", "2", "-o", str(tmp_path / "p.json")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "p.json").read_text())
    assert len(d["paths"]) == 2 and set(d["paths"][0]["layers"]) == {"conv1", "conv2", "fc"}
    assert "bitpath train --paths" in r.output

    # a stale table is refused with the reason and the way out
    t = json.loads(costs.read_text())
    t["key"]["firmware"] = "0" * 16
    costs.write_text(json.dumps(t))
    r = run.invoke(app, ["select", "costs", str(ir_path)])
    assert r.exit_code == 1 and "firmware sources changed" in r.output and "--remeasure" in r.output
    r = run.invoke(app, ["select", "paths", str(ir_path), "--costs", str(costs), "--sensitivity", str(sens)])
    assert r.exit_code == 1 and "stale" in r.output
    assert "controller" in run.invoke(app, ["select", "--help"]).output


def test_controller_calibrates_on_the_images_training_held_out(tmp_path, monkeypatch) -> None:
    """With `train --holdout N` recorded in the IR, `select controller` calibrates on the last N training
    images; without it, on the first --images (and says the network has seen them)."""
    from bitpath.ir import IR
    from bitpath.select import dynamic as D

    x, y = _data(50)
    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=x, y_train=y, x_test=x, y_test=y)
    seen = {}

    def fake_fit(ir, x_, y_, **kw):
        seen["x"], seen["y"], seen["val"] = x_, y_, kw["val"]
        return ir, {}

    monkeypatch.setattr(D, "fit", fake_fit)
    base = chain_ir()
    for holdout, args, want in ((12, [], slice(38, 50)), (0, ["--images", "20"], slice(0, 20))):
        ir = IR({**base.header, "source": {"config": {"holdout": holdout}}}, base.arrays)
        ir_path = tmp_path / f"h{holdout}.bpir.npz"
        ir.save(ir_path)
        r = CliRunner().invoke(app, ["select", "controller", str(ir_path), "--dataset", "npz", "--data-dir", str(npz),
                                     "--work", str(tmp_path / "w"), *args])
        assert r.exit_code == 0, r.output
        np.testing.assert_array_equal(seen["x"], x[want])
        np.testing.assert_array_equal(seen["y"], y[want])
        assert seen["val"] <= len(seen["x"]) // 4
        assert ("never trained on" in r.output) == bool(holdout)
