"""Board profiles for `bitpath bench`: clock and datasheet run current, for the energy *estimate*.

The estimate is ``E = I_run(clock) x V_supply x t`` with the datasheet's *typical* run-mode supply
current at the run clock (code running from flash, caches/ART on, peripherals off). It ignores what
the datasheet ignores (board regulators, LEDs, the debugger) and how the workload differs from the
datasheet's benchmark code, so it is always labelled "estimated". With a power meter (`--ppk2`) the
energy is measured instead.

On the emulated board ``t`` comes from *emulated instructions* converted at the profile clock under
the assumption of 1 instruction per cycle (QEMU models no wait states, multi-cycle loads or branch
penalties), and the label says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class BoardProfile:
    """What the bench needs to know about a board that the device does not report.

    Attributes:
        name: bitpath board name (`--board`).
        chip: MCU part.
        clock_hz: core clock the bitpath firmware runs at on this board.
        run_current_a: datasheet typical run current (A) per core clock (Hz).
        supply_v: supply voltage of that datasheet figure (V).
        source: where the current figure comes from (document, table, conditions).
        emulated: the board is QEMU (cost counter = emulated instructions).
    """

    name: str
    chip: str
    clock_hz: int
    run_current_a: dict[int, float] = field(default_factory=dict)
    supply_v: float = 3.3
    source: str = ""
    emulated: bool = False

    def current_at(self, clock_hz: int | None = None) -> float:
        """Datasheet run current at ``clock_hz`` (default: the run clock); exact table entries only."""
        hz = self.clock_hz if clock_hz is None else clock_hz
        if hz not in self.run_current_a:
            known = ", ".join(f"{f / 1e6:g} MHz" for f in sorted(self.run_current_a))
            raise KeyError(f"board {self.name}: no datasheet run current at {hz / 1e6:g} MHz (known: {known})")
        return self.run_current_a[hz]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["run_current_a"] = {str(k): v for k, v in self.run_current_a.items()}
        return d


# STM32F405/407 datasheet (ST DS8626), "Typical and maximum current consumption in Run mode, code
# with data processing running from Flash memory (ART accelerator enabled)", fHCLK = 168 MHz, all
# peripherals disabled: 40 mA typical at 25 degC (ST's "238 uA/MHz" at 168 MHz), VDD = 3.3 V.
_F405 = "ST DS8626 (STM32F405/407) Run mode from Flash, ART on, peripherals disabled, typ. 25 degC: 40 mA @ 168 MHz"

# STM32F446 datasheet (ST DS10693), "Typical and maximum current consumption in Run mode, code with
# data processing running from Flash memory (ART accelerator enabled except prefetch)", all
# peripherals disabled, typical at 25 degC: 180 MHz -> 38 mA (OverDrive ON), 168 MHz -> 35 mA,
# VDD = 3.3 V. The bitpath NUCLEO firmware runs at 168 MHz (docs/firmware.md).
_F446 = ("ST DS10693 (STM32F446) Run mode from Flash, ART on, peripherals disabled, typ. 25 degC: "
         "38 mA @ 180 MHz, 35 mA @ 168 MHz (not yet re-checked against the PDF)")

# nRF52840 Product Specification v1.x, section "CPU": I_CPU,Flash,Cache,DCDC (CPU running CoreMark
# from flash, cache enabled, HFXO, DC/DC regulator, 3 V): 3.3 mA at 64 MHz (52 uA/MHz).
_NRF = "Nordic nRF52840 PS v1.x, CPU running CoreMark from flash, cache on, DC/DC, 3 V: 3.3 mA @ 64 MHz"

PROFILES: dict[str, BoardProfile] = {
    "qemu_f405": BoardProfile("qemu_f405", "STM32F405 (QEMU netduinoplus2, emulated)", 168_000_000,
                              {168_000_000: 0.040}, 3.3, _F405, emulated=True),
    "nucleo_f446re": BoardProfile("nucleo_f446re", "STM32F446RE", 168_000_000,
                                  {180_000_000: 0.038, 168_000_000: 0.035}, 3.3, _F446),
    "nrf52840dk": BoardProfile("nrf52840dk", "nRF52840", 64_000_000, {64_000_000: 0.0033}, 3.0, _NRF),
}


def profile(name: str) -> BoardProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; known: {', '.join(PROFILES)}") from None


def board_for_device(device_board: str) -> str | None:
    """The profile name for a board string reported by `bp-info` (e.g. ``qemu_f405``), if any."""
    for name in PROFILES:
        if device_board.startswith(name) or name in device_board:
            return name
    return None
