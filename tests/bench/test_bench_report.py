"""Report generation from stored results (golden structure, plots, self-contained HTML), energy
arithmetic, the PPK2 meter against a fake, and the `bitpath bench` / `bitpath report` commands."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fakes import FakeDevice, FakePort, FakePPK2, FakeServer, dataset, tiny_ir  # noqa: E402

from bitpath.bench import energy, report, results  # noqa: E402
from bitpath.bench.boards import PROFILES, profile  # noqa: E402
from bitpath.bench.link import BenchClient  # noqa: E402
from bitpath.bench.run import Bench, BenchConfig  # noqa: E402
from bitpath.cli import app  # noqa: E402

IR = tiny_ir()
X, Y = dataset(IR, 10)
PNG = b"\x89PNG\r\n\x1a\n"

RESULT_KEYS = {"format", "version", "started", "url", "board", "numbers", "unit", "device", "ir_hash", "firmware",
               "dataset", "layers", "paths", "oracle", "cascade", "complete_images", "y_hist", "events",
               "measurements", "config", "static_mix"}
PATH_KEYS = {"images", "correct", "accuracy", "mismatches", "mismatch_images", "cost", "time_us", "lap_us",
             "layers_mean", "controller", "controller_share", "chosen", "chosen_by_class", "attempts_max",
             "energy_estimated"}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results JSON from a fake run with a PPK2, stored as a user would keep it."""
    d = tmp_path_factory.mktemp("run")
    dev = BenchClient("fake://", port=FakePort(FakeDevice(IR)), timeout=0.5, quiet=0.02)
    meter = energy.PPK2Meter("fake-ppk2", volts=3.0, api_factory=lambda port: FakePPK2(port)).open()
    Bench(dev, IR, X, Y, d / "bench.jsonl", profile=profile("qemu_f405"), meter=meter,
          config=BenchConfig(images=10, energy_iterations=10), log=lambda s: None).run()
    r = results.from_log(d / "bench.jsonl")
    (d / "results.json").write_text(json.dumps(r))
    return d / "results.json"


def test_results_golden_structure(stored: Path) -> None:
    r = results.load(stored)
    assert set(r) == RESULT_KEYS
    assert r["format"] == "bitpath-bench-results" and r["version"] == 1
    assert list(r["paths"]) == [*IR.path_names, "auto"]
    for name, e in r["paths"].items():
        assert PATH_KEYS <= set(e) and "energy_measured" in e, name
        assert e["images"] == 10 and e["mismatches"] == 0
        assert len(e["layers_mean"]) == len(r["layers"])
        assert e["cost"]["mean"] == pytest.approx(e["controller"]["mean"] + sum(e["layers_mean"]))
    assert r["board"]["emulated"] and "emulated" in r["numbers"]
    # path 0 is right on the first half by construction of the labels
    assert r["paths"][IR.path_names[0]]["correct"] >= 5
    auto = r["paths"]["auto"]
    assert sum(auto["chosen"].values()) == 10 and auto["controller_share"] > 0
    assert sum(sum(row.values()) for row in auto["chosen_by_class"].values()) == 10
    assert r["oracle"]["accuracy"] >= max(e["accuracy"] for n, e in r["paths"].items() if n != "auto")
    # the random split at auto's cost: no worse than any static path that is no dearer
    mix = r["static_mix"]["at_auto_cost"]
    cheaper = [e["accuracy"] for n, e in r["paths"].items()
               if n != "auto" and e["cost"]["mean"] <= auto["cost"]["mean"]]
    assert (mix is None) == (not cheaper) and (mix is None or mix >= max(cheaper) - 1e-12)


