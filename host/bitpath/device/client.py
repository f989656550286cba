"""Host side of the MLPerf Tiny / EEMBC serial protocol and bitpath's `bp-*` extensions.

The client takes a pyserial URL (`/dev/ttyACM0`, `socket://127.0.0.1:PORT` for the emulated board,
`loop://` in tests) and opens it with `serial.serial_for_url`. Every command is sent as
`<command>%`; the reply is every line up to `m-ready`. An `e-[...]` line in a reply raises
`DeviceError` (after the whole reply has been read, so the link stays in step). The grammar is in
docs/protocol.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import serial

READY = "m-ready"
CMD_MAX = 80  # firmware limit (BP_CMD_MAX), bytes before '%'
MLPERF_CHUNK = 31  # bytes per `db` command, as the official runner sends them


class DeviceError(RuntimeError):
    """The device answered a command with one or more `e-[...]` lines."""

    def __init__(self, command: str, errors: Sequence[str], lines: Sequence[str]) -> None:
        self.command = command
        self.errors = list(errors)
        self.lines = list(lines)
        super().__init__(f"device refused {command!r}: " + "; ".join(errors))


class ProtocolError(RuntimeError):
    """The link broke the protocol: no `m-ready` in time, a malformed line, or a closed port."""


@dataclass(frozen=True)
class Reply:
    """All lines the device sent for one command, `m-ready` excluded."""

    command: str
    lines: tuple[str, ...]

    @property
    def errors(self) -> list[str]:
        """The text inside each `e-[...]` line (the whole line when it has no brackets)."""
        out = []
        for line in self.lines:
            if line.startswith("e-"):
                m = re.fullmatch(r"e-\[(.*)\]", line)
                out.append(m.group(1) if m else line[2:])
        return out

    def field(self, key: str) -> str:
        """Value of the first `m-<key>-[value]` line. Raises ProtocolError when absent."""
        for line in self.lines:
            m = re.fullmatch(rf"m-{re.escape(key)}-\[(.*)\]", line)
            if m:
                return m.group(1)
        raise ProtocolError(f"reply to {self.command!r} has no m-{key}-[...] line: {list(self.lines)}")


@dataclass(frozen=True)
class InferResult:
    """Outcome of `infer N W`."""

    logits: tuple[int, ...]
    iterations: int
    warmups: int
    start_us: int
    end_us: int

    @property
    def elapsed_us(self) -> int:
        """Device time of the N timed runs (the 32-bit microsecond timer may wrap once)."""
        return (self.end_us - self.start_us) % (1 << 32)

    @property
    def us_per_inference(self) -> float:
        return self.elapsed_us / self.iterations


@dataclass(frozen=True)
class LayerCosts:
    """`bp-layers`: cost of the last inference in the board's counter unit."""

    unit: str
    controller: int
    layers: tuple[int, ...]
    total: int


@dataclass(frozen=True)
class DeviceInfo:
    """`bp-info`."""

    protocol: int
    board: str
    counter_unit: str
    counter_hz: int
    db_capacity: int
    model: str
    ir_hash: str
    input_bytes: int
    classes: int
    paths: int
    path_names: tuple[str, ...]
    layers: int
    has_controller: bool
    arena_bytes: int


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ProtocolError(f"{what}: expected comma-separated integers, got {text!r}") from exc


