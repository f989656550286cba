"""The generated model on the emulated Cortex-M4 (DSP kernels) answers over the serial protocol with
exactly the numpy reference's logits, on every path, and survives malformed commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from board_util import emulated
from tiny_ir import tiny_ir

from bitpath.export.runner import Runner

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):
    from bitpath.device.client import Client

    ir = tiny_ir()
    with emulated(ir, Path(tmp_path_factory.mktemp("model"))) as emu, Client(emu.url, timeout=10.0) as dev:
        dev.sync()
        yield ir, dev


def test_logits_bit_exact_on_every_path(board) -> None:
    ir, dev = board
    runner = Runner(ir)
    info = dev.info()
    assert info.paths == 2 and info.classes == 3 and info.ir_hash == ir.content_hash()[:16]
    rng = np.random.default_rng(3)
    for i in range(100):
        x = rng.integers(0, 256, (8, 8, 1)).astype(np.uint8) if i else np.full((8, 8, 1), 255, np.uint8)
        dev.load(x.tobytes())
        for p in range(2):
            dev.set_path(p)
            got = dev.infer(1, 0).logits
            assert list(got) == runner.run(x, p).tolist(), f"input {i}, path {p}"
            assert dev.chosen_path() == p
        costs = dev.layer_costs()
        assert len(costs.layers) == 7 and all(c > 0 for c in costs.layers)


def test_malformed_commands_then_a_correct_inference(board) -> None:
    from bitpath.device.client import DeviceError

    ir, dev = board
    for bad in ("db zz", "db load -5", "infer 0", "bp-path 7", "bp-path auto", "nonsense"):
        with pytest.raises(DeviceError):
            dev.command(bad)
    x = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    dev.load(x.tobytes())
    dev.set_path(1)
    assert list(dev.infer(1, 0).logits) == Runner(ir).run(x, 1).tolist()
