"""Kernel tests: prints how many generated cases were compared, C against numpy."""

from __future__ import annotations

from typing import Any

from kernel_check import COUNTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    ops_seen = sorted({k[0] for k in COUNTS})
    total = sum(COUNTS[o, "cases"] for o in ops_seen)
    bad = sum(COUNTS[o, "mismatches"] for o in ops_seen)
    terminalreporter.write_sep(
        "-", "C kernels vs numpy reference (host: portable and DSP variants; board: emulated Cortex-M4)"
    )
    for o in ops_seen:
        terminalreporter.write_line(
            f"{o:26s} {COUNTS[o, 'cases']:6d} cases compared, {COUNTS[o, 'refused']:4d} refused by both, "
            f"{COUNTS[o, 'mismatches']} mismatches"
        )
    terminalreporter.write_line(f"{'total':26s} {total:6d} cases compared, {bad} mismatches")
