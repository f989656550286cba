"""Energy per inference: estimated from a board profile, or measured with a Nordic PPK2.

Estimated: ``E = I_run x V x t``, where ``t`` is the measured time of one inference (cycles / core
clock on silicon; on the emulated board emulated instructions / profile clock, assuming 1
instruction per cycle). Always labelled ``estimated``.

Measured: :class:`PPK2Meter` drives a Power Profiler Kit II through the optional ``ppk2-api``
package (``pip install ppk2-api``), imported only when a PPK2 is asked for. Sampling is started
right before the timed `infer N 0` command and stopped right after its reply, so the window covers
the N inferences plus the command's UART traffic; the energy per inference is the window's mean
current x V x the device-timed window (``m-lap-us`` t1 - t0) / N. Anything that talks to real
hardware sits behind the ``api_factory`` seam, so the arithmetic is tested with a fake meter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bitpath.bench.boards import BoardProfile

EMULATED_NOTE = "emulated instructions converted to time at the profile clock assuming 1 instruction/cycle"


@dataclass(frozen=True)
class EnergyEstimate:
    """One estimated figure; ``label`` says how it was obtained."""

    joules: float
    seconds: float
    current_a: float
    volts: float
    clock_hz: int
    label: str

    def to_dict(self) -> dict:
        return {"joules": self.joules, "seconds": self.seconds, "current_a": self.current_a, "volts": self.volts,
                "clock_hz": self.clock_hz, "label": self.label}


def seconds_from_counts(counts: float, *, unit: str, counter_hz: int, profile: BoardProfile) -> tuple[float, str]:
    """Time of ``counts`` of the device's cost counter, and how it was derived.

    ``cycles`` are divided by the counter's own frequency (the core clock, from `bp-info`);
    ``instructions (emulated)`` by the profile's clock at 1 instruction per cycle.
    """
    if "emulated" in unit or "instruction" in unit:
        return counts / profile.clock_hz, f"{EMULATED_NOTE} ({profile.clock_hz / 1e6:g} MHz)"
    if unit == "cycles":
        if counter_hz <= 0:
            raise ValueError("the device reported no counter frequency for its cycles")
        return counts / counter_hz, f"DWT cycles / {counter_hz / 1e6:g} MHz"
    raise ValueError(f"unknown counter unit {unit!r}")


def estimate(counts: float, *, unit: str, counter_hz: int, profile: BoardProfile) -> EnergyEstimate:
    """Estimated energy of one inference costing ``counts`` in the device's counter unit."""
    seconds, how = seconds_from_counts(counts, unit=unit, counter_hz=counter_hz, profile=profile)
    clock = profile.clock_hz if "emulated" in unit or "instruction" in unit else counter_hz
    current = profile.current_at(clock)
    return EnergyEstimate(
        joules=current * profile.supply_v * seconds,
        seconds=seconds,
        current_a=current,
        volts=profile.supply_v,
        clock_hz=clock,
        label=f"estimated: datasheet run current x supply x time; time from {how}; current: {profile.source}",
    )


# --------------------------------------------------------------------------- PPK2


class PPK2Api(Protocol):
    """The part of ``ppk2_api.ppk2_api.PPK2_API`` the meter uses (fakes implement the same)."""

    def get_modifiers(self) -> Any: ...
    def use_ampere_meter(self) -> Any: ...
    def use_source_meter(self) -> Any: ...
    def set_source_voltage(self, mV: int) -> Any: ...  # noqa: N803 - ppk2-api's spelling
    def toggle_DUT_power(self, state: str) -> Any: ...  # noqa: N802
    def start_measuring(self) -> Any: ...
    def stop_measuring(self) -> Any: ...
    def get_data(self) -> bytes: ...
    def get_samples(self, buf: bytes) -> Any: ...


class PPK2Unavailable(RuntimeError):
    """ppk2-api is not installed, or the PPK2 could not be opened."""


def _default_api_factory(port: str) -> PPK2Api:
    try:
        from ppk2_api.ppk2_api import PPK2_API  # type: ignore[import-not-found]
    except ImportError as exc:
        raise PPK2Unavailable(
            "--ppk2 needs the optional package ppk2-api: pip install ppk2-api (or drop --ppk2 for an estimate)"
        ) from exc
    try:
        return PPK2_API(port, timeout=1, write_timeout=1, exclusive=True)
    except TypeError:  # older ppk2-api releases take only the port
        return PPK2_API(port)
    except Exception as exc:  # noqa: BLE001 - serial errors of every kind
        raise PPK2Unavailable(f"cannot open the PPK2 on {port!r}: {exc}") from exc


