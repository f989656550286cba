"""The portable kernels build warning-free for the host and for Cortex-M0/M4/M7 (no HAL, no libc I/O)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bitpath.ckernels.build import kernels_dir

KDIR = kernels_dir()
SOURCES = sorted((KDIR / "src" / "ref").glob("*.c"))
STRICT = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion", "-Wno-sign-conversion"]

TARGETS = {
    "host": ["gcc", "-O2"],
    "cortex-m0": ["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-Os"],
    "cortex-m4": ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"],
    "cortex-m7": ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-O2"],
}


def test_one_function_per_file() -> None:
    header = (KDIR / "include" / "bp_kernels.h").read_text()
    for src in SOURCES:
        assert f" {src.stem}(" in header, f"{src.name}: file name must equal the function it defines"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_kernels_compile_strict(target: str, tmp_path: Path) -> None:
    cc, *flags = TARGETS[target]
    if shutil.which(cc) is None:
        pytest.fail(f"{cc} not installed: run `bash host/run.sh setup` (installs gcc-arm-none-eabi)")
    for src in SOURCES:
        subprocess.run(
            [cc, *flags, *STRICT, f"-I{KDIR / 'include'}", "-c", str(src), "-o", str(tmp_path / f"{src.stem}.o")],
            check=True,
        )
    # No kernel may depend on malloc, printf or other hosted-library calls.
    nm = shutil.which("arm-none-eabi-nm" if cc.startswith("arm") else "nm")
    assert nm is not None
    undefined = subprocess.run(
        [nm, "-u", *(str(p) for p in tmp_path.glob("*.o"))], check=True, capture_output=True, text=True
    ).stdout
    for banned in ("malloc", "free", "printf", "puts", "putchar", "abort", "exit"):
        assert f" {banned}\n" not in undefined, f"a kernel calls {banned}"
