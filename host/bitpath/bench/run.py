"""The benchmark loop: stream test images over the serial protocol, check, measure, log as it goes.

For every image and every path (a forced static path, or ``auto`` when the device has a controller)
the bench loads the image (`db load` + 31-byte `db` chunks, once per image), forces the path
(`bp-path`), runs `infer 1 0`, and reads `bp-chosen` and `bp-layers`. The logits are compared bit
for bit with the numpy reference (:class:`bitpath.export.runner.Runner`) of the path that ran.

Nothing measured is lost: a header line and then one JSON line per measurement (and per recovery
event) are appended to a JSON-lines log and flushed at once; ``resume=True`` continues from it.
A failed command (timeout, garbled or inconsistent reply, `e-` error) is retried after a resync;
a reset (boot lines mid-run) is detected, the input re-loaded and the path re-forced. A logit
mismatch is re-checked by re-loading the input and running again: a transient (corrupted transfer)
disappears, a real mismatch repeats identically and is recorded as one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bitpath.bench.boards import BoardProfile
from bitpath.bench.link import BenchClient, DeviceReset, GarbledReply
from bitpath.device.client import DeviceError, DeviceInfo, ProtocolError

LOG_FORMAT = "bitpath-bench-log"
LOG_VERSION = 1
AUTO = "auto"


class BenchError(RuntimeError):
    """The bench cannot go on (device unreachable after retries, log from another run, ...)."""


@dataclass
class BenchConfig:
    """What to run. ``paths`` holds path names, indices as strings, or ``auto``; None = every path
    (+ ``auto`` when the device has a controller)."""

    images: int = 100
    paths: Sequence[str] | None = None
    retries: int = 6
    dataset: str = "fashion-mnist"
    split: str = "test"
    energy_iterations: int = 0  # >0 with a PPK2: one measured window of `infer N 0` per path
    extra: dict = field(default_factory=dict)  # recorded in the header (command line, ELF, ...)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def firmware_info(elf: str | os.PathLike) -> dict:
    """ELF path, sha256, flash and RAM (from the linked ELF): the firmware identity of a report."""
    from bitpath.device.size import measure

    size = measure(elf)
    return {"elf": str(elf), "sha256": sha256_file(elf), "flash_bytes": size.flash, "ram_bytes": size.ram}


def layer_names(ir) -> list[str]:
    """Names of the firmware's layer table (the code generator's plan), in bp-layers order."""
    from bitpath.codegen.plan import plan

    return [s.node["name"] for s in plan(ir).steps]


# --------------------------------------------------------------------------- the JSON-lines log


class ResultLog:
    """Append-only JSON-lines log; every record is flushed and fsynced when written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.header: dict | None = None
        self.records: list[dict] = []
        self._pending: list[dict] = []  # events before the header exists (connecting, bp-info)

    @staticmethod
    def read(path: Path) -> tuple[dict | None, list[dict]]:
        """Header and records of an existing log. A last line cut short by a crash is ignored."""
        header, records = None, []
        text = Path(path).read_text(encoding="utf-8") if Path(path).exists() else ""
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines) - 1:  # the unterminated tail of an interrupted write
                    break
                raise BenchError(f"{path}:{n + 1}: not a JSON line") from None
            if rec.get("kind") == "header":
                if header is not None:
                    raise BenchError(f"{path}:{n + 1}: second header line")
                header = rec
            else:
                records.append(rec)
        return header, records

    def open(self, header: dict, *, resume: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists():
            old, records = self.read(self.path)
            if old is None:
                raise BenchError(f"{self.path}: no header line; cannot resume")
            _check_same_run(old, header, self.path)
            self.header, self.records = old, records
            self._truncate_partial_tail()
            # more images than before is fine: the header keeps the run's identity
            if header["config"]["images"] != old["config"]["images"]:
                self.append({"kind": "event", "what": "images-changed", "from": old["config"]["images"],
                             "to": header["config"]["images"], "t": time.time()})
            self.append({"kind": "event", "what": "resumed", "done": len(self.measured()), "t": time.time()})
            self._flush_pending()
            return
        if self.path.exists() and self.path.stat().st_size and not resume:
            raise BenchError(f"{self.path} exists: pass --resume to continue it, or choose another --out")
        self.header, self.records = header, []
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._flush_pending()

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for rec in pending:
            self.append(rec)

    def _truncate_partial_tail(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(keep)

    def append(self, rec: dict) -> None:
        if self.header is None:
            self._pending.append(rec)
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(rec)

    def measured(self) -> dict[tuple[int, str], dict]:
        return {(r["i"], r["path"]): r for r in self.records if r.get("kind") == "m"}


def _check_same_run(old: dict, new: dict, path: Path) -> None:
    for key in ("ir_hash",):
        if old.get(key) != new.get(key):
            raise BenchError(f"{path}: cannot resume: {key} was {old.get(key)} and is now {new.get(key)}")
    for key in ("board", "model", "ir_hash", "classes", "paths", "counter_unit"):
        a, b = old["device"].get(key), new["device"].get(key)
        if a != b:
            raise BenchError(f"{path}: cannot resume: the device's {key} was {a!r} and is now {b!r}")
    for key in ("dataset", "split"):
        if old["config"].get(key) != new["config"].get(key):
            raise BenchError(f"{path}: cannot resume: {key} was {old['config'].get(key)!r}, "
                             f"now {new['config'].get(key)!r}")
    if old["paths"] != new["paths"]:
        raise BenchError(f"{path}: cannot resume: paths were {old['paths']}, now {new['paths']}")


# --------------------------------------------------------------------------- the bench


class _Recheck(Exception):
    """A logit mismatch to confirm by re-loading and running again."""


class Bench:
    """One benchmark run over a connected device.

    Args:
        dev: a :class:`BenchClient` (any pyserial URL, or a fake port).
        ir: the IR the firmware was generated from (the numpy reference of the logits).
        x, y: test images (uint8 NHWC) and labels.
        log_path: the JSON-lines log (created, or continued with ``resume``).
        profile: the board profile (clock, datasheet current) for time and energy figures.
        meter: a :class:`bitpath.bench.energy.PPK2Meter`, opened, for measured energy.
    """

    def __init__(self, dev: BenchClient, ir, x: np.ndarray, y: np.ndarray, log_path: Path, *,
                 profile: BoardProfile, config: BenchConfig | None = None, resume: bool = False,
                 meter=None, log: Callable[[str], None] = print, progress: bool = False) -> None:
        from bitpath.export.runner import Runner

        self.dev = dev
        self.ir = ir
        self.cfg = config or BenchConfig()
        self.x, self.y = x, y
        self.profile = profile
        self.meter = meter
        self.say = log
        self.progress = progress
        self.runner = Runner(ir)
        self.log = ResultLog(log_path)
        self.resume = resume
        self._ref: dict[tuple[int, int], list[int]] = {}
        self._loaded: int | None = None
        self._path: int | str | None = None
        self.info: DeviceInfo | None = None

    # ---------------------------------------------------------------- plumbing
    def _event(self, what: str, **kw) -> None:
        self.log.append({"kind": "event", "what": what, "t": time.time(), **kw})

    def _recover(self, exc: BaseException, where: dict) -> None:
        """Resync after a failed command; after a reset, check the device is still the same one."""
        self._loaded = None
        self._path = None
        reset = isinstance(exc, DeviceReset)
        last: BaseException = exc
        for _ in range(3):
            try:
                reset = self.dev.resync() or reset
                info = self.dev.info() if reset else None
                break
            except (ProtocolError, DeviceError, ValueError) as e2:
                reset = reset or isinstance(e2, DeviceReset)
                last = e2
        else:
            self._event("resync-failed", error=f"{type(last).__name__}: {last}", **where)
            raise BenchError(f"the device does not answer any more ({where}): {last}") from last
        self._event("reset" if reset else "resync", error=f"{type(exc).__name__}: {exc}", **where)
        if info is not None and asdict(info) != asdict(self.info):
            self._event("device-changed", info=asdict(info), **where)
            raise BenchError(f"the device came back from a reset with different bp-info: {info} "
                             f"(was {self.info}); refusing to mix results")

    def _ref_logits(self, i: int, p: int) -> list[int]:
        if (i, p) not in self._ref:
            self._ref[(i, p)] = [int(v) for v in self.runner.run(self.x[i], p)]
        return self._ref[(i, p)]

    def _host_choice(self, i: int) -> int | None:
        """The path the host's reference controller picks for image ``i`` (None: the IR has none)."""
        return self.runner.choose(self.x[i]) if self.runner.has_controller else None

    def _with_retries(self, what: str, fn: Callable[[], object], where: dict):
        for attempt in range(self.cfg.retries + 1):
            try:
                return fn()
            except (ProtocolError, DeviceError, ValueError) as exc:
                if attempt == self.cfg.retries:
                    raise BenchError(f"{what} failed {attempt + 1} times; last: {exc}") from exc
                self._recover(exc, {"op": what, **where})
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- one measurement
    def measure(self, i: int, label: str) -> dict:
        """Run image ``i`` on path ``label`` (name or ``auto``) until a checked result; return the record."""
        info = self.info
        assert info is not None
        forced = None if label == AUTO else self.ir.path_index(label)
        want_path: int | str = AUTO if forced is None else forced
        where = {"i": i, "path": label}
        mismatches: list[tuple[int, list[int]]] = []
        for attempt in range(self.cfg.retries + 1):
            try:
                if self._path != want_path:
                    self.dev.set_path(want_path)
                    self._path = want_path
                if self._loaded != i:
                    self.dev.load(self.x[i].tobytes())
                    self._loaded = i
                r = self.dev.infer(1, 0)
                chosen = self.dev.chosen_path()
                if not 0 <= chosen < info.paths or (forced is not None and chosen != forced):
                    raise GarbledReply(f"bp-chosen {chosen} for path {label}")
                if len(r.logits) != info.classes:
                    raise GarbledReply(f"{len(r.logits)} logits, the device has {info.classes} classes")
                costs = self.dev.checked_layer_costs(info.layers)
                expected = self._ref_logits(i, chosen)
                got = list(r.logits)
                if got != expected:
                    if not any(m == (chosen, got) for m in mismatches):
                        mismatches.append((chosen, got))
                        self._event("mismatch-recheck", i=i, path=label, chosen=chosen, logits=got)
                        self._loaded = None
                        raise _Recheck
                    # the same wrong answer twice from a fresh load: the device really computes it
                host = {} if forced is not None else {"host_chosen": self._host_choice(i)}
                return {
                    "kind": "m", "i": i, "label": int(self.y[i]), "path": label, "chosen": chosen, **host,
                    "logits": got, "pred": int(np.argmax(got)), "match": got == expected,
                    **({} if got == expected else {"expected": expected}),
                    "controller": costs.controller, "layers": list(costs.layers), "total": costs.total,
                    "lap_us": r.elapsed_us, "attempts": attempt + 1, "t": time.time(),
                }
            except _Recheck:
                continue
            except (ProtocolError, DeviceError, ValueError) as exc:  # ValueError: a garbled number
                if attempt == self.cfg.retries:
                    raise BenchError(f"image {i} path {label}: failed {attempt + 1} times; last: {exc}") from exc
                self._recover(exc, {"op": "measure", **where, "attempt": attempt + 1})
        raise BenchError(f"image {i} path {label}: no stable answer in {self.cfg.retries + 1} attempts "
                         f"(logits seen: {mismatches})")

    # ---------------------------------------------------------------- the run
    def labels(self, info: DeviceInfo) -> list[str]:
        names = self.ir.path_names
        if list(info.path_names) and list(info.path_names) != names:
            raise BenchError(f"the device's paths {list(info.path_names)} are not the IR's {names}")
        if self.cfg.paths is None:
            return names + ([AUTO] if info.has_controller else [])
        out = []
        for p in self.cfg.paths:
            if p == AUTO:
                if not info.has_controller:
                    raise BenchError("path 'auto' asked, but the model on the device has no controller")
                out.append(AUTO)
            elif p.isdigit():
                out.append(names[self.ir.path_index(int(p))])
            else:
                out.append(names[self.ir.path_index(p)])
        return out

    def header(self, info: DeviceInfo, labels: list[str]) -> dict:
        return {
            "kind": "header", "format": LOG_FORMAT, "version": LOG_VERSION,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "url": self.dev.url, "ir_hash": self.ir.content_hash(), "device": asdict(info),
            "board": self.profile.to_dict(), "paths": labels, "path_names": self.ir.path_names,
            "layers": layer_names(self.ir), "config": {**asdict(self.cfg), "paths": self.cfg.paths},
        }

    def start(self) -> list[str]:
        """Connect, read bp-info, check the firmware matches the IR, open (or resume) the log."""
        self.dev.resync()
        self.info = info = self._with_retries("bp-info", self.dev.info, {})
        if info.ir_hash and not self.ir.content_hash().startswith(info.ir_hash):
            raise BenchError(f"the firmware was generated from IR {info.ir_hash}, not from this IR "
                             f"({self.ir.content_hash()[:16]}): rebuild it or pass the right --ir")
        expect = int(np.prod(self.ir.header["input"]["shape"]))
        if info.input_bytes != expect or self.x[0].size != expect:
            raise BenchError(f"input sizes differ: device {info.input_bytes}, IR {expect}, data {self.x[0].size}")
        labels = self.labels(info)
        self.log.open(self.header(info, labels), resume=self.resume)
        return labels

    def run(self) -> ResultLog:
        labels = self.start()
        n = min(self.cfg.images, len(self.x))
        done = self.log.measured()
        todo = [(i, p) for i in range(n) for p in labels if (i, p) not in done]
        if done:
            self.say(f"resuming: {len(done)} measurements in {self.log.path}, {len(todo)} to go")
        it: Iterable = todo
        if self.progress:
            from tqdm.auto import tqdm

            it = tqdm(todo, desc="bench", unit="run", leave=False)
        for i, label in it:
            self.log.append(self.measure(i, label))
        if self.meter is not None and self.cfg.energy_iterations > 0:
            self.measure_energy(labels)
        return self.log

    def measure_energy(self, labels: list[str]) -> None:
        """One PPK2 window of `infer N 0` per path, on the first test image."""
        from bitpath.bench.energy import measured_energy

        done = {r["path"] for r in self.log.records if r.get("kind") == "energy"}
        n = self.cfg.energy_iterations
        for label in labels:
            if label in done:
                continue

            def once(label: str = label):
                self.dev.set_path(AUTO if label == AUTO else self.ir.path_index(label))
                self.dev.load(self.x[0].tobytes())
                self._loaded, self._path = 0, None
                result, window = self.meter.measure(lambda: self.dev.infer(n, 0))
                return result, window

            result, window = self._with_retries("energy", once, {"path": label})
            rec = measured_energy(window, volts=self.meter.volts, device_us=result.elapsed_us, iterations=n)
            self.log.append({"kind": "energy", "path": label, "i": 0, **rec, "t": time.time()})
