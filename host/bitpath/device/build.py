"""Build and flash the firmware through PlatformIO (`pio run`), offline where possible.

Boards and their platformio.ini environments:

| board          | offline env (local platform)  | official env (needs PlatformIO's registry) |
|----------------|-------------------------------|--------------------------------------------|
| qemu_f405      | qemu_f405                     | -                                          |
| nucleo_f446re  | nucleo_f446re_local           | nucleo_f446re (ststm32)                    |
| nrf52840dk     | nrf52840dk_local              | nrf52840_dk (nordicnrf52)                  |
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PIO_OFFLINE = REPO_ROOT / "host" / "pio_offline.sh"
REGISTRY_HOST = "api.registry.platformio.org"


@dataclass(frozen=True)
class Board:
    name: str
    local_env: str
    official_env: str | None
    official_platform: str | None


BOARDS: dict[str, Board] = {
    "qemu_f405": Board("qemu_f405", "qemu_f405", None, None),
    "nucleo_f446re": Board("nucleo_f446re", "nucleo_f446re_local", "nucleo_f446re", "ststm32"),
    "nrf52840dk": Board("nrf52840dk", "nrf52840dk_local", "nrf52840_dk", "nordicnrf52"),
}


class BuildError(RuntimeError):
    """PlatformIO is missing, misconfigured, or the build failed (message includes the output tail)."""


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise BuildError(f"unknown board {name!r}; known: {', '.join(BOARDS)}") from None


def pio_executable() -> str:
    exe = shutil.which("pio") or shutil.which("platformio")
    if exe is None:
        raise BuildError("PlatformIO (`pio`) not found on PATH: `pip install platformio` or `bash host/run.sh setup`")
    return exe


def ensure_offline_setup() -> None:
    """Run host/pio_offline.sh (idempotent, fast when already done)."""
    pio_executable()
    proc = subprocess.run(["bash", str(PIO_OFFLINE)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"host/pio_offline.sh failed:\n{_tail(proc.stdout + proc.stderr)}")


def _builds_root(model_dir: Path | None) -> Path:
    # One PlatformIO build folder per model, so the test model and each generated model keep their
    # own objects and ELF (switching models never mixes stale objects).
    if model_dir is None:
        return REPO_ROOT / ".pio" / "build"
    tag = hashlib.sha256(str(Path(model_dir).resolve()).encode()).hexdigest()[:12]
    return REPO_ROOT / ".pio" / f"build-model-{tag}"


def build_dir(env: str, model_dir: Path | None = None) -> Path:
    return _builds_root(model_dir) / env


def elf_path(env: str, model_dir: Path | None = None) -> Path:
    return build_dir(env, model_dir) / "firmware.elf"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _pio_env(model_dir: Path | None = None, kernels: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # firmware/pio_bitpath.py: which model to link (none: the hand-written test model) and which
    # kernel variant (none: chosen by the board's CPU). Never inherit these from the caller's shell.
    env.pop("BITPATH_MODEL_DIR", None)
    env.pop("BITPATH_KERNELS", None)
    env["PLATFORMIO_BUILD_DIR"] = str(_builds_root(model_dir))
    if model_dir is not None:
        env["BITPATH_MODEL_DIR"] = str(Path(model_dir).resolve())
    if kernels is not None:
        env["BITPATH_KERNELS"] = kernels
    # Both call home; offline they only cost time (pio_offline.sh also stores these settings).
    env.setdefault("PLATFORMIO_SETTING_ENABLE_TELEMETRY", "No")
    env.setdefault("PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL", "3650")
    return env


def run_pio(
    env: str,
    targets: list[str] | None = None,
    *,
    verbose: bool = False,
    model_dir: Path | None = None,
    kernels: str | None = None,
) -> subprocess.CompletedProcess:
    """`pio run -e ENV [-t T ...]` in the repository root; raises BuildError on failure.

    ``model_dir``: folder with a generated ``model.c`` to link (default: the test model).
    ``kernels``: "ref" or "dsp" to force a kernel variant (default: by the board's CPU).
    """
    cmd = [pio_executable(), "run", "-d", str(REPO_ROOT), "-e", env]
    for t in targets or []:
        cmd += ["-t", t]
    if verbose:
        cmd.append("-v")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_pio_env(model_dir, kernels))
    if proc.returncode != 0:
        raise BuildError(f"`{' '.join(cmd[1:])}` failed:\n{_tail(proc.stdout + proc.stderr)}")
    return proc


def build(
    env: str = "qemu_f405", *, verbose: bool = False, model_dir: Path | None = None, kernels: str | None = None
) -> Path:
    """Build one environment offline (incremental) and return its ELF.

    ``model_dir`` links a generated model (``bitpath codegen``) instead of the test model.
    """
    ensure_offline_setup()
    run_pio(env, verbose=verbose, model_dir=model_dir, kernels=kernels)
    elf = elf_path(env, model_dir)
    if not elf.is_file():
        raise BuildError(f"pio reported success but {elf} does not exist")
    return elf


def registry_reachable(timeout: float = 3.0) -> bool:
    """Whether PlatformIO's registry answers a TCP connection (a failed install takes ~60 s)."""
    try:
        with socket.create_connection((REGISTRY_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def platform_installed(name: str) -> bool:
    core = Path(os.environ.get("PLATFORMIO_CORE_DIR", Path.home() / ".platformio"))
    return (core / "platforms" / name / "platform.json").is_file()


def require_official_platform(b: Board) -> None:
    """Fail at once, with the offline alternatives, when the official platform cannot be installed."""
    if b.official_env is None or b.official_platform is None:
        raise BuildError(f"{b.name} has no official-platform environment (it builds offline: `bitpath build`)")
    if not platform_installed(b.official_platform) and not registry_reachable():
        raise BuildError(
            f"PlatformIO's registry ({REGISTRY_HOST}) is unreachable and the official platform "
            f"'{b.official_platform}' is not installed, so the env '{b.official_env}' cannot build or upload here.\n"
            f"Alternatives: build offline with `bitpath build --board {b.name}` and flash "
            f"{elf_path(b.local_env)} with your own tool (STM32CubeProgrammer, nrfjprog, J-Link, openocd), "
            f"or `bitpath flash --board {b.name} --local` (pyOCD), or run this on a machine with internet."
        )


def flash(board_name: str, *, local: bool = False, upload_port: str | None = None) -> str:
    """Flash a real board with `pio run -t upload`; returns pio's output.

    The official environments need the ststm32/nordicnrf52 platforms from PlatformIO's registry
    (and their uploader packages). When that is unreachable and the platform is not installed yet
    this fails at once with the alternatives, instead of after pio's 60-second network timeout.
    """
    b = board(board_name)
    if b.official_env is None:
        raise BuildError(f"{b.name} is the emulated board: nothing to flash; run `bitpath emulate` instead")
    extra = [] if upload_port is None else ["--upload-port", upload_port]
    if local:
        ensure_offline_setup()
        if shutil.which("pyocd") is None:
            raise BuildError("`--local` flashes through pyOCD: `pip install pyocd` first")
        env = b.local_env
    else:
        require_official_platform(b)
        env = b.official_env
    cmd = [pio_executable(), "run", "-d", str(REPO_ROOT), "-e", env, "-t", "upload", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_pio_env())
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        hint = ""
        if "HTTPClientError" in out or "Could not resolve" in out:
            hint = "\n(PlatformIO could not reach its registry: see `bitpath flash --help` for offline options)"
        raise BuildError(f"`{' '.join(cmd[1:])}` failed:\n{_tail(out)}{hint}")
    return out
