"""Fakes for the bench tests: a protocol-level fake device (with injectable faults) behind a
pyserial-like port or a TCP socket, the tiny test IR, and a fake PPK2."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bitpath.codegen.plan import plan
from bitpath.export.runner import Runner

_TINY = Path(__file__).resolve().parents[1] / "codegen" / "tiny_ir.py"


def tiny_ir():
    """The codegen tests' fixed two-path IR (8x8x1 input, 3 classes), loaded by file path."""
    name = "bench_tiny_ir_src"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _TINY)
        mod = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name].tiny_ir()


def dataset(ir, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random images; labels = path 0's prediction for the first half, shuffled for the rest."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *ir.header["input"]["shape"])).astype(np.uint8)
    r = Runner(ir)
    y = np.array([int(np.argmax(r.run(xi, 0))) for xi in x])
    y[n // 2:] = rng.integers(0, num_classes(ir), n - n // 2)
    return x, y


def num_classes(ir) -> int:
    return int(ir.header.get("num_classes") or ir.graph[-1]["out_shape"][-1])


BOOT = b"m-timestamp-mode-performance\r\nm-lap-us-0\r\nm-init-done\r\nm-ready\r\n"


@dataclass
class Faults:
    """Faults, by command number (1-based count of `%`-terminated commands the device parsed) or
    by byte probability."""

    reset_at: set[int] = field(default_factory=set)  # the device resets instead of answering
    reset_after: set[int] = field(default_factory=set)  # resets right after answering (stale boot lines)
    garble_at: set[int] = field(default_factory=set)  # one digit of the reply is changed
    silent_at: set[int] = field(default_factory=set)  # no reply at all (a lost m-ready)
    dead_after: int | None = None  # stops answering for good
    drop_in: float = 0.0  # probability of dropping each host->device byte
    drop_out: float = 0.0  # probability of dropping each device->host byte
    bug: set[tuple[int, int]] = field(default_factory=set)  # (input checksum, path): wrong logits, for real
    changed_hash_after_reset: bool = False
    seed: int = 1


class FakeDevice:
    """The MLPerf Tiny protocol + bp-* extensions, computing logits with the numpy reference."""

    def __init__(self, ir, faults: Faults | None = None, *, controller: bool = True) -> None:
        self.ir = ir
        self.runner = Runner(ir)
        self.f = faults or Faults()
        self.rng = np.random.default_rng(self.f.seed)
        self.controller = controller
        self.input_bytes = int(np.prod(ir.header["input"]["shape"]))
        self.layers = len(plan(ir).steps)
        self.paths = len(ir.path_names)
        self.ir_hash = ir.content_hash()[:16]
        self.commands = 0
        self.resets = 0
        self.out = bytearray()
        self._cmd = bytearray()
        self._boot_state()

    def _boot_state(self) -> None:
        self.db = bytearray()
        self.expect = 0
        self.path: int | str = "auto" if self.controller else 0
        self.last: tuple | None = None
        self.clock_us = 1000

    # ------------------------------------------------------------ byte level
    def feed(self, data: bytes) -> None:
        for b in data:
            if self.f.drop_in and self.rng.random() < self.f.drop_in:
                continue
            if b == ord("%"):
                cmd = self._cmd.decode("ascii", errors="replace").strip()
                self._cmd.clear()
                self.commands += 1
                self._respond(cmd)
            else:
                self._cmd.append(b)

    def _emit(self, data: bytes) -> None:
        if self.f.drop_out:
            data = bytes(b for b in data if self.rng.random() >= self.f.drop_out)
        self.out += data

    def _respond(self, cmd: str) -> None:
        n = self.commands
        if self.f.dead_after is not None and n > self.f.dead_after:
            return
        if n in self.f.reset_at:
            self._reset()
            return
        if n in self.f.silent_at:
            return
        lines = self.handle(cmd)
        text = "".join(f"{ln}\r\n" for ln in lines) + "m-ready\r\n"
        if n in self.f.garble_at:
            digits = [k for k, ch in enumerate(text) if ch.isdigit()]
            if digits:
                k = digits[len(digits) // 2]
                text = text[:k] + str((int(text[k]) + 1) % 10) + text[k + 1:]
        self._emit(text.encode())
        if n in self.f.reset_after:
            self._reset()

    def _reset(self) -> None:
        self.resets += 1
        self._boot_state()
        if self.f.changed_hash_after_reset:
            self.ir_hash = "0123456789abcdef"
        self._emit(BOOT)

    # ------------------------------------------------------------ protocol
    def _costs(self, x: bytes, path: int, auto: bool) -> tuple[int, list[int]]:
        s = sum(x) % 7
        return (50 + s if auto else 0), [1000 * (k + 1) + 100 * path + s for k in range(self.layers)]

    def handle(self, cmd: str) -> list[str]:
        tok = cmd.split()
        if not tok:
            return []
        c, args = tok[0], tok[1:]
        if c == "name":
            return ["m-name-dut-[bitpath-fake]"]
        if c == "profile":
            return ["m-profile-[ULPMark for tinyML Firmware V0.0.1]", "m-model-[ic01]"]
        if c == "db":
            if args[:1] == ["load"]:
                if len(args) != 2 or not args[1].isdigit() or not 0 < int(args[1]) <= 4096:
                    return [f"e-[db load: bad size {args[1:]}]"]
                self.expect, self.db = int(args[1]), bytearray()
                return [f"m-[Expecting {self.expect} bytes]"]
            if len(args) != 1 or len(args[0]) % 2:
                return ["e-[Insufficent number of hex digits]"]
            try:
                chunk = bytes.fromhex(args[0])
            except ValueError:
                return [f"e-[db: not a hex digit in: {args[0]}]"]
            if not self.expect:
                return ["e-[db: no transfer announced; send 'db load N' first]"]
            if len(self.db) + len(chunk) > self.expect:
                return [f"e-[db: {len(chunk)} bytes exceed the {self.expect - len(self.db)} still expected]"]
            self.db += chunk
            return ["m-load-done"] if len(self.db) == self.expect else []
        if c == "infer":
            if len(self.db) != self.input_bytes or self.expect != self.input_bytes:
                return [f"e-[infer: input incomplete, {len(self.db)} of {self.input_bytes} bytes loaded]"]
            iters = int(args[0]) if args else 1
            warm = int(args[1]) if len(args) > 1 else 10
            x = bytes(self.db)
            auto = self.path == "auto"
            p = (sum(x) % self.paths) if auto else int(self.path)
            arr = np.frombuffer(x, np.uint8).reshape(self.ir.header["input"]["shape"])
            logits = [int(v) for v in self.runner.run(arr, p)]
            if (sum(x), p) in self.f.bug:
                logits[0] += 1
            ctrl, layers = self._costs(x, p, auto)
            self.last = (logits, p, ctrl, layers)
            t0 = self.clock_us
            self.clock_us += iters * (sum(layers) + ctrl) // 1000
            return [f"m-warmup-start-{warm}", "m-warmup-done", f"m-infer-start-{iters}", f"m-lap-us-{t0}",
                    f"m-lap-us-{self.clock_us}", "m-infer-done", f"m-results-[{','.join(map(str, logits))}]"]
        if c == "results":
            return ["e-[results: no inference has run]"] if self.last is None else \
                [f"m-results-[{','.join(map(str, self.last[0]))}]"]
        if c == "bp-path":
            if args:
                if args[0] == "auto":
                    if not self.controller:
                        return ["e-[bp-path: the model has no controller]"]
                    self.path = "auto"
                elif args[0].isdigit() and int(args[0]) < self.paths:
                    self.path = int(args[0])
                else:
                    return [f"e-[bp-path: no path {args[0]}]"]
            return [f"m-bp-path-[{self.path}]"]
        if c == "bp-chosen":
            return ["e-[bp-chosen: no inference has run]"] if self.last is None else [f"m-bp-chosen-[{self.last[1]}]"]
        if c == "bp-layers":
            if self.last is None:
                return ["e-[bp-layers: no inference has run]"]
            _, _, ctrl, layers = self.last
            return ["m-bp-unit-[instructions (emulated)]", f"m-bp-controller-[{ctrl}]",
                    f"m-bp-layers-[{','.join(map(str, layers))}]", f"m-bp-total-[{ctrl + sum(layers)}]"]
        if c == "bp-info":
            return ["m-bp-protocol-[1]", "m-bp-board-[qemu_f405]", "m-bp-counter-[instructions (emulated),1000000000]",
                    "m-bp-db-capacity-[4096]", "m-bp-model-[fake-tiny]", f"m-bp-ir-hash-[{self.ir_hash}]",
                    f"m-bp-input-bytes-[{self.input_bytes}]", f"m-bp-classes-[{num_classes(self.ir)}]",
                    f"m-bp-paths-[{self.paths}]",
                    *[f"m-bp-path-name-[{k},{n}]" for k, n in enumerate(self.ir.path_names)],
                    f"m-bp-layers-count-[{self.layers}]", f"m-bp-controller-[{'yes' if self.controller else 'no'}]",
                    "m-bp-arena-bytes-[512]"]
        return [f"e-[Unknown command: {c}]"]


class FakePort:
    """Enough of a pyserial port for :class:`bitpath.device.client.Client` (``port=``)."""

    def __init__(self, device: FakeDevice) -> None:
        self.dev = device
        self.is_open = True
        self.written = 0

    @property
    def in_waiting(self) -> int:
        return len(self.dev.out)

    def write(self, data: bytes) -> int:
        self.written += len(data)
        self.dev.feed(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def read(self, n: int = 1) -> bytes:
        out = bytes(self.dev.out[:n])
        del self.dev.out[:n]
        if not out:
            threading.Event().wait(0.001)
        return out

    def reset_input_buffer(self) -> None:
        self.dev.out.clear()

    def close(self) -> None:
        self.is_open = False


class FakeServer:
    """The fake device on a TCP port (``socket://127.0.0.1:PORT``), one client at a time."""

    def __init__(self, device: FakeDevice) -> None:
        self.dev = device
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.05)
                while not self._stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        data = None
                    except OSError:
                        break
                    if data == b"":
                        break
                    if data:
                        self.dev.feed(data)
                    if self.dev.out:
                        out = bytes(self.dev.out)
                        self.dev.out.clear()
                        conn.sendall(out)


class FakePPK2:
    """ppk2-api's PPK2_API surface: a constant current (µA) while measuring, recorded calls."""

    def __init__(self, port: str, current_ua: float = 12_000.0, chunk: int = 100) -> None:
        self.port = port
        self.current_ua = current_ua
        self.chunk = chunk
        self.calls: list[str] = []
        self.measuring = False

    def get_modifiers(self) -> None:
        self.calls.append("get_modifiers")

    def use_ampere_meter(self) -> None:
        self.calls.append("use_ampere_meter")

    def use_source_meter(self) -> None:
        self.calls.append("use_source_meter")

    def set_source_voltage(self, mV: int) -> None:  # noqa: N803
        self.calls.append(f"set_source_voltage {mV}")

    def toggle_DUT_power(self, state: str) -> None:  # noqa: N802
        self.calls.append(f"toggle_DUT_power {state}")

    def start_measuring(self) -> None:
        self.calls.append("start_measuring")
        self.measuring = True

    def stop_measuring(self) -> None:
        self.calls.append("stop_measuring")
        self.measuring = False

    def get_data(self) -> bytes:
        return b"\x01" * self.chunk if self.measuring else b""

    def get_samples(self, buf: bytes):
        return [self.current_ua] * len(buf), [0] * len(buf)
