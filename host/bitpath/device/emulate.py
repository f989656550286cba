"""Run the firmware on the emulated board: QEMU `netduinoplus2` (STM32F405, Cortex-M4F).

QEMU runs with `-icount shift=0`, so the board's TIM2 cost counter advances exactly one count per
executed instruction (DESIGN.md section 4; `bp-calib` checks it). The UART (USART1) is a raw TCP
server on 127.0.0.1; the emulator is handed out as a pyserial URL `socket://127.0.0.1:PORT`.

QEMU never outlives its owner: it runs in its own process group, is terminated by the context
manager and by an atexit hook, and on Linux gets SIGKILL from the kernel if the Python process dies
(PR_SET_PDEATHSIG).

Example:
    >>> with Emulator() as emu:  # doctest: +SKIP
    ...     with Client(emu.url) as dev:
    ...         print(dev.name())
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

from bitpath.device import build as _build

QEMU = "qemu-system-arm"
MACHINE = "netduinoplus2"
DEFAULT_ENV = "qemu_f405"

_live: weakref.WeakSet[Emulator] = weakref.WeakSet()
_live_lock = threading.Lock()


class EmulatorError(RuntimeError):
    """QEMU is missing, did not start, or the firmware did not boot (message has QEMU's log)."""


def _kill_all() -> None:
    with _live_lock:
        emus = list(_live)
    for emu in emus:
        emu.stop()


atexit.register(_kill_all)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_command(elf: Path, port: int, *, icount_shift: int = 0, machine: str = MACHINE) -> list[str]:
    """The QEMU command line: headless, deterministic instruction clock, UART on a TCP server.

    `wait=on` makes QEMU hold the guest until the first client connects, so the boot lines are
    never lost; later clients reconnect to the same server.
    """
    return [
        QEMU,
        "-M",
        machine,
        "-nodefaults",
        "-display",
        "none",
        "-monitor",
        "none",
        "-icount",
        f"shift={icount_shift}",
        "-kernel",
        str(elf),
        "-serial",
        f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
    ]


class Emulator:
    """One QEMU instance running the firmware; a context manager.

    Args:
        elf: firmware image; default: build the `qemu_f405` environment (incremental) and use it.
        boot_timeout: seconds for QEMU to listen and the firmware to print its boot lines.
        icount_shift: `-icount shift=` value; 0 makes one instruction one ns of virtual time.

    Attributes:
        url: pyserial URL of the board's UART once started.
        boot_lines: what the firmware printed at boot (ends before `m-ready`).
    """

    def __init__(self, elf: Path | str | None = None, *, boot_timeout: float = 30.0, icount_shift: int = 0) -> None:
        self.elf = Path(elf) if elf is not None else None
        self.boot_timeout = boot_timeout
        self.icount_shift = icount_shift
        self.port: int | None = None
        self.boot_lines: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._logdir: tempfile.TemporaryDirectory[str] | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None or not self.running:
            raise EmulatorError("the emulator is not running")
        return f"socket://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def log_text(self) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")

    def start(self) -> Emulator:
        if self.running:
            return self
        if shutil.which(QEMU) is None:
            raise EmulatorError(f"{QEMU} not found: apt-get install qemu-system-arm (or `bash host/run.sh setup`)")
        if self.elf is None:
            self.elf = _build.build(DEFAULT_ENV)
        if not self.elf.is_file():
            raise EmulatorError(f"firmware image not found: {self.elf}")
        self._logdir = tempfile.TemporaryDirectory(prefix="bitpath-qemu-")
        self._log = Path(self._logdir.name) / "qemu.log"
        last_error = ""
        for _attempt in range(3):  # the free port can be taken between probe and bind
            self.port = free_port()
            self._spawn()
            try:
                self._handshake()
                return self
            except EmulatorError as exc:
                last_error = str(exc)
                log = self.log_text()
                self.stop(_keep_log=True)
                if "Address already in use" not in log and "Failed to bind" not in log:
                    break
        raise EmulatorError(last_error)

    def _spawn(self) -> None:
        assert self.elf is not None and self._log is not None and self.port is not None
        cmd = qemu_command(self.elf, self.port, icount_shift=self.icount_shift)
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() kills QEMU and anything it forks
                preexec_fn=_die_with_parent,
            )
        with _live_lock:
            _live.add(self)

    def _handshake(self) -> None:
        """Connect once, read the boot lines up to m-ready, check there was no boot error."""
        assert self.port is not None
        deadline = time.monotonic() + self.boot_timeout
        sock: socket.socket | None = None
        while sock is None:
            if not self.running:
                raise EmulatorError(f"QEMU exited during start-up:\n{self.log_text()}")
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            except OSError:
                if time.monotonic() > deadline:
                    raise EmulatorError(f"QEMU did not open port {self.port}:\n{self.log_text()}") from None
                time.sleep(0.05)
        buf = b""
        with sock:
            sock.settimeout(0.2)
            while b"m-ready\r\n" not in buf:
                if time.monotonic() > deadline:
                    raise EmulatorError(f"no m-ready from the firmware within {self.boot_timeout} s; got {buf!r}")
                if not self.running:
                    raise EmulatorError(f"QEMU exited during boot:\n{self.log_text()}")
                with contextlib.suppress(socket.timeout):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise EmulatorError(f"QEMU closed the UART during boot; got {buf!r}")
                    buf += chunk
        text = buf.decode("ascii", errors="replace")
        self.boot_lines = [ln for ln in text.split("\r\n")[: text.split("\r\n").index("m-ready")] if ln]
        errors = [ln for ln in self.boot_lines if ln.startswith("e-")]
        if errors:
            raise EmulatorError(f"the firmware reported errors at boot: {errors}")
        if "m-init-done" not in self.boot_lines:
            raise EmulatorError(f"unexpected boot output: {self.boot_lines}")

    def stop(self, *, _keep_log: bool = False) -> None:
        """Terminate QEMU (SIGTERM to its process group, SIGKILL after 5 s). Idempotent."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            self._proc = None
        with _live_lock:
            _live.discard(self)
        if not _keep_log and self._logdir is not None:
            self._logdir.cleanup()
            self._logdir = None
            self._log = None

    def wait(self) -> int:
        """Block until QEMU exits (e.g. `bitpath emulate` until Ctrl-C); returns its exit code."""
        if self._proc is None:
            raise EmulatorError("the emulator is not running")
        return self._proc.wait()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
