"""The kernel benchmark firmware runs on the emulated board and reports every case it should."""

from __future__ import annotations

import pytest

from bitpath.device import kbench

SHAPES = {  # (op, shape) -> MACs, computed here from the shapes of the fast-kernels issue
    ("conv", "28x28x1->16"): 28 * 28 * 16 * 9 * 1,
    ("conv", "14x14x16->32"): 14 * 14 * 32 * 9 * 16,
    ("conv", "7x7x32->64"): 7 * 7 * 64 * 9 * 32,
    ("conv", "32x32x16->16"): 32 * 32 * 16 * 9 * 16,
    ("conv", "16x16x32->32"): 16 * 16 * 32 * 9 * 32,
    ("dw", "14x14x32->32"): 14 * 14 * 32 * 9,
    ("dw", "32x32x16->16"): 32 * 32 * 16 * 9,
    ("fc", "1x1x64->10"): 64 * 10,
    ("fc", "1x1x256->64"): 256 * 64,
    ("fc", "1x1x1024->128"): 1024 * 128,
}
POOLS = {  # max pool (op, shape) -> window inputs read, the "MACs" column of a pool row
    ("pool", "28x28x16 2x2/2"): 14 * 14 * 16 * 4,
    ("pool", "14x14x32 2x2/2"): 7 * 7 * 32 * 4,
    ("pool", "7x7x64 2x2/2"): 3 * 3 * 64 * 4,
    ("pool", "32x32x16 3x3/2p1"): 16 * 16 * 16 * 9,
}
POOL_COMBOS = {"a8", "s8", "a4", "a2"}
COMBOS = {"w8a8", "w4a8-s4", "w4a8-v8", "w4a4", "w2a8", "w2a2", "w2a8-s2", "w2a2-s2"}
ROUNDED = {"w4a8-v8-r", "w4a4-r", "w2a8-r", "w2a2-r"}  # the rounded views (w_round) of the floor combos
FC_ONLY = {"w8a8-o32", "w4a4-o32", "w4a4-o32-r"}  # int32 outputs, as a model's logits layer runs
FIRST_ONLY = {"w8a8-o4", "w8a8-o2"}  # 8-bit inputs to 4- and 2-bit outputs, on the one-channel conv only
NO_DW = {"w4a4-s4", "w2a8-s4", "w2a8-s4-r"}  # weights stored at 4 bits, full and 2-bit views: conv and FC


def _only(op: str, shape: str) -> set[str]:
    """The combos that run on this shape only: int32 outputs on FC, 4/2-bit outputs on the first layer,
    4-bit storage (beyond w4a8-s4) on every conv and FC shape."""
    if op == "fc":
        return FC_ONLY | NO_DW
    return (FIRST_ONLY if shape == "28x28x1->16" else set()) | (NO_DW if op == "conv" else set())


@pytest.mark.emulator
def test_kbench_reports_every_case() -> None:
    res = kbench.run("dsp")
    assert res.kernels == "dsp" and res.unit == "instructions (emulated)"
    got = {(r.op, r.shape, r.combo): r for r in res.rows}
    assert set(got) == {(op, shape, c) for (op, shape) in SHAPES for c in COMBOS | ROUNDED | _only(op, shape)} | {
        (op, shape, c) for (op, shape) in POOLS for c in POOL_COMBOS
    }
    for (op, shape, _combo), row in got.items():
        assert row.macs == {**SHAPES, **POOLS}[op, shape]
        assert row.count is not None and row.count > row.macs // 8  # ran, and was timed
    rounded = [key for key in got if kbench.floor_combo(key[2])]
    n_no_dw = sum(op in ("conv", "fc") for op, _ in SHAPES)
    assert len(rounded) == len(SHAPES) * len(ROUNDED) + 3 + n_no_dw  # every rounded row has its floor row
    for op, shape, combo in rounded:
        assert (op, shape, kbench.floor_combo(combo)) in got
    table = kbench.markdown([res])
    # the main table (2 header lines, a row per case), a blank line, the caption and a blank line,
    # the rounded-vs-floor table (2 header lines, a row per rounded case)
    assert table.count("\n") == len(got) + 2 + 3 + len(rounded) + 2


def test_rounded_rows_against_floor() -> None:
    lines = [
        "m-kbench-kernels-[dsp]",
        "m-kbench-[fc,1x1x64->10,w4a4,640,2000]",
        "m-kbench-[fc,1x1x64->10,w4a4-r,640,2200]",
        "m-kbench-done",
    ]
    table = kbench.rounded_markdown(kbench.parse(lines))
    assert "| fc | 1x1x64->10 | w4a4 | 2,000 | 2,200 | 3.12 | 3.44 | 1.100 |" in table
    assert kbench.floor_combo("w4a4-o32-r") == "w4a4-o32" and kbench.floor_combo("w4a4") is None


def test_parse_refuses_truncated_output() -> None:
    with pytest.raises(RuntimeError, match="incomplete"):
        kbench.parse(["m-kbench-kernels-[dsp]", "m-kbench-[fc,1x1x64->10,w8a8,640,3000]"])