@dataclass(frozen=True)
class PPK2Window:
    """Samples of one measured window."""

    samples_ua: tuple[float, ...]
    wall_s: float

    @property
    def mean_a(self) -> float:
        if not self.samples_ua:
            raise PPK2Unavailable("the PPK2 returned no samples in the window")
        return sum(self.samples_ua) / len(self.samples_ua) * 1e-6


class PPK2Meter:
    """A PPK2 in ampere-meter mode (the board keeps its own supply) or source-meter mode.

    Args:
        port: the PPK2's serial port.
        volts: supply voltage of the DUT (ampere meter: the board's; source meter: what the PPK2 sets).
        source_meter: power the DUT from the PPK2 at ``volts``.
        api_factory: builds the ppk2-api object from ``port`` (tests pass a fake).
        clock: wall clock for the window length (injected in tests).
    """

    def __init__(self, port: str, *, volts: float = 3.3, source_meter: bool = False,
                 api_factory: Callable[[str], PPK2Api] | None = None, clock: Callable[[], float] | None = None) -> None:
        import time

        self.port = port
        self.volts = volts
        self.source_meter = source_meter
        self._factory = api_factory or _default_api_factory
        self._clock = clock or time.monotonic
        self._api: PPK2Api | None = None

    def open(self) -> PPK2Meter:
        api = self._factory(self.port)
        api.get_modifiers()
        # ppk2-api's examples set the voltage first; in ampere-meter mode it is the expected VDD.
        api.set_source_voltage(int(round(self.volts * 1000)))
        if self.source_meter:
            api.use_source_meter()
            api.toggle_DUT_power("ON")
        else:
            api.use_ampere_meter()
        self._api = api
        return self

    def close(self) -> None:
        if self._api is not None and self.source_meter:
            self._api.toggle_DUT_power("OFF")
        self._api = None

    def __enter__(self) -> PPK2Meter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _samples(self, data: bytes) -> list[float]:
        assert self._api is not None
        got = self._api.get_samples(data)
        if isinstance(got, tuple):  # ppk2-api >= 0.9 returns (samples, raw digital channels)
            got = got[0]
        return [float(v) for v in got]

    def measure(self, action: Callable[[], Any], *, poll_s: float = 0.005) -> tuple[Any, PPK2Window]:
        """Sample while ``action()`` runs (start right before, stop right after); returns its result too.

        The PPK2 streams 100 k samples/s, so a reader thread drains ``get_data()`` while the action
        (the blocking `infer` command) runs.
        """
        import threading

        if self._api is None:
            raise PPK2Unavailable("the PPK2 is not open")
        api = self._api
        samples: list[float] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def reader() -> None:
            try:
                while True:
                    data = api.get_data()
                    if data:
                        samples.extend(self._samples(data))
                    if stop.is_set():
                        return
                    stop.wait(poll_s)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                errors.append(exc)

        api.start_measuring()
        t0 = self._clock()
        thread = threading.Thread(target=reader, name="ppk2-reader", daemon=True)
        thread.start()
        try:
            result = action()
        finally:
            t1 = self._clock()
            stop.set()
            thread.join(timeout=5)
            api.stop_measuring()
        if errors:
            raise PPK2Unavailable(f"reading the PPK2 failed: {errors[0]}") from errors[0]
        return result, PPK2Window(tuple(samples), t1 - t0)


def measured_energy(window: PPK2Window, *, volts: float, device_us: float, iterations: int) -> dict:
    """Energy per inference from one PPK2 window around `infer N 0`."""
    if iterations <= 0:
        raise ValueError("iterations must be positive")
    mean_a = window.mean_a
    seconds = device_us * 1e-6 / iterations
    return {
        "joules": mean_a * volts * seconds,
        "seconds": seconds,
        "current_a": mean_a,
        "volts": volts,
        "samples": len(window.samples_ua),
        "iterations": iterations,
        "label": "measured (PPK2): mean current over the infer command x supply x device-timed window / N",
    }


def summarize(values: Sequence[float]) -> dict:
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean": float(a.mean()), "median": float(np.median(a)),
            "p99": float(np.percentile(a, 99)), "min": float(a.min()), "max": float(a.max())}
