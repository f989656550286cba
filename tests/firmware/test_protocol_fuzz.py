"""Random + mutation fuzzing of the protocol parser under ASan/UBSan (native build).

CI runs 50,000 sessions (a few seconds); the 1M-session run is recorded in
docs/results/protocol-fuzz.md with its command. Set BITPATH_FUZZ_ITERATIONS to run more here.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ITERATIONS = int(os.environ.get("BITPATH_FUZZ_ITERATIONS", "50000"))


def test_fuzz_protocol(fuzz_bin: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(fuzz_bin), str(ITERATIONS), "20261125", str(tmp_path)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pattern = r"(\d+) inputs, (\d+) bytes, 0 failures; e- lines: (\d+); .*load: (\d+), .*inference: (\d+)"
    m = re.search(pattern, proc.stdout)
    assert m, proc.stdout
    inputs, _, errors, loads, infers = map(int, m.groups())
    assert inputs == ITERATIONS
    # The generator must keep reaching the deep states, not only the error paths.
    assert errors > ITERATIONS and loads > ITERATIONS // 20 and infers > ITERATIONS // 20
    assert not list(tmp_path.glob("fuzz-failure-*"))


def test_fuzzer_detects_an_injected_overflow(native_dir: Path, tmp_path: Path) -> None:
    """Remove the db bounds check from a copy of protocol.c: the fuzzer must catch it."""
    import fw_native as native

    src = (native.ROOT / "firmware" / "src" / "protocol.c").read_text()
    check = "if (bytes > p->db_expect - p->db_pos) {"
    assert check in src
    bad = tmp_path / "protocol_bad.c"
    bad.write_text(src.replace(check, "if (0) {"))
    sources = native.SOURCES
    try:
        native.SOURCES = [bad, *sources[1:]]
        exe = native.build("fuzz_protocol.c", tmp_path, defines=("BP_INFER_MAX_ITERS=64u",))
    finally:
        native.SOURCES = sources
    proc = subprocess.run([str(exe), "50000", "1", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "AddressSanitizer" in proc.stderr or "FAIL at input" in proc.stderr, proc.stderr[-2000:]
