"""Driving bitpath firmware the way the official mlcommons/tiny runner does.

The runner (``benchmark/runner``) talks to a DUT through ``SerialDevice``: it opens the port with
``serial.Serial(path, baud, timeout=0.1)``, sends ``<command>%`` and collects ``\\n``-terminated
lines (dropping ``\\r`` and NUL) until one *contains* ``m-ready``; a reply of exactly one line is
returned as a string, otherwise as a list. Its ``DUT`` class accepts, instead of a port path, any
object with ``send_command`` / ``__enter__`` / ``__exit__``.

- :class:`RunnerSerial` re-implements that ``SerialDevice`` behaviour over a *device path* (a real
  USB serial port, or a pty from :class:`bitpath.bench.ptybridge.PtyBridge`), so CI can check that
  the firmware answers exactly what the runner parses;
- :class:`UrlPortDevice` is the same over any pyserial URL (``socket://`` for the emulated board):
  pass it as ``DUT(port_device=UrlPortDevice(url))`` to the runner's own classes;
- :func:`replay` sends the runner's command sequence (``name``, ``profile``, ``db load``, 31-byte
  ``db`` chunks, ``infer N W``) and parses the replies with the runner's regular expressions.

docs/mlperf-runner.md explains how to point the unmodified runner at a board or at the emulator.
"""

from __future__ import annotations

import re
import time

import serial

READY = "m-ready"
CHUNK = 31  # bytes per db command (26 with a power manager attached)

# the runner's own patterns (device_under_test.py, script.py)
NAME_RE = re.compile(r"^m-(name)-dut-\[([^]]+)]$")
PROFILE_RE = re.compile(r"^m-(model|profile)-\[([^]]+)]$")
RESULTS_RE = re.compile(r"^m-results-\[([^]]+)\]$")
LAP_RE = re.compile(r"m-lap-us-([0-9]*)")


class _LineDevice:
    """The runner's SerialDevice reply rule over an already-open pyserial object."""

    def __init__(self, port: serial.SerialBase, timeout: float = 5.0) -> None:
        self._port = port
        self._timeout = timeout
        self._msg = ""
        self._lines: list[str] = []

    def _read_line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while not self._lines:
            if time.monotonic() > deadline:
                return None
            data = self._port.read(max(1, self._port.in_waiting))
            for ch in data.decode("ascii", errors="replace"):
                if ch == "\n":
                    self._lines.append(self._msg)
                    self._msg = ""
                elif ch not in "\r\0":
                    self._msg += ch
        return self._lines.pop(0)

    def send_command(self, command: str, end: str | None = None, timeout: float | None = None):
        self._port.write((command + "%").encode())
        lines: list[str] = []
        while True:
            resp = self._read_line(self._timeout if timeout is None else timeout)
            if resp is None:
                raise RuntimeError(f"No response to command {command}")
            if resp:
                lines.append(resp)
            if (end or READY) in resp:
                break
        return lines if len(lines) != 1 else lines[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self._port.close()


class RunnerSerial(_LineDevice):
    """A device *path* opened exactly as the runner opens it: ``serial.Serial(path, baud, timeout=0.1)``."""

    def __init__(self, path: str, baud: int = 115200, timeout: float = 5.0) -> None:
        super().__init__(serial.Serial(path, baud, timeout=0.1), timeout)


class UrlPortDevice(_LineDevice):
    """Any pyserial URL (``socket://127.0.0.1:PORT``) with the runner's interface, for ``DUT(port_device=...)``."""

    def __init__(self, url: str, baud: int = 115200, timeout: float = 5.0) -> None:
        super().__init__(serial.serial_for_url(url, baudrate=baud, timeout=0.1), timeout)


def _as_list(reply) -> list[str]:
    return [reply] if isinstance(reply, str) else list(reply)


def replay(dev, data: bytes, *, iterations: int = 1, warmups: int = 0, infer_timeout: float = 30.0,
           chunk: int = CHUNK) -> dict:
    """The runner's sequence for one input; returns what the runner would extract."""
    out: dict = {}
    for line in _as_list(dev.send_command("name")):
        m = NAME_RE.match(line)
        if m:
            out["name"] = m.group(2)
    for line in _as_list(dev.send_command("profile")):
        m = PROFILE_RE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    dev.send_command(f"db load {len(data)}")
    last = None
    for i in range(0, len(data), chunk):
        last = dev.send_command("db " + "".join(f"{d:02x}" for d in data[i:i + chunk]))
    out["load_reply"] = _as_list(last)
    reply = _as_list(dev.send_command(f"infer {iterations} {warmups}", timeout=infer_timeout))
    out["infer_reply"] = reply
    for line in reply:
        m = RESULTS_RE.match(line)
        if m:
            out["results"] = [float(x) for x in m.group(1).split(",")]
    laps = [int(x) for x in LAP_RE.findall("\n".join(reply))]
    out["laps_us"] = laps
    if len(laps) == 2:
        out["throughput_per_s"] = iterations / ((laps[1] - laps[0]) / 1e6) if laps[1] > laps[0] else None
    return out
