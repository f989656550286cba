"""bitpath.device.client against loop://, a scripted fake device, and the real parser (native build)."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import fw_testmodel_ref as ref
import pytest
import serial

from bitpath.device.client import Client, DeviceError, ProtocolError


class FakePort:
    """Minimal pyserial-like port: each complete `...%` command is answered by `handler`."""

    def __init__(self, handler: Callable[[str], str]) -> None:
        self.handler = handler
        self.commands: list[str] = []
        self._pending = b""
        self._rx = bytearray()
        self.is_open = True

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def write(self, data: bytes) -> int:
        self._pending += data
        while b"%" in self._pending:
            cmd, _, self._pending = self._pending.partition(b"%")
            self.commands.append(cmd.decode())
            self._rx += self.handler(cmd.decode()).encode()
        return len(data)

    def flush(self) -> None:
        pass

    def read(self, n: int) -> bytes:
        if not self._rx:
            time.sleep(0.005)
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def close(self) -> None:
        self.is_open = False


class HarnessPort(FakePort):
    """The firmware's own protocol + test model (native host_harness) behind a port."""

    def __init__(self, exe: Path) -> None:
        super().__init__(lambda _c: "")
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 4096):
            with self._lock:
                self._rx += chunk

    @property
    def in_waiting(self) -> int:
        with self._lock:
            return len(self._rx)

    def write(self, data: bytes) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        return len(data)

    def read(self, n: int) -> bytes:
        if not self.in_waiting:
            time.sleep(0.002)
        with self._lock:
            out = bytes(self._rx[:n])
            del self._rx[:n]
        return out

    def reset_input_buffer(self) -> None:
        with self._lock:
            self._rx.clear()

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def scripted(replies: dict[str, str]) -> Callable[[str], str]:
    def handler(cmd: str) -> str:
        return replies.get(cmd, f"e-[Unknown command: {cmd}]\r\n") + "m-ready\r\n"

    return handler


def test_loop_url_without_device_times_out_with_a_clear_error() -> None:
    with Client("loop://", timeout=0.3) as dev:
        with pytest.raises(ProtocolError, match="no complete reply line to 'name'"):
            dev.name()


def test_unopenable_url_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="cannot open"):
        Client("socket://127.0.0.1:1")


def test_error_line_raises_and_link_stays_in_step() -> None:
    port = FakePort(scripted({"name": "m-name-dut-[x]\r\n", "db 0": "e-[Insufficent number of hex digits]\r\n"}))
    dev = Client("fake://", port=port)  # type: ignore[arg-type]
    with pytest.raises(DeviceError) as info:
        dev.command("db 0")
    assert info.value.errors == ["Insufficent number of hex digits"]
    assert info.value.command == "db 0"
    assert dev.name() == "x"  # the m-ready of the failed command was consumed


def test_send_does_not_raise_and_keeps_all_lines() -> None:
    port = FakePort(scripted({"foo": "e-[one]\r\ne-[two]\r\nm-extra\r\n"}))
    reply = Client("fake://", port=port).send("foo")  # type: ignore[arg-type]
    assert reply.errors == ["one", "two"]
    assert reply.lines == ("e-[one]", "e-[two]", "m-extra")


def test_ready_may_be_embedded_like_the_runner_accepts() -> None:
    port = FakePort(lambda c: "m-name-dut-[y]\r\n[dut]: m-ready\r\n")
    assert Client("fake://", port=port).name() == "y"  # type: ignore[arg-type]


def test_load_uses_31_byte_chunks_and_needs_load_done() -> None:
    data = bytes(range(100))
    expected = 0

    def handler(cmd: str) -> str:
        nonlocal expected
        if cmd.startswith("db load "):
            expected = int(cmd.split()[2])
            return f"m-[Expecting {expected} bytes]\r\nm-ready\r\n"
        expected -= len(cmd[3:]) // 2
        return ("m-load-done\r\n" if expected == 0 else "") + "m-ready\r\n"

    port = FakePort(handler)
    Client("fake://", port=port).load(data)  # type: ignore[arg-type]
    assert port.commands[0] == "db load 100"
    assert [len(c) - 3 for c in port.commands[1:]] == [62, 62, 62, 14]
    assert bytes.fromhex("".join(c[3:] for c in port.commands[1:])) == data

    silent = FakePort(lambda c: "m-ready\r\n")
    with pytest.raises(ProtocolError, match="m-load-done"):
        Client("fake://", port=silent).load(data)  # type: ignore[arg-type]


