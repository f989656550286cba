"""Device cost table: synthetic cost paths are valid IRs, a stale table is refused, and a measurement
on the emulated board covers every combination of a tiny IR."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sel_fixtures import chain_ir

from bitpath.export.runner import Runner
from bitpath.select import costs as C
from bitpath.select import ilp


def _fake_table(ir) -> dict:
    table = {"layers": {}}
    for k, sir in enumerate(C.build_synthetic(ir, (8,))):
        m = {p: {s: [100 + 10 * k + i] for i, s in enumerate(C.step_names(sir))} for p in sir.path_names}
        C._accumulate(table, sir, m)
    return C._package(ir, table, "qemu_f405", "instructions", 1, (8,))


def test_synthetic_paths_cover_every_combination() -> None:
    ir = chain_ir()
    sirs = C.build_synthetic(ir)
    assert [len(s.path_names) for s in sirs] == [16, 11, 16, 2, 9]  # 27 + 18 + 9 paths, <= 16 per model
    seen = {}
    for sir in sirs:
        r = Runner(sir)
        x = C.default_images(ir, 1)[0]
        for p in range(len(sir.path_names)):
            r.run(x, p)  # valid constants: the reference runs every synthetic path
            for step in ("conv1", "conv2", "fc"):
                c = C.combo_of(sir, p, step)
                seen.setdefault(step, set()).add((c["stored"], c["w"], c["a_in"], c["a_out"]))
    mids = {(s, w, a, o) for s in (2, 4, 8) for w in (2, 4, 8) if w <= s for a in (2, 4, 8) for o in (2, 4, 8)}
    assert seen["conv2"] == mids
    assert seen["conv1"] == {(s, w, 8, o) for s, w, _, o in mids}
    assert seen["fc"] == {(s, w, a, 32) for s, w, a, _ in mids}


def _with_w_round(ir, value: bool):
    import copy

    from bitpath.ir import IR

    h = copy.deepcopy(ir.header)
    for meta in h["layers"].values():
        meta["w_round"] = value
    return IR(h, dict(ir.arrays))


def test_synthetic_ir_keeps_the_layers_rounding() -> None:
    """Weights re-stored at a narrower S are the layer's own (rounded) view, and the synthetic IR
    keeps ``w_round``, so its views are timed with the kernel code that rounds; the cost table's
    graph signature tells rounded from floored IRs (a floored one keeps its old signature)."""
    from bitpath.ir import w_round
    from bitpath.ref.packing import weight_view

    ir = chain_ir()
    rounded = _with_w_round(ir, True)
    sir, fir = C.build_synthetic(rounded, (4,))[0], C.build_synthetic(ir, (4,))[0]
    for name in ("conv1", "conv2", "fc"):
        assert w_round(sir, name) and not w_round(fir, name)
        codes = ir.weights(name).reshape(sir.weights(name).shape)
        np.testing.assert_array_equal(sir.weights(name), weight_view(codes, 8, 4, round=True))
        np.testing.assert_array_equal(fir.weights(name), weight_view(codes, 8, 4))
    x = C.default_images(ir, 1)[0]
    p2 = next(p for p in range(len(sir.path_names)) if C.combo_of(sir, p, "conv2")["w"] == 2)
    assert Runner(sir).run(x, p2).tolist() != Runner(_with_w_round(sir, False)).run(x, p2).tolist()
    sig = C.graph_signature(ir)
    assert C.graph_signature(_with_w_round(ir, False)) == sig != C.graph_signature(rounded)


def test_stale_cost_table_is_refused(tmp_path, monkeypatch) -> None:
    ir = chain_ir()
    path = C.save(_fake_table(ir), tmp_path / "costs.json")
    assert C.load(path, ir)["key"]["board"] == "qemu_f405"
    table, measured = C.cached(ir, path)
    assert not measured
    # another graph
    with pytest.raises(C.StaleCostTable, match="model graph changed"):
        C.load(path, chain_ir(c2=4))
    # kernel or firmware sources changed since the measurement
    d = json.loads(path.read_text())
    d["key"]["kernels"] = "0" * 16
    (tmp_path / "k.json").write_text(json.dumps(d))
    with pytest.raises(C.StaleCostTable, match="kernel sources changed.*--remeasure"):
        C.load(tmp_path / "k.json", ir)
    monkeypatch.setattr(C, "firmware_hash", lambda root=None: "f" * 16)
    with pytest.raises(C.StaleCostTable, match="firmware sources changed"):
        C.cached(ir, path)  # never measured again silently, never used stale
    with pytest.raises(C.StaleCostTable, match="board"):
        C.load(path, ir, board="nucleo_f446re")
    d["format"] = "something"
    (tmp_path / "f.json").write_text(json.dumps(d))
    with pytest.raises(C.StaleCostTable, match="version"):
        C.load(tmp_path / "f.json", ir)


def test_merge_keeps_units_apart() -> None:
    ir = chain_ir()
    main = _fake_table(ir)
    real = _fake_table(ir)
    real["key"]["board"] = "nucleo_f446re"
    real["unit"] = "cycles"
    merged = C.merge(main, real)
    assert C.source(merged)["unit"] == "instructions (emulated)"
    assert C.source(merged, "nucleo_f446re", "cycles")["unit"] == "cycles"
    assert len(C.merge(merged, real)["extra"]) == 1  # re-merging replaces that board's measurements
    with pytest.raises(C.CostTableError):
        C.source(merged, "nrf52840dk")
    other = _fake_table(chain_ir(c2=4))
    with pytest.raises(C.CostTableError, match="graph"):
        C.merge(main, other)


@pytest.mark.emulator
def test_measured_on_the_emulated_board(tmp_path) -> None:
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "pio") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: bash host/run.sh setup")
    ir = chain_ir()
    table, measured = C.cached(ir, tmp_path / "costs.json", n_images=1, stored=(8,), work_dir=tmp_path / "w")
    assert measured and C.load(tmp_path / "costs.json", ir) == table
    assert table["unit"] == "instructions (emulated)" and table["key"]["board"] == "qemu_f405"
    src = C.source(table)
    for step in ("conv1", "conv2", "fc"):
        rows = src["layers"][step]["entries"]
        assert len(rows) == {"conv1": 9, "conv2": 27, "fc": 9}[step]
        assert all(r["cost"] > 0 and r["n"] >= 1 for r in rows)
    assert {e["a_in"] for e in src["layers"]["pool1"]["entries"]} == {2, 4, 8}
    # the paths' totals are what the board reports: the ILP reads them back for the all-8-bit path
    p = ilp.Problem.from_ir(ir, src)
    assert p.ref_cost() > 0
    assert "| 8 | 8 |" in C.markdown(table)
    sol = ilp.sweep(p, k=2)
    assert all(c <= b + 1e-6 for c, b in zip(sol.costs, sol.budgets, strict=True))
    assert np.isfinite(sol.ref_cost)
