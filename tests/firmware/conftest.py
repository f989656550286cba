"""Fixtures for the firmware tests: native protocol builds, the emulated board, a connected client."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fw_native as native  # noqa: E402


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("native")


@pytest.fixture(scope="session")
def harness_bin(native_dir: Path) -> Path:
    return native.build("host_harness.c", native_dir)


@pytest.fixture(scope="session")
def fuzz_bin(native_dir: Path) -> Path:
    # Small BP_INFER_MAX_ITERS: a mutated `infer 999999` must not stall the fuzzer.
    return native.build("fuzz_protocol.c", native_dir, defines=("BP_INFER_MAX_ITERS=64u",))


def _require_tools() -> None:
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "pio") if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"emulator tests need {', '.join(missing)} (bash host/run.sh setup installs them; "
            "deselect with -m 'not emulator')"
        )


@pytest.fixture(scope="session")
def qemu_elf() -> Path:
    _require_tools()
    from bitpath.device import build

    return build.build("qemu_f405")


@pytest.fixture(scope="session")
def emulator(qemu_elf: Path) -> Iterator[object]:
    from bitpath.device.emulate import Emulator

    with Emulator(qemu_elf) as emu:
        yield emu


@pytest.fixture()
def dev(emulator: object) -> Iterator[object]:
    from bitpath.device.client import Client

    with Client(emulator.url, timeout=10.0) as client:  # type: ignore[attr-defined]
        client.sync()
        yield client