def test_bad_arguments_are_refused_before_sending() -> None:
    port = FakePort(scripted({}))
    dev = Client("fake://", port=port)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        dev.load(b"")
    with pytest.raises(ValueError):
        dev.load(b"x", chunk=39)
    with pytest.raises(ValueError):
        dev.set_path(-1)
    with pytest.raises(ValueError):
        dev.send("name%")
    assert port.commands == []


def test_malformed_infer_reply_is_a_protocol_error() -> None:
    port = FakePort(scripted({"infer 1 0": "m-warmup-start-0\r\nm-warmup-done\r\nm-results-[1,2]\r\n"}))
    with pytest.raises(ProtocolError, match="malformed infer reply"):
        Client("fake://", port=port).infer(1, 0)  # type: ignore[arg-type]
    port = FakePort(scripted({"infer 1 0": "m-lap-us-1\r\nm-lap-us-2\r\nm-infer-done\r\nm-results-[1,x]\r\n"}))
    with pytest.raises(ProtocolError, match="comma-separated integers"):
        Client("fake://", port=port).infer(1, 0)  # type: ignore[arg-type]


def test_infer_result_wraps_the_32_bit_timer() -> None:
    lines = "m-infer-start-2\r\nm-lap-us-4294967290\r\nm-lap-us-10\r\nm-infer-done\r\nm-results-[-5,7]\r\n"
    result = Client("fake://", port=FakePort(scripted({"infer 2 0": lines}))).infer(2, 0)  # type: ignore[arg-type]
    assert result.logits == (-5, 7)
    assert result.elapsed_us == 16
    assert result.us_per_inference == 8


@pytest.fixture()
def harness_client(harness_bin: Path) -> Iterator[Client]:
    port = HarnessPort(harness_bin)
    dev = Client("harness://", port=port, timeout=10)  # type: ignore[arg-type]
    dev.read_reply("boot")
    yield dev
    dev.close()


def test_client_against_the_real_parser(harness_client: Client) -> None:
    dev = harness_client
    assert dev.name() == "bitpath-host"
    assert dev.profile() == ("ULPMark for tinyML Firmware V0.0.1", "bptest01")
    info = dev.info()
    assert (info.input_bytes, info.classes, info.paths, info.layers) == (784, 10, 3, 3)
    assert info.has_controller and len(info.path_names) == 3
    rng = random.Random(5)
    for path in (0, 1, 2, "auto"):
        x = bytes(rng.randrange(256) for _ in range(784))
        logits, chosen, costs = dev.run(x, path)
        want, want_path = ref.run(x, None if path == "auto" else path)
        assert list(logits) == want and chosen == want_path
        assert costs.layers == (1, 1, 1) and costs.unit == "fake counts"
        assert dev.db_print() == x and dev.db_print(5, 100) == x[100:105]
    assert dev.get_path() == "auto"
    assert dev.calibrate(10) == 21
    assert dev.results() == tuple(want)
    with pytest.raises(DeviceError, match="Unknown command: nope"):
        dev.command("nope")
    dev.sync()
    assert dev.timestamp_us() > 0


def test_client_works_with_a_real_serial_url_object() -> None:
    """serial_for_url objects are what the client opens for real URLs."""
    port = serial.serial_for_url("loop://", timeout=0.05)
    dev = Client("loop://", port=port, timeout=0.2)
    port.write(b"m-lap-us-42\r\nm-ready\r\n")  # loop:// hands written bytes back: a canned reply
    assert dev.read_reply("timestamp").lines == ("m-lap-us-42",)
    dev.close()
    assert not port.is_open
