"""`bitpath` sub-commands of the device area: build, flash, emulate."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

BOARD_HELP = "qemu_f405 (emulated STM32F405), nucleo_f446re or nrf52840dk."


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (e.g. from a supervisor) stops `bitpath emulate` the same way Ctrl-C does."""
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `bitpath` app."""

    @app.command("build")
    def build_cmd(
        board: str = typer.Option("qemu_f405", "--board", "-b", help=BOARD_HELP),
        official: bool = typer.Option(
            False, help="Use the official PlatformIO platform env (needs PlatformIO's registry)."
        ),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the compiler command lines."),
        model_dir: Path = typer.Option(
            None, help="Folder with a generated model.c (`bitpath codegen`); default: the test model."
        ),
        kernels: str = typer.Option(None, help="Force the kernel variant: ref or dsp (default: by the board's CPU)."),
    ) -> None:
        """Build the firmware for a board with PlatformIO (offline through the local platform)."""
        from bitpath.device import build as b

        try:
            spec = b.board(board)
            if official:
                b.require_official_platform(spec)
                assert spec.official_env is not None
                proc = b.run_pio(spec.official_env, verbose=verbose, model_dir=model_dir, kernels=kernels)
                elf = b.elf_path(spec.official_env, model_dir)
            else:
                elf = b.build(spec.local_env, verbose=verbose, model_dir=model_dir, kernels=kernels)
                proc = None
        except b.BuildError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        if verbose and proc is not None:
            typer.echo(proc.stdout)
        typer.echo(f"built {elf}")

    @app.command("flash")
    def flash_cmd(
        board: str = typer.Option(..., "--board", "-b", help="nucleo_f446re or nrf52840dk."),
        local: bool = typer.Option(
            False, help="Flash the offline build through pyOCD instead of the official platform's uploader."
        ),
        port: str = typer.Option(None, "--upload-port", help="Passed to `pio run --upload-port`."),
    ) -> None:
        """Flash a real board (`pio run -t upload`). The official platforms need PlatformIO's registry."""
        from bitpath.device import build as b

        try:
            out = b.flash(board, local=local, upload_port=port)
        except b.BuildError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(out)

    @app.command("firmware-size")
    def firmware_size_cmd(
        board: Annotated[list[str] | None, typer.Option("--board", "-b", help="Board(s); default: all.")] = None,
        build_first: bool = typer.Option(True, "--build/--no-build", help="Build (offline) before measuring."),
    ) -> None:
        """Flash and RAM of each board's firmware, from the linked ELF, as a markdown table."""
        from bitpath.device import build as b
        from bitpath.device.size import markdown_row, measure

        names = board or list(b.BOARDS)
        typer.echo("| board | env | flash (B) | RAM (B) | stack (B) | .bss (B) | .data (B) |")
        typer.echo("|---|---|---:|---:|---:|---:|---:|")
        try:
            for name in names:
                env = b.board(name).local_env
                elf = b.build(env) if build_first else b.elf_path(env)
                typer.echo(markdown_row(name, env, measure(elf)))
        except (b.BuildError, OSError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc

    @app.command("kbench")
    def kbench_cmd(
        kernels: Annotated[
            list[str] | None, typer.Option("--kernels", "-k", help="Kernel variants to time: ref, dsp (default both).")
        ] = None,
        out: Path = typer.Option(None, "--out", "-o", help="Also write the markdown table to this file."),
    ) -> None:
        """Time every kernel on the fast-kernels shapes on the emulated board (emulated instructions)."""
        from bitpath.device import build as b
        from bitpath.device import kbench

        results = []
        try:
            for variant in kernels or ["ref", "dsp"]:
                typer.echo(f"building and running the kernel benchmark ({variant} kernels) ...", err=True)
                results.append(kbench.run(variant))
        except (b.BuildError, RuntimeError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        table = kbench.markdown(results)
        typer.echo(f"unit: {results[0].unit}; timer overhead subtracted: {results[0].overhead}")
        typer.echo(table)
        if out is not None:
            out.write_text(table)

    @app.command("emulate")
    def emulate_cmd(
        elf: str = typer.Option(None, help="Firmware ELF to run (default: build the qemu_f405 env)."),
        model_dir: Path = typer.Option(
            None, help="Build with this generated model (`bitpath codegen`) instead of the test model."
        ),
        boot_timeout: float = typer.Option(30.0, help="Seconds to wait for the firmware's m-ready."),
    ) -> None:
        """Start the emulated board (QEMU netduinoplus2) and print its pyserial URL; Ctrl-C stops it."""
        from bitpath.device import build as b
        from bitpath.device.emulate import Emulator, EmulatorError

        try:
            if elf is None and model_dir is not None:
                elf = str(b.build("qemu_f405", model_dir=model_dir))
            emu = Emulator(elf, boot_timeout=boot_timeout).start()
        except (EmulatorError, b.BuildError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        # Ctrl-C (or SIGTERM) at any moment after the URL is printed stops QEMU: handlers and try first.
        # SIGINT explicitly too: a process started from a background job inherits SIGINT ignored, and
        # Python then installs no KeyboardInterrupt handler (`kill -INT` would do nothing).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        try:
            typer.echo(emu.url)
            typer.echo(f"# QEMU pid {emu.pid}; boot: {' | '.join(emu.boot_lines)}; Ctrl-C to stop", err=True)
            code = emu.wait()
            typer.echo(f"QEMU exited with status {code}", err=True)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            pass
        finally:
            emu.stop()
