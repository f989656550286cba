"""A pseudo-terminal bridged to a pyserial URL, in pure Python (no socat).

The official MLPerf Tiny runner opens its device with ``serial.Serial(path)``, which cannot open the
emulated board's ``socket://127.0.0.1:PORT``. :class:`PtyBridge` creates a pty (``os.openpty``, raw
mode) and pumps bytes both ways between its master side and the URL, so any program can open
``bridge.path`` (or a symlink such as ``/tmp/ttyBP``) as if it were a USB serial port. This is what
``socat pty,link=/tmp/ttyBP,raw tcp:127.0.0.1:PORT`` does; docs/mlperf-runner.md has both.

The bridge keeps its own handle on the slave side open, so a client may close and reopen the path
(the runner opens the port once per command batch) without the pty going away.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from pathlib import Path

import serial


class PtyBridge:
    """``with PtyBridge("socket://127.0.0.1:4321", link="/tmp/ttyBP") as b: ... b.path ...``"""

    def __init__(self, url: str, *, link: str | os.PathLike | None = None) -> None:
        self.url = url
        self.link = Path(link) if link is not None else None
        self.path = ""
        self.bytes_to_device = 0
        self.bytes_from_device = 0
        self._master = self._slave = -1
        self._port: serial.SerialBase | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> PtyBridge:
        self._port = serial.serial_for_url(self.url, timeout=0)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.path = os.ttyname(self._slave)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                if self.link.is_symlink():
                    self.link.unlink()
            self.link.symlink_to(self.path)
        self._thread = threading.Thread(target=self._pump, name="pty-bridge", daemon=True)
        self._thread.start()
        return self

    def _device_fd(self) -> int | None:
        sock = getattr(self._port, "_socket", None)  # socket:// exposes its socket
        if sock is not None:
            return sock.fileno()
        with contextlib.suppress(Exception):
            return self._port.fileno()  # type: ignore[union-attr]
        return None

    def _pump(self) -> None:
        assert self._port is not None
        port = self._port
        dev_fd = self._device_fd()
        try:
            while not self._stop.is_set():
                fds = [self._master] + ([dev_fd] if dev_fd is not None else [])
                ready, _, _ = select.select(fds, [], [], 0.05)
                if self._master in ready:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:  # EIO: no slave open at the moment
                        data = b""
                    if data:
                        port.write(data)
                        self.bytes_to_device += len(data)
                if dev_fd is None or dev_fd in ready:
                    data = port.read(port.in_waiting or (1 if dev_fd is not None else 0))
                    if data:
                        view = memoryview(data)
                        while view:
                            n = os.write(self._master, view)
                            view = view[n:]
                        self.bytes_from_device += len(data)
        except BaseException as exc:  # noqa: BLE001 - kept for the owner to inspect
            self.error = exc

    def wait(self) -> None:
        """Block until the bridge stops (its link broke); raises what stopped it."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
        if self.link is not None and self.link.is_symlink():
            with contextlib.suppress(OSError):
                self.link.unlink()

    def __enter__(self) -> PtyBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
