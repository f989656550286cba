"""The firmware's protocol parser + test model compiled for the host (ASan/UBSan), byte for byte.

host_harness feeds stdin to bp_proto_feed() and prints what the device would send on its UART.
Its fake counters: time_us +7 per read, cycles +1 per read, bp-calib's loop adds 2N cycles.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import fw_testmodel_ref as ref
import pytest

BOOT = ["m-timestamp-mode-performance", "m-lap-us-7", "m-init-done", "m-ready"]


def session(exe: Path, data: bytes | str, *, cap: int = 4096) -> list[str]:
    """All lines the device sends for `data`, boot lines stripped (and checked)."""
    raw = data.encode("latin-1") if isinstance(data, str) else data
    proc = subprocess.run([str(exe), str(cap)], input=raw, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stderr == b"", proc.stderr.decode(errors="replace")
    text = proc.stdout.decode("ascii")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text[:-2].split("\r\n")
    assert lines[: len(BOOT) - 1] == BOOT[:-1]
    return lines[lines.index("m-ready") + 1 :]


def replies(lines: list[str]) -> list[list[str]]:
    """Split a session's lines into one list per command (m-ready ends each)."""
    out: list[list[str]] = [[]]
    for line in lines:
        if line == "m-ready":
            out.append([])
        else:
            out[-1].append(line)
    assert out[-1] == [], f"lines after the last m-ready: {out[-1]}"
    return out[:-1]


def load_cmds(data: bytes, chunk: int = 31) -> str:
    return f"db load {len(data)}%" + "".join(f"db {data[i : i + chunk].hex()}%" for i in range(0, len(data), chunk))


def image(seed: int) -> bytes:
    return bytes(random.Random(seed).randrange(256) for _ in range(ref.INPUT_BYTES))


def test_boot_lines(harness_bin: Path) -> None:
    proc = subprocess.run([str(harness_bin)], input=b"", capture_output=True, timeout=30)
    assert proc.stdout.decode().split("\r\n")[:-1] == BOOT


def test_name_profile_help_timestamp(harness_bin: Path) -> None:
    r = replies(session(harness_bin, "name%profile%help%timestamp%"))
    assert r[0] == ["m-name-dut-[bitpath-host]"]
    assert r[1] == ["m-profile-[ULPMark for tinyML Firmware V0.0.1]", "m-model-[bptest01]"]
    assert len(r[2]) >= 13 and all(line.startswith("m-help-[") for line in r[2])
    assert len(r[3]) == 1 and r[3][0].startswith("m-lap-us-")


def test_empty_command_only_ready_and_whitespace(harness_bin: Path) -> None:
    r = replies(session(harness_bin, "%\r\n  name \t%"))
    assert r == [[], ["m-name-dut-[bitpath-host]"]]


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("db 00", "e-[db: no transfer announced; send 'db load N' first]"),
        ("db load 0", "e-[Command 'db load' must be >0 bytes]"),
        ("db load -1", "e-[db load: size is not a non-negative decimal integer: -1]"),
        ("db load 12x", "e-[db load: size is not a non-negative decimal integer: 12x]"),
        ("db load 4097", "e-[db load: 4097 bytes exceed the buffer of 4096 bytes]"),
        ("db load 99999999999999999999", "e-[db load: 99999999999999999999 bytes exceed the buffer of 4096 bytes]"),
        ("db load", "e-[db load: expected one size argument]"),
        ("db", "e-[db: missing argument (db load N, db HH.., db print)]"),
        ("infer", "e-[infer: the model takes 784 input bytes; send 'db load 784' and the data first]"),
        ("infer 0", "e-[Inference iterations must be >0]"),
        ("infer -3 1", "e-[Inference iterations must be >0]"),
        ("infer 1 -1", "e-[infer: W is not a decimal integer in 0..BP_INFER_MAX_ITERS: -1]"),
        ("infer 1000001 0", "e-[infer: N above BP_INFER_MAX_ITERS]"),
        ("infer 1 2 3", "e-[infer: expected infer N [W]]"),
        ("results", "e-[results: no inference has run]"),
        ("bp-chosen", "e-[bp-chosen: no inference has run]"),
        ("bp-layers", "e-[bp-layers: no inference has run]"),
        ("bp-path 3", "e-[bp-path: not 'auto' or a path in 0..2: 3]"),
        ("bp-path -1", "e-[bp-path: not 'auto' or a path in 0..2: -1]"),
        ("bp-calib 0", "e-[bp-calib: expected bp-calib N with N in 1..BP_CALIB_MAX]"),
        ("name x", "e-[Command takes no arguments: name]"),
        ("foo", "e-[Unknown command: foo]"),
        ("a b c d e", "e-[Too many arguments for: a]"),
        ("db print 1", "e-[db print: range exceeds the 0 bytes loaded]"),
    ],
)
def test_malformed_command_gets_error_then_ready(harness_bin: Path, command: str, error: str) -> None:
    r = replies(session(harness_bin, command + "%name%"))
    assert r == [[error], ["m-name-dut-[bitpath-host]"]]


