"""`bitpath bench` on the emulated Cortex-M4: a generated model answers every image on every path
bit-exactly, costs come from the board, the log resumes, and the official runner's sequence works
through the pty bridge."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fakes import dataset, tiny_ir  # noqa: E402

from bitpath.bench import report, results  # noqa: E402
from bitpath.bench.boards import profile  # noqa: E402
from bitpath.bench.link import BenchClient  # noqa: E402
from bitpath.bench.mlperf import RunnerSerial, replay  # noqa: E402
from bitpath.bench.ptybridge import PtyBridge  # noqa: E402
from bitpath.bench.run import Bench, BenchConfig, ResultLog, sha256_file  # noqa: E402
from bitpath.export.runner import Runner  # noqa: E402

pytestmark = pytest.mark.emulator
IR = tiny_ir()
N = 24


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "pio") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: bash host/run.sh setup")
    from bitpath.codegen import render
    from bitpath.device import build
    from bitpath.device.emulate import Emulator

    gen = Path(tmp_path_factory.mktemp("model"))
    render(IR, gen)
    elf = build.build("qemu_f405", model_dir=gen)
    with Emulator(elf) as emu:
        yield emu, elf


def test_bench_on_the_emulated_board(board, tmp_path: Path) -> None:
    emu, elf = board
    x, y = dataset(IR, N, seed=5)
    log = tmp_path / "bench.jsonl"
    fw = {"elf": str(elf), "sha256": sha256_file(elf)}
    with BenchClient(emu.url, timeout=10.0, infer_timeout=30.0) as dev:
        Bench(dev, IR, x, y, log, profile=profile("qemu_f405"), log=lambda s: None,
              config=BenchConfig(images=N, extra={"firmware": fw})).run()
    _, recs = ResultLog.read(log)
    ms = [r for r in recs if r["kind"] == "m"]
    assert len(ms) == N * 2  # two static paths, no controller in this model
    runner = Runner(IR)
    for r in ms:
        assert r["match"] and r["logits"] == runner.run(x[r["i"]], r["path"]).tolist()
        assert r["total"] == sum(r["layers"]) and r["controller"] == 0 and min(r["layers"]) > 0
        assert r["attempts"] == 1
    res = results.from_log(log)
    assert res["unit"] == "instructions (emulated)" and res["board"]["device"] == "qemu_f405"
    assert res["firmware"]["sha256"] == fw["sha256"]
    for e in res["paths"].values():
        assert e["mismatches"] == 0 and e["images"] == N
        # emulated instructions at 168 MHz: the estimated time agrees with the cost
        assert e["time_us"]["mean"] == pytest.approx(e["cost"]["mean"] / 168.0)
    # path 0 labels are its own predictions on the first half
    assert res["paths"][IR.path_names[0]]["correct"] >= N // 2
    files = report.write(res, tmp_path / "report")
    assert files["html"].stat().st_size > 10_000
    # resume: nothing left to measure, nothing duplicated
    with BenchClient(emu.url, timeout=10.0) as dev:
        Bench(dev, IR, x, y, log, profile=profile("qemu_f405"), resume=True, log=lambda s: None,
              config=BenchConfig(images=N)).run()
    assert len(ResultLog.read(log)[1]) == len(recs) + 1  # just the "resumed" event


def test_runner_sequence_on_the_emulated_board_through_a_pty(board) -> None:
    emu, _ = board
    x, _ = dataset(IR, 1, seed=9)
    with PtyBridge(emu.url) as bridge, RunnerSerial(bridge.path) as dev:
        # the board keeps the path the previous session forced; the runner never sets one
        assert dev.send_command("bp-path 1") == ["m-bp-path-[1]", "m-ready"]
        got = replay(dev, x[0].tobytes(), iterations=20, warmups=5)
    assert got["name"] == "bitpath-qemu_f405" and got["profile"] == "ULPMark for tinyML Firmware V0.0.1"
    assert "m-load-done" in got["load_reply"]
    assert got["results"] == [float(v) for v in Runner(IR).run(x[0], 1)]
    assert len(got["laps_us"]) == 2 and got["throughput_per_s"] > 0
