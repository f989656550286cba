"""The official runner's way of talking to a DUT (serial.Serial on a device path, `%` framing,
lines until m-ready, its regular expressions) through the pure-Python pty bridge."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fakes import FakeDevice, FakeServer, dataset, tiny_ir  # noqa: E402

from bitpath.bench.mlperf import RunnerSerial, UrlPortDevice, replay  # noqa: E402
from bitpath.bench.ptybridge import PtyBridge  # noqa: E402
from bitpath.export.runner import Runner  # noqa: E402

IR = tiny_ir()
X, _ = dataset(IR, 3)


def _check(got: dict, x: np.ndarray) -> None:
    assert got["name"] == "bitpath-fake" and got["profile"].startswith("ULPMark") and got["model"] == "ic01"
    assert "m-load-done" in got["load_reply"]
    want = Runner(IR).run(x, int(x.sum()) % 2).tolist()  # the fake's controller picks the path
    assert got["results"] == [float(v) for v in want]
    assert len(got["laps_us"]) == 2 and got["laps_us"][1] > got["laps_us"][0]


def test_runner_sequence_through_the_pty_bridge(tmp_path: Path) -> None:
    link = tmp_path / "ttyBP"
    with FakeServer(FakeDevice(IR)) as srv, PtyBridge(srv.url, link=link) as bridge:
        assert os.path.realpath(link) == bridge.path and bridge.path.startswith("/dev/pts/")
        for x in X:
            with RunnerSerial(str(link), timeout=5.0) as dev:  # opened per session, as the runner does
                _check(replay(dev, x.tobytes(), iterations=3, warmups=1), x)
        assert bridge.bytes_to_device > 3 * len(X[0]) * 2 and bridge.error is None
    assert not link.exists()


def test_runner_interface_over_a_socket_url() -> None:
    with FakeServer(FakeDevice(IR)) as srv, UrlPortDevice(srv.url) as dev:
        _check(replay(dev, X[0].tobytes()), X[0])
        # like the runner's SerialDevice: the m-ready line is part of the reply; one line comes back bare
        assert dev.send_command("bogus") == ["e-[Unknown command: bogus]", "m-ready"]
        assert dev.send_command("") == "m-ready"
