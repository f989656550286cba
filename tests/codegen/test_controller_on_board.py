"""The generated controller on the emulated Cortex-M4: under `bp-path auto` the device picks the
same path as the host reference, with bit-exact logits, and reports the controller's own cost."""

from __future__ import annotations

import numpy as np
import pytest
from board_util import board_fixture, synced_client
from tiny_ir import tiny_ir, with_controller

from bitpath.export.runner import Runner

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    with board_fixture(with_controller(tiny_ir()), tmp_path_factory, "ctrl-model") as b:
        yield b


@pytest.fixture
def dev(board):
    with synced_client(board[1].url) as d:
        yield d


def test_auto_picks_the_host_path_bit_exact(board, dev) -> None:
    ir = board[0]
    runner = Runner(ir)
    info = dev.info()
    assert info.has_controller and info.ir_hash == ir.content_hash()[:16]
    assert dev.get_path() == "auto", "a model with a controller boots in auto mode"
    rng = np.random.default_rng(21)
    chosen = []
    for i in range(80):
        x = rng.integers(0, 256, (8, 8, 1)).astype(np.uint8)
        logits, path, costs = dev.run(x.tobytes(), "auto")
        want_path, want = runner.run_auto(x)
        assert path == want_path, f"input {i}"
        assert list(logits) == want.tolist(), f"input {i}"
        assert costs.controller > 0 and costs.total == costs.controller + sum(costs.layers)
        chosen.append(path)
    assert set(chosen) == {0, 1}


def test_forced_paths_still_work_and_cost_no_controller(board, dev) -> None:
    ir = board[0]
    x = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    for p in (0, 1):
        logits, path, costs = dev.run(x.tobytes(), p)
        assert path == p and list(logits) == Runner(ir).run(x, p).tolist()
        assert costs.controller == 0
    assert dev.set_path("auto") == "auto"


def test_bench_checks_the_device_choice_against_the_host(board, tmp_path) -> None:
    """`bitpath bench` records, for `auto`, the host controller's choice next to the device's."""
    from bitpath.bench import results
    from bitpath.bench.boards import profile
    from bitpath.bench.link import BenchClient
    from bitpath.bench.run import Bench, BenchConfig

    ir, emu = board
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (12, 8, 8, 1)).astype(np.uint8)
    y = rng.integers(0, 3, 12)
    with BenchClient(emu.url, timeout=10.0, infer_timeout=30.0) as bdev:
        Bench(bdev, ir, x, y, tmp_path / "b.jsonl", profile=profile("qemu_f405"), log=lambda s: None,
              config=BenchConfig(images=12, paths=["auto"])).run()
    r = results.from_log(tmp_path / "b.jsonl")
    a = r["paths"]["auto"]
    assert a["images"] == 12 and a["mismatches"] == 0 and a["path_mismatches"] == 0
    runner = Runner(ir)
    want = {ir.path_names[p]: n for p, n in zip(*np.unique([runner.choose(xi) for xi in x], return_counts=True),
                                                     strict=True)}
    assert a["chosen"] == want
    assert a["controller"]["mean"] > 0