class Client:
    """Speaks the benchmark protocol over one pyserial URL.

    Args:
        url: anything `serial.serial_for_url` accepts.
        timeout: seconds to wait for each reply line (the MLPerf runner uses 5).
        infer_timeout: seconds to wait for each line of an `infer` reply (runner: 30; the emulator
            and large N need more).
        baudrate: for real serial ports; ignored by socket:// and loop://.

    Example:
        >>> with Client("socket://127.0.0.1:4321") as dev:  # doctest: +SKIP
        ...     dev.load(image_bytes); dev.infer(1, 0).logits
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        infer_timeout: float = 120.0,
        baudrate: int = 115200,
        port: serial.SerialBase | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.infer_timeout = infer_timeout
        self._buf = bytearray()
        if port is not None:
            self._port = port
        else:
            try:
                self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise ProtocolError(f"cannot open {url!r}: {exc}") from exc

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        if self._port.is_open:
            self._port.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _readline(self, deadline: float, command: str) -> str:
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                raw = bytes(self._buf[: nl + 1])
                del self._buf[: nl + 1]
                return raw.decode("ascii", errors="replace").rstrip("\r\n")
            if time.monotonic() > deadline:
                partial = self._buf.decode("ascii", errors="replace")
                raise ProtocolError(f"no complete reply line to {command!r} within the timeout (partial: {partial!r})")
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise ProtocolError(f"reading {self.url!r} failed during {command!r}: {exc}") from exc
            if chunk:
                self._buf += chunk

    def read_reply(self, command: str = "", *, timeout: float | None = None) -> Reply:
        """Read lines until `m-ready`; each line gets `timeout` seconds (default self.timeout)."""
        per_line = self.timeout if timeout is None else timeout
        lines: list[str] = []
        while True:
            line = self._readline(time.monotonic() + per_line, command)
            if line == "":
                continue
            if READY in line:  # the runner's rule: a line *containing* m-ready ends the reply
                return Reply(command, tuple(lines))
            lines.append(line)

    def send(self, command: str, *, timeout: float | None = None) -> Reply:
        """Send `command%` and return the reply without raising on `e-` lines."""
        if "%" in command:
            raise ValueError(f"command must not contain the terminator '%': {command!r}")
        data = command.encode("ascii") + b"%"
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise ProtocolError(f"writing {command!r} to {self.url!r} failed: {exc}") from exc
        return self.read_reply(command, timeout=timeout)

    def command(self, command: str, *, timeout: float | None = None) -> Reply:
        """Send `command%`; raise DeviceError if the device answered with any `e-` line."""
        reply = self.send(command, timeout=timeout)
        if reply.errors:
            raise DeviceError(command, reply.errors, reply.lines)
        return reply

    def sync(self, *, timeout: float | None = None) -> None:
        """Drop stale input and send a bare `%`, which the firmware answers with only `m-ready`."""
        self._buf.clear()
        self._port.reset_input_buffer()
        self.command("", timeout=timeout)

    # ------------------------------------------------------------------ MLPerf Tiny commands

    def name(self) -> str:
        line = self.command("name").lines
        for text in line:
            m = re.fullmatch(r"m-name-dut-\[([^]]+)\]", text)
            if m:
                return m.group(1)
        raise ProtocolError(f"no m-name-dut-[...] in {list(line)}")

    def profile(self) -> tuple[str, str]:
        """(profile, model) from `m-profile-[...]` and `m-model-[...]`."""
        reply = self.command("profile")
        return reply.field("profile"), reply.field("model")

    def timestamp_us(self) -> int:
        reply = self.command("timestamp")
        for line in reply.lines:
            m = re.fullmatch(r"m-lap-us-(\d+)", line)
            if m:
                return int(m.group(1))
        raise ProtocolError(f"no m-lap-us- line in {list(reply.lines)}")

    def load(self, data: bytes, *, chunk: int = MLPERF_CHUNK) -> None:
        """`db load N` then `db <hex>` in chunks of `chunk` bytes (the runner's 31 by default)."""
        if not data:
            raise ValueError("nothing to load")
        if not 1 <= chunk <= (CMD_MAX - 3) // 2:
            raise ValueError(f"chunk must be 1..{(CMD_MAX - 3) // 2} bytes to fit one command")
        self.command(f"db load {len(data)}")
        last: Reply | None = None
        for i in range(0, len(data), chunk):
            last = self.command("db " + data[i : i + chunk].hex())
        if last is None or "m-load-done" not in last.lines:
            raise ProtocolError("the device did not acknowledge the load with m-load-done")

    def db_print(self, count: int | None = None, offset: int = 0) -> bytes:
        """Read back loaded bytes (`db print [N] [offset]`)."""
        cmd = "db print" if count is None else f"db print {count} {offset}"
        out = bytearray()
        for line in self.command(cmd).lines:
            if not line.startswith("m-buffer-"):
                raise ProtocolError(f"unexpected line in db print reply: {line!r}")
            out += bytes(int(h, 16) for h in line[len("m-buffer-") :].split("-"))
        return bytes(out)

    def infer(self, iterations: int = 1, warmups: int = 0) -> InferResult:
        """Run `infer N W` on the loaded input. The MLPerf default W is 10; bitpath's default is 0."""
        reply = self.command(f"infer {iterations} {warmups}", timeout=self.infer_timeout)
        laps = [int(m.group(1)) for line in reply.lines if (m := re.fullmatch(r"m-lap-us-(\d+)", line))]
        if len(laps) != 2 or "m-infer-done" not in reply.lines:
            raise ProtocolError(f"malformed infer reply: {list(reply.lines)}")
        logits = _ints(reply.field("results"), "m-results")
        return InferResult(logits, iterations, warmups, laps[0], laps[1])

    def results(self) -> tuple[int, ...]:
        return _ints(self.command("results").field("results"), "m-results")

    # ------------------------------------------------------------------ bitpath extensions

    def set_path(self, path: int | str) -> int | str:
        """Force bit-path `path` (int) or let the controller choose ("auto")."""
        if path != "auto" and not (isinstance(path, int) and path >= 0):
            raise ValueError(f"path must be a non-negative int or 'auto', not {path!r}")
        value = self.command(f"bp-path {path}").field("bp-path")
        return value if value == "auto" else int(value)

    def get_path(self) -> int | str:
        value = self.command("bp-path").field("bp-path")
        return value if value == "auto" else int(value)

    def chosen_path(self) -> int:
        return int(self.command("bp-chosen").field("bp-chosen"))

    def layer_costs(self) -> LayerCosts:
        reply = self.command("bp-layers")
        return LayerCosts(
            unit=reply.field("bp-unit"),
            controller=int(reply.field("bp-controller")),
            layers=_ints(reply.field("bp-layers"), "bp-layers"),
            total=int(reply.field("bp-total")),
        )

    def calibrate(self, n: int) -> int:
        """Counter delta around a 2n-instruction loop (`bp-calib N`)."""
        iters, delta = _ints(self.command(f"bp-calib {n}").field("bp-calib"), "bp-calib")
        if iters != n:
            raise ProtocolError(f"bp-calib echoed {iters}, asked {n}")
        return delta

    def info(self) -> DeviceInfo:
        reply = self.command("bp-info")
        unit, _, hz = reply.field("bp-counter").rpartition(",")
        names = []
        for line in reply.lines:
            m = re.fullmatch(r"m-bp-path-name-\[(\d+),(.*)\]", line)
            if m:
                names.append(m.group(2))
        return DeviceInfo(
            protocol=int(reply.field("bp-protocol")),
            board=reply.field("bp-board"),
            counter_unit=unit,
            counter_hz=int(hz),
            db_capacity=int(reply.field("bp-db-capacity")),
            model=reply.field("bp-model"),
            ir_hash=reply.field("bp-ir-hash"),
            input_bytes=int(reply.field("bp-input-bytes")),
            classes=int(reply.field("bp-classes")),
            paths=int(reply.field("bp-paths")),
            path_names=tuple(names),
            layers=int(reply.field("bp-layers-count")),
            has_controller=reply.field("bp-controller") == "yes",
            arena_bytes=int(reply.field("bp-arena-bytes")),
        )

    def run(self, data: bytes, path: int | str | None = None) -> tuple[tuple[int, ...], int, LayerCosts]:
        """Load one input, optionally set the path, run it once: (logits, chosen path, costs)."""
        if path is not None:
            self.set_path(path)
        self.load(data)
        result = self.infer(1, 0)
        return result.logits, self.chosen_path(), self.layer_costs()
