"""The generated controller on the emulated Cortex-M4: under `bp-path auto` the device picks the
same path as the host reference, with bit-exact logits, and reports the controller's own cost."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_ir import tiny_ir, with_controller

from bitpath.codegen import render
from bitpath.export.runner import Runner

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "pio") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: bash host/run.sh setup")
    from bitpath.device import build
    from bitpath.device.client import Client
    from bitpath.device.emulate import Emulator

    ir = with_controller(tiny_ir())
    gen_dir = Path(tmp_path_factory.mktemp("ctrl-model"))
    render(ir, gen_dir)
    elf = build.build("qemu_f405", model_dir=gen_dir)
    with Emulator(elf) as emu, Client(emu.url, timeout=10.0) as dev:
        dev.sync()
        yield ir, dev


def test_auto_picks_the_host_path_bit_exact(board) -> None:
    ir, dev = board
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


def test_forced_paths_still_work_and_cost_no_controller(board) -> None:
    ir, dev = board
    x = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    for p in (0, 1):
        logits, path, costs = dev.run(x.tobytes(), p)
        assert path == p and list(logits) == Runner(ir).run(x, p).tolist()
        assert costs.controller == 0
    assert dev.set_path("auto") == "auto"
