"""The escalating controller on the emulated Cortex-M4: under `bp-path auto` the device runs the same
stages as the host reference and returns the same path with bit-exact logits, and its cost report
splits the run honestly (earlier stages and decisions are controller, the returned run is layers)."""

from __future__ import annotations

import pytest
from board_util import board_fixture, synced_client
from test_escalate_codegen import FINAL, STAGE_PATHS, escalate_ir
from tiny_ir import varied_images

from bitpath.export.runner import Runner

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    with board_fixture(escalate_ir(), tmp_path_factory, "esc-model") as b:
        yield b


@pytest.fixture
def dev(board):
    with synced_client(board[1].url) as d:
        yield d


def test_auto_runs_the_host_stages_bit_exact(board, dev) -> None:
    ir = board[0]
    runner = Runner(ir)
    info = dev.info()
    assert info.has_controller and info.ir_hash == ir.content_hash()[:16] and info.paths == 3
    assert dev.get_path() == "auto", "a model with a controller boots in auto mode"
    exits = []
    for i, x in enumerate(varied_images(21, 64)):
        logits, path, costs = dev.run(x.tobytes(), "auto")
        want_path, want, exit_stage = runner.run_escalate(x)
        assert path == want_path, f"input {i}"
        assert list(logits) == want.tolist(), f"input {i}"
        assert costs.total == costs.controller + sum(costs.layers), f"input {i}"
        assert min(costs.layers) > 0, f"input {i}"
        if exit_stage == 0:  # accepted at once: the controller is only the margin test, far below one run
            assert 0 < costs.controller < sum(costs.layers), f"input {i}"
        else:  # earlier stage runs count as controller: at least the first stage's whole run
            _, _, first = dev.run(x.tobytes(), STAGE_PATHS[0])
            assert costs.controller >= sum(first.layers), f"input {i}"
        exits.append(exit_stage)
    assert set(exits) == {0, 1, 2}, "every stage should accept some inputs and escalate others"
    assert dev.set_path("auto") == "auto"


def test_forced_paths_still_work_and_cost_no_controller(board, dev) -> None:
    ir = board[0]
    x = varied_images(22, 1)[0]
    for p in (*STAGE_PATHS, FINAL):
        logits, path, costs = dev.run(x.tobytes(), p)
        assert path == p and list(logits) == Runner(ir).run(x, p).tolist()
        assert costs.controller == 0 and costs.total == sum(costs.layers)
    assert dev.set_path("auto") == "auto"