def test_hex_chunk_errors_leave_the_load_intact(harness_bin: Path) -> None:
    r = replies(session(harness_bin, "db load 4%db 001%db 0g%db 0011223344%db 00 11%db 0011%db AABB%db 00%db print%"))
    assert r == [
        ["m-[Expecting 4 bytes]"],
        ["e-[Insufficent number of hex digits]"],  # EEMBC's spelling, kept for compatibility
        ["e-[db: not a hex digit in: 0g]"],
        ["e-[db: 5 bytes exceed the 4 still expected; chunk ignored]"],
        ["e-[db: expected one hex string without spaces]"],
        [],
        ["m-load-done"],
        ["e-[db: all announced bytes already loaded; send 'db load N' to start again]"],
        ["m-buffer-00-11-aa-bb"],
    ]


def test_db_print_ranges(harness_bin: Path) -> None:
    data = bytes(range(20))
    r = replies(session(harness_bin, load_cmds(data, 7) + "db print%db print 3 17%db print 4 17%db print 0 20%"))
    assert r[-4] == ["m-buffer-00-01-02-03-04-05-06-07", "m-buffer-08-09-0a-0b-0c-0d-0e-0f", "m-buffer-10-11-12-13"]
    assert r[-3] == ["m-buffer-11-12-13"]
    assert r[-2] == ["e-[db print: range exceeds the 20 bytes loaded]"]
    assert r[-1] == []


def test_command_length_limit_is_80(harness_bin: Path) -> None:
    ok = "name" + " " * 76  # 80 characters
    r = replies(session(harness_bin, ok + "%" + ok + " %" + "x" * 5000 + "%name%"))
    assert r == [
        ["m-name-dut-[bitpath-host]"],
        ["e-[Command longer than 80 characters; ignored]"],
        ["e-[Command longer than 80 characters; ignored]"],
        ["m-name-dut-[bitpath-host]"],
    ]


@pytest.mark.parametrize("bad", [0x00, 0x7F, 0x80, 0xFF, 0x1B])
def test_invalid_bytes_are_refused(harness_bin: Path, bad: int) -> None:
    r = replies(session(harness_bin, b"na" + bytes([bad]) + b"me%name%"))
    assert r == [[f"e-[Invalid byte 0x{bad:02x} in command; ignored]"], ["m-name-dut-[bitpath-host]"]]


def test_infer_needs_the_exact_model_input(harness_bin: Path) -> None:
    r = replies(session(harness_bin, "db load 10%db 00%infer 1 0%" + load_cmds(bytes(784))[:-40] + "%infer 1 0%"))
    assert r[2] == ["e-[infer: the model takes 784 input bytes; send 'db load 784' and the data first]"]
    assert r[-1][0].startswith("e-[infer: input incomplete, ")