def test_report_files_plots_and_self_contained_html(stored: Path, tmp_path: Path) -> None:
    files = report.write(results.load(stored), tmp_path)
    for name in report.PLOTS:
        assert files[name].read_bytes().startswith(PNG)
    page = files["html"].read_text()
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(imgs) == len(report.PLOTS)
    import base64

    assert all(base64.b64decode(b).startswith(PNG) for b in imgs)
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?(https?:|//|file:)", page)
    md = files["md"].read_text()
    for must in ("firmware sha256", "IR hash", "emulated", "| auto |", "oracle", "measured (PPK2)",
                 "Per-layer mean cost", "Every logit matched"):
        assert must in md, must
    assert json.loads(files["json"].read_text())["format"] == "bitpath-bench-results"


def test_report_command_regenerates_from_stored_json(stored: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(stored), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "report.html").is_file() and "auto" in res.output
    assert (tmp_path / "rep" / "report.md").read_text() == report.markdown(results.load(stored))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    res = CliRunner().invoke(app, ["report", str(bad), "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "not a bitpath bench results file" in res.output


def test_energy_estimate_arithmetic() -> None:
    f405 = profile("qemu_f405")
    # 168e6 emulated instructions at 168 MHz and 1 instruction/cycle = 1 s; 40 mA x 3.3 V x 1 s
    e = energy.estimate(168_000_000, unit="instructions (emulated)", counter_hz=1_000_000_000, profile=f405)
    assert e.seconds == pytest.approx(1.0) and e.joules == pytest.approx(0.040 * 3.3)
    assert e.label.startswith("estimated") and "1 instruction/cycle" in e.label
    nrf = profile("nrf52840dk")
    e = energy.estimate(6_400_000, unit="cycles", counter_hz=64_000_000, profile=nrf)
    assert e.seconds == pytest.approx(0.1) and e.joules == pytest.approx(0.0033 * 3.0 * 0.1)
    assert "DWT cycles" in e.label
    f446 = profile("nucleo_f446re")
    assert energy.estimate(180e6, unit="cycles", counter_hz=180_000_000, profile=f446).current_a == 0.038
    with pytest.raises(KeyError, match="no datasheet run current at 100 MHz"):
        energy.estimate(1, unit="cycles", counter_hz=100_000_000, profile=f446)
    assert all(p.source and p.run_current_a[p.clock_hz] > 0 for p in PROFILES.values())


def test_ppk2_meter_against_a_fake() -> None:
    fake = FakePPK2("p")
    t = iter([10.0, 10.5])
    m = energy.PPK2Meter("p", volts=1.8, source_meter=True, api_factory=lambda port: fake, clock=lambda: next(t))
    with m:
        result, window = m.measure(lambda: "ran")
        assert not fake.measuring
    assert result == "ran" and window.wall_s == pytest.approx(0.5) and window.samples_ua
    assert window.mean_a == pytest.approx(0.012)
    assert fake.calls[:4] == ["get_modifiers", "set_source_voltage 1800", "use_source_meter", "toggle_DUT_power ON"]
    assert fake.calls[-1] == "toggle_DUT_power OFF"
    e = energy.measured_energy(window, volts=1.8, device_us=1000, iterations=10)
    assert e["joules"] == pytest.approx(0.012 * 1.8 * 1e-4) and e["label"].startswith("measured (PPK2)")


def test_ppk2_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ppk2_api", None)
    monkeypatch.setitem(sys.modules, "ppk2_api.ppk2_api", None)
    with pytest.raises(energy.PPK2Unavailable, match="pip install ppk2-api"):
        energy.PPK2Meter("/dev/ttyACM9").open()
    ir_file = tmp_path / "m.bpir.npz"
    IR.save(ir_file)
    res = CliRunner().invoke(app, ["bench", "--ir", str(ir_file), "--port", "loop://", "--ppk2", "/dev/ttyACM9",
                                   "--dataset", "npz", "--data-dir", str(_npz(tmp_path)), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "pip install ppk2-api" in res.output


def _npz(tmp_path: Path) -> Path:
    p = tmp_path / "data.npz"
    np.savez(p, x=X, y=Y)
    return p


def test_bench_command_over_a_socket_url(tmp_path: Path) -> None:
    ir_file = tmp_path / "m.bpir.npz"
    IR.save(ir_file)
    out = tmp_path / "out"
    with FakeServer(FakeDevice(IR)) as srv:
        args = ["bench", "--ir", str(ir_file), "--port", srv.url, "--dataset", "npz", "--data-dir",
                str(_npz(tmp_path)), "--images", "6", "--paths", "0,auto", "--out", str(out), "--no-progress"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "6 images on qemu_f405" in res.output and "mismatches 0" in res.output
        r = json.loads((out / "results.json").read_text())
        assert list(r["paths"]) == [IR.path_names[0], "auto"] and r["measurements"] == 12
        res = CliRunner().invoke(app, args)  # the log exists: refuse to overwrite it
        assert res.exit_code == 1 and "--resume" in res.output
        res = CliRunner().invoke(app, [*args, "--images", "8", "--resume"])  # the last --images wins
        assert res.exit_code == 0, res.output
        assert json.loads((out / "results.json").read_text())["measurements"] == 16
    for name in ("bench.jsonl", "report.md", "report.html", "pareto.png"):
        assert (out / name).is_file()
