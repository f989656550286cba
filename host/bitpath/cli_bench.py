"""`bitpath` sub-commands of the benchmark area: bench, report, pty-bridge."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

BOARDS = "qemu_f405 (emulated STM32F405), nucleo_f446re or nrf52840dk"


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `bitpath` app."""

    @app.command("bench")
    def bench_cmd(
        ir_file: Annotated[Path, typer.Option("--ir", help="The IR the firmware was generated from.")],
        port: Annotated[str | None, typer.Option(help="pyserial URL: /dev/ttyACM0, socket://HOST:PORT, rfc2217://…")
                        ] = None,
        emulate: Annotated[bool, typer.Option(help="Build --model-dir for qemu_f405 and start the emulated board."
                                              )] = False,
        model_dir: Annotated[Path | None, typer.Option(help="Generated model folder (for --emulate).")] = None,
        board: Annotated[str | None, typer.Option(help=f"Board profile: {BOARDS} (default: what bp-info says).")
                         ] = None,
        images: Annotated[int, typer.Option(help="Test images to stream.")] = 100,
        paths: Annotated[str | None, typer.Option(help="Comma-separated path names/indices and/or auto "
                                                  "(default: all, plus auto when the device has a controller).")
                         ] = None,
        out: Annotated[Path, typer.Option(help="Output folder: bench.jsonl, results.json, report.md/html, PNGs.")
                       ] = Path("runs/bench"),
        resume: Annotated[bool, typer.Option(help="Continue the run logged in OUT/bench.jsonl.")] = False,
        elf: Annotated[Path | None, typer.Option(help="Firmware ELF: flash/RAM and sha256 in the report.")] = None,
        dataset: Annotated[str | None, typer.Option(help="Dataset: fashion-mnist, mnist, cifar10 or npz "
                                                    "(default: the IR's training dataset).")] = None,
        data_dir: Annotated[Path | None, typer.Option(help="Dataset folder, or the .npz file.")] = None,
        ppk2: Annotated[str | None, typer.Option(help="Serial port of a Nordic PPK2: measure energy (needs "
                                                 "`pip install ppk2-api`).")] = None,
        ppk2_volts: Annotated[float, typer.Option(help="DUT supply voltage (V) for the PPK2 figures.")] = 3.3,
        ppk2_source: Annotated[bool, typer.Option(help="Power the DUT from the PPK2 (source meter).")] = False,
        energy_iterations: Annotated[int, typer.Option(help="Inferences per PPK2 window (`infer N 0`).")] = 50,
        timeout: Annotated[float, typer.Option(help="Seconds per reply line.")] = 5.0,
        infer_timeout: Annotated[float, typer.Option(help="Seconds per line of an infer reply.")] = 120.0,
        retries: Annotated[int, typer.Option(help="Retries per measurement after a failed/garbled reply.")] = 6,
        baud: Annotated[int, typer.Option(help="Baud rate of a real serial port.")] = 115200,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    ) -> None:
        """Stream test images to a board over the MLPerf Tiny protocol; accuracy, bit-exactness, cost per
        path and layer, energy; results JSON + Markdown + HTML report. Nothing measured is lost:
        every measurement is appended to OUT/bench.jsonl as it is taken (continue with --resume)."""
        from bitpath.bench import boards, report, results
        from bitpath.bench.link import BenchClient
        from bitpath.bench.run import Bench, BenchConfig, BenchError, firmware_info
        from bitpath.data import load_dataset
        from bitpath.device.client import ProtocolError
        from bitpath.ir import IRError, load

        if (port is None) == (not emulate):
            raise typer.BadParameter("give exactly one of --port URL or --emulate")
        if emulate and model_dir is None:
            raise typer.BadParameter("--emulate needs --model-dir (the generated model folder)")
        try:
            ir = load(ir_file)
        except IRError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        ds = dataset or (ir.header.get("source") or {}).get("config", {}).get("dataset") or "fashion-mnist"
        test = load_dataset(ds, "test", data_dir)
        with contextlib.ExitStack() as stack:
            if emulate:
                from bitpath.device import build as fw
                from bitpath.device.emulate import Emulator

                typer.echo(f"building the firmware for qemu_f405 with {model_dir}")
                elf = elf or fw.build("qemu_f405", model_dir=model_dir)
                emu = stack.enter_context(Emulator(elf))
                port = emu.url
                typer.echo(f"emulated board on {port}")
            assert port is not None
            firmware = firmware_info(elf) if elf is not None else None
            cfg = BenchConfig(images=images, paths=[p.strip() for p in paths.split(",")] if paths else None,
                              retries=retries, dataset=ds, energy_iterations=energy_iterations if ppk2 else 0,
                              extra={"firmware": firmware, "port": port})
            try:
                dev = stack.enter_context(BenchClient(port, timeout=timeout, infer_timeout=infer_timeout,
                                                      baudrate=baud))
            except ProtocolError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from exc
            meter = None
            if ppk2:
                from bitpath.bench.energy import PPK2Meter, PPK2Unavailable

                try:
                    meter = stack.enter_context(PPK2Meter(ppk2, volts=ppk2_volts, source_meter=ppk2_source))
                except PPK2Unavailable as exc:
                    typer.echo(f"error: {exc}", err=True)
                    raise typer.Exit(1) from exc
            try:
                dev.resync()
                info_board = board or dev.info().board
            except ProtocolError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from exc
            name = board or boards.board_for_device(info_board)
            if name is None:
                typer.echo(f"error: no board profile for the device's board {info_board!r}; pass --board", err=True)
                raise typer.Exit(1)
            log_path = out / "bench.jsonl"
            bench = Bench(dev, ir, test.x, test.y, log_path, profile=boards.profile(name), config=cfg,
                          resume=resume, meter=meter, log=typer.echo, progress=progress)
            failed: BaseException | None = None
            try:
                bench.run()
            except (BenchError, ProtocolError, KeyboardInterrupt) as exc:
                failed = exc
            if not log_path.exists():
                typer.echo(f"error: {failed}", err=True)
                raise typer.Exit(1)
            r = results.from_log(log_path)
            files = report.write(r, out)
        typer.echo(_headline(r))
        typer.echo(f"log {log_path}; report {files['md']} and {files['html']}")
        if failed is not None:
            typer.echo(f"stopped early ({type(failed).__name__}: {failed}); the report covers what was measured; "
                       f"continue with the same command plus --resume", err=True)
            raise typer.Exit(130 if isinstance(failed, KeyboardInterrupt) else 1)

    @app.command("report")
    def report_cmd(
        results_file: Annotated[Path, typer.Argument(help="results.json or a bench.jsonl log.")],
        out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/bench-report"),
    ) -> None:
        """Regenerate the Markdown/HTML report and plots from stored results."""
        from bitpath.bench import report, results

        try:
            r = results.load(results_file)
        except (OSError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        files = report.write(r, out)
        typer.echo(_headline(r))
        typer.echo(f"wrote {files['md']}, {files['html']}")

    @app.command("pty-bridge")
    def pty_bridge_cmd(
        port: Annotated[str, typer.Option(help="The board's URL, e.g. socket://127.0.0.1:PORT (bitpath emulate).")],
        link: Annotated[Path | None, typer.Option(help="Also make this symlink to the pty, e.g. /tmp/ttyBP.")] = None,
    ) -> None:
        """Expose a socket:// (emulated) board as a pseudo-terminal that tools opening a device path
        with serial.Serial (the MLPerf Tiny runner) can use. Runs until Ctrl-C."""
        from bitpath.bench.ptybridge import PtyBridge

        def _stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        with PtyBridge(port, link=link) as bridge:
            typer.echo(f"{bridge.path}" + (f" (link {link})" if link else "") + f" <-> {port}; Ctrl-C stops")
            with contextlib.suppress(KeyboardInterrupt):
                bridge.wait()


def _headline(r: dict) -> str:
    unit = "instructions (emulated)" if "emulated" in r["unit"] else r["unit"]
    rows = [f"{r['dataset']['images']} images on {r['board']['device']} ({r['numbers']})"]
    for name, e in r["paths"].items():
        rows.append(f"  {name:12s} accuracy {100 * e['accuracy']:6.2f} %  mismatches {e['mismatches']}  "
                    f"mean {e['cost']['mean']:,.0f} {unit}")
    return "\n".join(rows)
