"""`bitpath kbench`: build the kernel benchmark firmware (firmware/kbench), run it on the emulated
board and collect MACs and emulated instructions per kernel, shape and bit combination."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bitpath.device import build as _build
from bitpath.device.emulate import Emulator

ENV = "kbench_qemu"

# CMSIS-NN (commit 99f736a6, arm-none-eabi-gcc 12.2 -O2, cortex-m4, same emulator), from the
# fast-kernels issue: (kernel, shape) -> instructions.
CMSIS_NN = {
    ("conv", "28x28x1->16", "s8"): 1_174_337,
    ("conv", "14x14x16->32", "s8"): 1_930_852,
    ("conv", "7x7x32->64", "s8"): 1_697_914,
    ("conv", "32x32x16->16", "s8"): 5_493_120,
    ("conv", "16x16x32->32", "s8"): 4_543_868,
    ("conv", "28x28x1->16", "s4"): 1_410_186,
    ("conv", "14x14x16->32", "s4"): 3_532_626,
    ("conv", "7x7x32->64", "s4"): 3_318_946,
    ("conv", "32x32x16->16", "s4"): 9_672_660,
    ("conv", "16x16x32->32", "s4"): 8_691_548,
    ("dw", "14x14x32->32", "s8"): 447_312,
    ("dw", "32x32x16->16", "s8"): 1_222_418,
    ("fc", "1x1x64->10", "s8"): 1_836,
    ("fc", "1x1x256->64", "s8"): 34_038,
    ("fc", "1x1x1024->128", "s8"): 252_246,
}


@dataclass(frozen=True)
class KbenchRow:
    op: str
    shape: str
    combo: str
    macs: int
    count: int | None  # None: the kernel refused the case

    @property
    def per_mac(self) -> float | None:
        return None if self.count is None else self.count / self.macs


@dataclass(frozen=True)
class KbenchResult:
    kernels: str
    unit: str
    overhead: int
    rows: list[KbenchRow]


# A combo named <floor>-r runs the rounded nested view (bp_quant_t.w_round) of combo <floor>.
ROUNDED_SUFFIX = "-r"


def floor_combo(combo: str) -> str | None:
    """The floor combo a rounded combo is measured against, or None for a floor combo."""
    return combo[: -len(ROUNDED_SUFFIX)] if combo.endswith(ROUNDED_SUFFIX) else None


_ROW = re.compile(r"m-kbench-\[(conv|dw|fc|pool),([^,]+),([^,]+),(\d+),(\d+|error)\]")


def parse(lines: list[str]) -> KbenchResult:
    """Parse the firmware's m-kbench lines."""
    kernels = unit = ""
    overhead = 0
    rows = []
    for ln in lines:
        if m := re.fullmatch(r"m-kbench-kernels-\[(\w+)\]", ln):
            kernels = m.group(1)
        elif m := re.fullmatch(r"m-kbench-unit-\[(.+)\]", ln):
            unit = m.group(1)
        elif m := re.fullmatch(r"m-kbench-overhead-(\d+)", ln):
            overhead = int(m.group(1))
        elif m := _ROW.fullmatch(ln):
            count = None if m.group(5) == "error" else int(m.group(5))
            rows.append(KbenchRow(m.group(1), m.group(2), m.group(3), int(m.group(4)), count))
    if not rows or "m-kbench-done" not in lines:
        raise RuntimeError(f"incomplete kbench output: {lines[-5:]}")
    return KbenchResult(kernels, unit, overhead, rows)


def run(kernels: str | None = None, timeout: float = 600.0) -> KbenchResult:
    """Build (kernel variant ``kernels``: ref, dsp, or by CPU) and run the benchmark on QEMU."""
    elf = _build.build(ENV, kernels=kernels)
    with Emulator(elf, boot_timeout=timeout) as emu:
        return parse(emu.boot_lines)


def rounded_markdown(result: KbenchResult) -> str:
    """Rounded views against floor views of one kernel variant: a row per rounded (op, shape, combo)
    with both instruction counts, both per MAC, and their ratio. Empty when no combo is rounded."""
    keyed = {(row.op, row.shape, row.combo): row for row in result.rows}
    out = []
    for row in result.rows:
        base = floor_combo(row.combo)
        fl = keyed.get((row.op, row.shape, base)) if base else None
        if fl is None:
            continue
        if row.count is None or fl.count is None:
            out.append(f"| {row.op} | {row.shape} | {base} | refused | refused | - | - | - |")
            continue
        out.append(
            f"| {row.op} | {row.shape} | {base} | {fl.count:,} | {row.count:,} | {fl.per_mac:.2f} | "
            f"{row.per_mac:.2f} | {row.count / fl.count:.3f} |"
        )
    if not out:
        return ""
    head = (
        f"| kernel | shape | bits | floor {result.kernels} instr | rounded instr | floor instr/MAC | "
        "rounded instr/MAC | rounded/floor |\n|---|---|---|---:|---:|---:|---:|---:|\n"
    )
    return head + "\n".join(out) + "\n"


def markdown(results: list[KbenchResult]) -> str:
    """One table: rows = (op, shape, combo), a column per kernel variant, plus CMSIS-NN where measured;
    then, per variant, the rounded views against the floor views (rounded_markdown)."""
    variants = [r.kernels for r in results]
    head = "| kernel | shape | bits | MACs | " + " | ".join(f"{v} instr | {v} instr/MAC" for v in variants)
    head += " | CMSIS-NN instr/MAC |\n|---|---|---|---:|" + "---:|---:|" * len(variants) + "---:|\n"
    keyed = [{(row.op, row.shape, row.combo): row for row in r.rows} for r in results]
    out = []
    for row in results[0].rows:
        cells = []
        for k in keyed:
            x = k.get((row.op, row.shape, row.combo))
            cells += ["refused", "-"] if x is None or x.count is None else [f"{x.count:,}", f"{x.per_mac:.2f}"]
        ref = CMSIS_NN.get((row.op, row.shape, {"w8a8": "s8", "w4a8-s4": "s4"}.get(row.combo, "")))
        cmsis = f"{ref / row.macs:.2f}" if ref else ""
        out.append(f"| {row.op} | {row.shape} | {row.combo} | {row.macs:,} | " + " | ".join(cells) + f" | {cmsis} |")
    table = head + "\n".join(out) + "\n"
    for r in results:
        if rounded := rounded_markdown(r):
            table += f"\nRounded views ({r.kernels} kernels): the same case with bp_quant_t.w_round = 1\n\n{rounded}"
    return table