@pytest.mark.parametrize("path", [0, 1, 2, None])
def test_inference_matches_the_reference_exactly(harness_bin: Path, path: int | None) -> None:
    x = image(7 + (path or 0))
    select = "bp-path auto%" if path is None else f"bp-path {path}%"
    r = replies(session(harness_bin, select + load_cmds(x) + "infer 3 2%results%bp-chosen%bp-layers%"))
    want, chosen = ref.run(x, path)
    results = f"m-results-[{','.join(map(str, want))}]"
    assert r[0] == [f"m-bp-path-[{'auto' if path is None else path}]"]
    assert r[-4] == [
        "m-warmup-start-2",
        "m-warmup-done",
        "m-infer-start-3",
        r[-4][3],
        r[-4][4],
        "m-infer-done",
        results,
    ]
    t0, t1 = (int(r[-4][i].removeprefix("m-lap-us-")) for i in (3, 4))
    assert t1 - t0 == 7  # one timer read apart: the fake counter steps 7 us per read
    assert r[-3] == [results]
    assert r[-2] == [f"m-bp-chosen-[{chosen}]"]
    # fake counter: +1 per read, so every timed section reads as 1
    assert r[-1] == [
        "m-bp-unit-[fake counts]",
        f"m-bp-controller-[{1 if path is None else 0}]",
        "m-bp-layers-[1,1,1]",
        f"m-bp-total-[{4 if path is None else 3}]",
    ]


def test_default_path_is_auto_and_default_warmup_is_10(harness_bin: Path) -> None:
    x = image(3)
    r = replies(session(harness_bin, "bp-path%" + load_cmds(x) + "infer%bp-chosen%"))
    assert r[0] == ["m-bp-path-[auto]"]
    assert r[-2][:3] == ["m-warmup-start-10", "m-warmup-done", "m-infer-start-1"]
    assert r[-1] == [f"m-bp-chosen-[{ref.controller(x)}]"]


def test_bp_info_and_calib(harness_bin: Path) -> None:
    r = replies(session(harness_bin, "bp-info%bp-calib 1000%"))
    assert r[0] == [
        "m-bp-protocol-[1]",
        "m-bp-board-[host]",
        "m-bp-counter-[fake counts,1000000]",
        "m-bp-db-capacity-[4096]",
        "m-bp-model-[bp-testmodel]",
        "m-bp-ir-hash-[none]",
        "m-bp-input-bytes-[784]",
        "m-bp-classes-[10]",
        "m-bp-paths-[3]",
        "m-bp-path-name-[0,test path 0: 2 mix rounds]",
        "m-bp-path-name-[1,test path 1: 4 mix rounds]",
        "m-bp-path-name-[2,test path 2: 6 mix rounds]",
        "m-bp-layers-count-[3]",
        "m-bp-controller-[yes]",
        "m-bp-arena-bytes-[128]",
    ]
    assert r[1] == ["m-bp-calib-[1000,2001]"]


def test_model_larger_than_the_buffer_is_refused_but_device_serves(harness_bin: Path) -> None:
    proc = subprocess.run(
        [str(harness_bin), "100"], input=b"db load 101%infer 1 0%name%", capture_output=True, timeout=30
    )
    lines = proc.stdout.decode().split("\r\n")[:-1]
    assert "e-[boot: model input_bytes outside 1..db capacity]" in lines
    r = replies(lines[lines.index("m-ready") + 1 :])
    assert r == [
        ["e-[db load: 101 bytes exceed the buffer of 100 bytes]"],
        ["e-[infer: model input_bytes outside 1..db capacity]"],
        ["m-name-dut-[bitpath-host]"],
    ]


def test_reload_after_inference_and_results_persist(harness_bin: Path) -> None:
    a, b = image(1), image(2)
    r = replies(session(harness_bin, "bp-path 1%" + load_cmds(a) + "infer 1 0%" + load_cmds(b) + "results%infer 1 0%"))
    want_a, _ = ref.run(a, 1)
    want_b, _ = ref.run(b, 1)
    assert r[-2] == [f"m-results-[{','.join(map(str, want_a))}]"]
    assert r[-1][-1] == f"m-results-[{','.join(map(str, want_b))}]"
