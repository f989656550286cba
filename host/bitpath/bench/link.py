"""A self-healing link to a benchmark device: resynchronisation, reset detection, checked replies.

:class:`BenchClient` is the protocol :class:`~bitpath.device.client.Client` plus:

- **reset detection**: a reply that contains the firmware's boot lines (`m-init-done`,
  `m-timestamp-mode-...`) raises :class:`DeviceReset`; the caller re-loads its input and retries;
- **resynchronisation** (:meth:`BenchClient.resync`): drain whatever is still arriving until the line
  is quiet, then send bare `%` until one is answered by `m-ready` alone with nothing after it (a
  stale reply or a half-received command is flushed that way);
- **checked replies**: `bp-layers` must add up (total = controller + layers), logits must have one
  value per class; a reply that does not is :class:`GarbledReply`.
"""

from __future__ import annotations

import time

from bitpath.device.client import Client, LayerCosts, ProtocolError, Reply

BOOT_MARKERS = ("m-init-done", "m-timestamp-mode-")


class DeviceReset(ProtocolError):
    """The device printed its boot lines in the middle of a run (it was reset or power-cycled)."""

    def __init__(self, command: str, lines: list[str]) -> None:
        self.lines = list(lines)
        super().__init__(f"device reset detected during {command!r}: {lines}")


class GarbledReply(ProtocolError):
    """A reply that arrived complete but fails its consistency check."""


def _is_boot(line: str) -> bool:
    return any(line.startswith(m) for m in BOOT_MARKERS)


class BenchClient(Client):
    """The protocol client with reset detection and resynchronisation (see the module doc).

    Args:
        quiet: seconds without input that count as "the device has nothing more to say" during a
            resync (the device only talks when spoken to, or when it boots).
        Other arguments as :class:`~bitpath.device.client.Client`.
    """

    def __init__(self, url: str, *, quiet: float = 0.15, **kw) -> None:
        super().__init__(url, **kw)
        self.quiet = quiet
        self.resets_seen = 0

    def read_reply(self, command: str = "", *, timeout: float | None = None) -> Reply:
        reply = super().read_reply(command, timeout=timeout)
        boot = [ln for ln in reply.lines if _is_boot(ln)]
        if boot:
            self.resets_seen += 1
            raise DeviceReset(command, list(reply.lines))
        return reply

    def _drain(self, quiet: float, limit: float) -> bytes:
        """Read and return everything that arrives until ``quiet`` s pass with nothing (or ``limit`` s)."""
        got = bytearray(self._buf)
        self._buf.clear()
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end:
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except OSError as exc:
                raise ProtocolError(f"reading {self.url!r} failed during resync: {exc}") from exc
            if chunk:
                got += chunk
                last = time.monotonic()
            elif time.monotonic() - last >= quiet:
                break
        return bytes(got)

    def resync(self, *, attempts: int = 8, timeout: float | None = None) -> bool:
        """Bring the link back in step. Returns True when boot lines were seen (the device reset).

        Raises ProtocolError when the device never answers a bare `%` cleanly.
        """
        reset = False
        last = ""
        for _ in range(attempts):
            drained = self._drain(self.quiet, max(self.quiet, self.infer_timeout))
            text = drained.decode("ascii", errors="replace")
            if any(_is_boot(ln.strip()) for ln in text.splitlines()):
                reset = True
            try:
                self._port.write(b"%")
                self._port.flush()
                reply = Client.read_reply(self, "%", timeout=timeout)
            except (ProtocolError, OSError) as exc:
                last = str(exc)
                continue
            if any(_is_boot(ln) for ln in reply.lines):
                reset = True
                continue
            if reply.lines:
                last = f"bare % answered {list(reply.lines)}"
                continue
            tail = self._drain(self.quiet, self.quiet * 4)
            if not tail:
                if reset:
                    self.resets_seen += 1
                return reset
            if any(_is_boot(ln.strip()) for ln in tail.decode("ascii", errors="replace").splitlines()):
                reset = True
            last = f"unexpected bytes after the resync reply: {tail[:80]!r}"
        raise ProtocolError(f"cannot resynchronise with {self.url!r} after {attempts} attempts ({last})")

    def checked_layer_costs(self, layers: int | None = None) -> LayerCosts:
        """`bp-layers`, refused as garbled unless total = controller + sum(layers) (and the count fits)."""
        costs = self.layer_costs()
        if costs.controller + sum(costs.layers) != costs.total:
            raise GarbledReply(f"bp-layers does not add up: {costs}")
        if layers is not None and len(costs.layers) != layers:
            raise GarbledReply(f"bp-layers has {len(costs.layers)} layers, the device reported {layers}")
        if min((costs.controller, *costs.layers), default=0) < 0:
            raise GarbledReply(f"bp-layers has a negative count: {costs}")
        return costs
