"""The firmware on the emulated board (QEMU netduinoplus2, STM32F405) through the real UART path."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fw_testmodel_ref as ref
import pytest

from bitpath.device.client import Client, DeviceError
from bitpath.device.emulate import Emulator, EmulatorError

pytestmark = pytest.mark.emulator


def gone(pid: int, timeout: float = 5.0) -> bool:
    """True once no process `pid` exists (reaped or never a zombie of ours)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and ") Z " in stat.read_text():
            return True  # a zombie has no resources left; its parent reaps it
        time.sleep(0.05)
    return False


def image(seed: int) -> bytes:
    return bytes(random.Random(seed).randrange(256) for _ in range(ref.INPUT_BYTES))


def test_boot_lines(emulator: Emulator) -> None:
    assert emulator.boot_lines[0] == "m-timestamp-mode-performance"
    assert re.fullmatch(r"m-lap-us-\d+", emulator.boot_lines[1])
    assert emulator.boot_lines[2:] == ["m-init-done"]


def test_identity(dev: Client) -> None:
    assert dev.name() == "bitpath-qemu_f405"
    assert dev.profile() == ("ULPMark for tinyML Firmware V0.0.1", "bptest01")
    info = dev.info()
    assert info.board == "qemu_f405"
    assert (info.counter_unit, info.counter_hz) == ("instructions (emulated)", 1_000_000_000)
    assert (info.input_bytes, info.classes, info.paths, info.layers, info.has_controller) == (784, 10, 3, 3, True)


def test_tim2_counts_exactly_one_per_instruction(dev: Client) -> None:
    """bp-calib N runs `subs; bne` N times (2N instructions): the count must be 2N + a constant."""
    deltas = {n: dev.calibrate(n) for n in (1, 2, 10, 1000, 123457, 5_000_000)}
    overhead = {d - 2 * n for n, d in deltas.items()}
    assert len(overhead) == 1, deltas
    assert 0 < overhead.pop() < 40


@pytest.mark.parametrize("path", [0, 1, 2, "auto"])
def test_inference_is_bit_exact_with_the_reference(dev: Client, path: int | str) -> None:
    for seed in range(3):
        x = image(100 + seed)
        logits, chosen, costs = dev.run(x, path)
        want, want_path = ref.run(x, None if path == "auto" else path)
        assert list(logits) == want
        assert chosen == want_path
        assert costs.unit == "instructions (emulated)"
        assert len(costs.layers) == 3 and all(c > 0 for c in costs.layers)
        assert (costs.controller > 0) == (path == "auto")
        assert costs.total == costs.controller + sum(costs.layers)


def test_instruction_counts_are_deterministic_and_follow_the_path(dev: Client) -> None:
    x = image(9)
    dev.load(x)
    per_path = {}
    for path in (0, 1, 2):
        dev.set_path(path)
        runs = []
        for _ in range(3):
            dev.infer(1, 0)
            runs.append(dev.layer_costs().layers)
        assert runs[0] == runs[1] == runs[2], runs  # -icount shift=0: no noise at all
        per_path[path] = runs[0]
    # layer 0 and 2 do the same work on every path; layer 1 runs 2(path+1) rounds
    assert per_path[0][0] == per_path[1][0] == per_path[2][0]
    assert per_path[0][2] == per_path[1][2] == per_path[2][2]
    step1, step2 = per_path[1][1] - per_path[0][1], per_path[2][1] - per_path[1][1]
    assert step1 == step2 > 0


MALFORMED = [
    ("db 0011", "no transfer announced"),
    ("db load 0", "must be >0"),
    ("db load -5", "not a non-negative decimal integer"),
    ("db load 4097", "exceed the buffer"),
    ("db load 784", None),
    ("db 0", "Insufficent number of hex digits"),
    ("db zz", "not a hex digit"),
    ("db " + "00" * 38, None),
    ("x" * 81, "longer than 80"),
    ("infer 0", "Inference iterations must be >0"),
    ("infer 1 0", "input incomplete"),
    ("infer -1", "Inference iterations must be >0"),
    ("bp-path 9", "not 'auto' or a path"),
    ("hello", "Unknown command: hello"),
]


def test_malformed_commands_then_a_correct_inference(qemu_elf: Path) -> None:
    with Emulator(qemu_elf) as emu, Client(emu.url) as dev:  # fresh board: nothing loaded yet
        _malformed_then_correct(dev)


def _malformed_then_correct(dev: Client) -> None:
    for cmd, error in MALFORMED:
        reply = dev.send(cmd)
        if error is None:
            assert reply.errors == [], (cmd, reply)
        else:
            assert len(reply.errors) == 1 and error in reply.errors[0], (cmd, reply)
    # a partial command with raw garbage bytes (NUL, 0xff) is refused as a whole
    dev._port.write(b"na\x00\xffme%")  # noqa: SLF001 - raw bytes the client's API never sends
    assert dev.read_reply("garbage").errors == ["Invalid byte 0x00 in command; ignored"]
    # overrun the transfer started above (38 of 784 bytes loaded): 19 more 38-byte chunks fit, the
    # 20th finds only 24 bytes left and is refused whole
    with pytest.raises(DeviceError, match="38 bytes exceed the 24 still expected"):
        for _ in range(20):
            dev.command("db " + "11" * 38)
    # the device still serves: a normal load and inference give the exact reference answer
    x = image(1)
    logits, chosen, _ = dev.run(x, 2)
    assert list(logits) == ref.run(x, 2)[0] and chosen == 2
    with pytest.raises(DeviceError, match="all announced bytes already loaded"):
        dev.command("db 00")
    assert dev.name() == "bitpath-qemu_f405"


