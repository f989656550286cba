"""Build a generated model into the emulated-board firmware and boot it (shared by the on-board tests)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from bitpath.codegen import render


@contextmanager
def emulated(ir, gen_dir: Path):
    """Render ``ir`` into ``gen_dir``, build env qemu_f405 with it and yield the running emulator."""
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc", "pio") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: bash host/run.sh setup")
    from bitpath.device import build
    from bitpath.device.emulate import Emulator

    render(ir, gen_dir)
    elf = build.build("qemu_f405", model_dir=gen_dir)
    with Emulator(elf) as emu:
        yield emu


@contextmanager
def board_fixture(ir, tmp_path_factory: pytest.TempPathFactory, name: str):
    """For a module-scoped fixture: ``(ir, emulator)`` with ``ir`` built and booted."""
    with emulated(ir, Path(tmp_path_factory.mktemp(name))) as emu:
        yield ir, emu


@contextmanager
def synced_client(url: str):
    """A protocol client on ``url``, synced (for a per-test fixture)."""
    from bitpath.device.client import Client

    with Client(url, timeout=10.0) as d:
        d.sync()
        yield d
