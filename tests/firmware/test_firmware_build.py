"""Offline PlatformIO builds of every board, and what the linked images must (not) contain."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bitpath.device import build
from bitpath.device.size import measure

pytestmark = pytest.mark.emulator

# (board, flash origin, flash bytes, RAM bytes) of each chip, from the datasheets
CHIPS = {
    "qemu_f405": (0x0800_0000, 1024 * 1024, 128 * 1024),
    "nucleo_f446re": (0x0800_0000, 512 * 1024, 128 * 1024),
    "nrf52840dk": (0x0000_0000, 1024 * 1024, 256 * 1024),
}


@pytest.fixture(scope="module")
def elves(qemu_elf: Path) -> dict[str, Path]:
    out = {"qemu_f405": qemu_elf}
    for name in ("nucleo_f446re", "nrf52840dk"):
        out[name] = build.build(build.board(name).local_env)
    return out


@pytest.mark.parametrize("board", list(CHIPS))
def test_image_layout_and_size(elves: dict[str, Path], board: str) -> None:
    origin, flash_max, ram_max = CHIPS[board]
    s = measure(elves[board])
    assert s.flash_origin == origin
    assert s.vector_sp == 0x2000_0000 + ram_max, "initial SP must be the top of RAM"
    assert s.vector_reset == s.reset_handler | 1, "reset vector must point at Reset_Handler (Thumb bit set)"
    assert 0 < s.flash < flash_max and 0 < s.ram < ram_max
    assert s.stack == 8192
    assert s.forbidden == [], f"allocator/printf linked into the firmware: {s.forbidden}"


def test_pio_offline_setup_is_complete() -> None:
    proc = subprocess.run(["bash", str(build.PIO_OFFLINE), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_fresh_platformio_home_builds_offline(tmp_path: Path) -> None:
    """A machine that never ran PlatformIO: the script alone makes `pio run` work, with no registry."""
    env = dict(os.environ)
    env["PLATFORMIO_CORE_DIR"] = str(tmp_path / "core")
    env["PLATFORMIO_BUILD_DIR"] = str(tmp_path / "build")
    setup = subprocess.run(["bash", str(build.PIO_OFFLINE)], capture_output=True, text=True, env=env, timeout=300)
    assert setup.returncode == 0, setup.stderr
    again = subprocess.run(["bash", str(build.PIO_OFFLINE)], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 0 and "building tool-scons" not in again.stderr  # idempotent, no rebuild
    pio = shutil.which("pio")
    assert pio is not None
    run = subprocess.run(
        [pio, "run", "-d", str(build.REPO_ROOT), "-e", "qemu_f405"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "HTTPClientError" not in out and "Downloading" not in out
    assert (tmp_path / "build" / "qemu_f405" / "firmware.elf").is_file()


def test_unknown_board_and_emulated_flash_are_clear_errors() -> None:
    with pytest.raises(build.BuildError, match="unknown board 'uno'"):
        build.board("uno")
    with pytest.raises(build.BuildError, match="nothing to flash"):
        build.flash("qemu_f405")


def test_official_flash_without_registry_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path))  # official platform not installed there
    monkeypatch.setattr(build, "registry_reachable", lambda timeout=3.0: False)
    with pytest.raises(build.BuildError, match="registry .* is unreachable.*ststm32"):
        build.flash("nucleo_f446re")


def test_cli_build_and_flash_messages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bitpath.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["build", "--board", "qemu_f405"])
    assert ok.exit_code == 0 and "firmware.elf" in ok.output
    emulated = runner.invoke(app, ["flash", "--board", "qemu_f405"])
    assert emulated.exit_code == 1 and "nothing to flash" in emulated.output
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path))
    monkeypatch.setattr(build, "registry_reachable", lambda timeout=3.0: False)
    official = runner.invoke(app, ["build", "--board", "nrf52840dk", "--official"])
    assert official.exit_code == 1 and "nordicnrf52" in official.output and "bitpath build --board" in official.output