def test_mlperf_runner_sequence(dev: Client) -> None:
    """Exactly what mlcommons/tiny benchmark/runner sends in performance mode, with its regexes."""
    name = dev.send("name").lines
    assert any(re.match(r"^m-(name)-dut-\[([^]]+)]$", line) for line in name)
    profile = dev.send("profile").lines
    assert {m.group(1) for line in profile if (m := re.match(r"^m-(model|profile)-\[([^]]+)]$", line))} == {
        "model",
        "profile",
    }
    x = image(42)
    reply = dev.send(f"db load {len(x)}")
    assert reply.lines == (f"m-[Expecting {len(x)} bytes]",)
    i = 0
    while i < len(x):
        reply = dev.send(f"db {''.join(f'{d:02x}' for d in x[i : i + 31])}")
        i += 31
        assert reply.errors == []
    assert reply.lines == ("m-load-done",)
    dev.set_path("auto")
    infer = dev.send("infer 20 5", timeout=120).lines
    assert infer[:3] == ("m-warmup-start-5", "m-warmup-done", "m-infer-start-20")
    laps = [int(m.group(1)) for line in infer if (m := re.match(r"^m-lap-us-([0-9]+)$", line))]
    assert len(laps) == 2 and laps[1] > laps[0]
    assert infer[-2] == "m-infer-done"
    m = re.match(r"^m-results-\[([^]]+)\]$", infer[-1])
    assert m
    results = [float(v) for v in m.group(1).split(",") if v.strip()]  # the runner's parse
    assert results == [float(v) for v in ref.run(x, None)[0]]
    assert dev.send("results").lines == (infer[-1],)
    # 20 runs of the test model: elapsed virtual us ~ 20 * instructions / 1000
    total = dev.layer_costs().total
    assert 0.5 * 20 * total / 1000 <= laps[1] - laps[0] <= 2 * 20 * total / 1000 + 50


def test_timestamps_advance(dev: Client) -> None:
    a = dev.timestamp_us()
    dev.calibrate(1_000_000)  # 2 ms of virtual time
    b = dev.timestamp_us()
    assert b - a >= 2000


def test_no_orphan_qemu_when_the_body_fails(qemu_elf: Path) -> None:
    pid = None
    with pytest.raises(RuntimeError, match="boom"):
        with Emulator(qemu_elf) as emu:
            pid = emu.pid
            with Client(emu.url) as d:
                assert d.name() == "bitpath-qemu_f405"
            raise RuntimeError("boom")
    assert pid is not None and gone(pid)


def test_qemu_dies_with_a_killed_parent(qemu_elf: Path) -> None:
    """Even SIGKILL of the owning Python process (no atexit, no finally) takes QEMU down."""
    code = (
        "import sys, time\n"
        "from bitpath.device.emulate import Emulator\n"
        f"e = Emulator({str(qemu_elf)!r}).start()\n"
        "print(e.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        qemu_pid = int(owner.stdout.readline())
        assert not gone(qemu_pid, timeout=0.2)
    finally:
        owner.kill()
        owner.wait()
    assert gone(qemu_pid)


# inherited: SIGINT as the CLI's parent leaves it; "ignored" is what a background job of a
# non-interactive shell passes on (CI runners, `cmd &` in scripts), where Python installs no
# KeyboardInterrupt handler by itself.
@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_emulate_cli_prints_url_and_stops_on_ctrl_c(qemu_elf: Path, sigint: str) -> None:
    disposition = signal.SIG_DFL if sigint == "default" else signal.SIG_IGN
    cli = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "bitpath", "emulate", "--elf", str(qemu_elf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
    )
    try:
        assert cli.stdout is not None and cli.stderr is not None
        url = cli.stdout.readline().strip()
        assert re.fullmatch(r"socket://127\.0\.0\.1:\d+", url), url
        qemu_pid = int(re.search(r"QEMU pid (\d+)", cli.stderr.readline()).group(1))  # type: ignore[union-attr]
        with Client(url) as d:
            assert d.name() == "bitpath-qemu_f405"
        cli.send_signal(signal.SIGINT)
        try:
            code = cli.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Say where it hangs: SIGABRT makes faulthandler print every thread's stack to stderr.
            cli.send_signal(signal.SIGABRT)
            _, err = cli.communicate(timeout=15)
            pytest.fail(f"`bitpath emulate` still running 15 s after SIGINT (SIGINT in this process: "
                        f"{signal.getsignal(signal.SIGINT)!r}); its stderr:\n{err}")
        assert code == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert gone(qemu_pid)


def test_missing_image_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="firmware image not found"):
        Emulator(tmp_path / "nope.elf").start()
