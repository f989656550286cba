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
