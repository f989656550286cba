"""`bitpath` sub-commands of the integer core: kernel build/self-check and the end-to-end demo."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import typer

from bitpath.ref.formats import ActFormat, LayerQuant, Window


def kernels_check(cases: int, seed: int) -> tuple[int, int]:  # used by `bitpath kernels`
    """Compare the C conv2d with the numpy reference on random layers for every bit combination.

    Returns (cases compared, mismatches).
    """
    from bitpath import ckernels
    from bitpath.ref import ops

    rng = np.random.default_rng(seed)
    combos = list(itertools.product((2, 4, 8), (2, 4, 8), (2, 4, 8)))
    done = bad = 0
    from tqdm import tqdm

    for i in tqdm(range(cases), desc="conv2d C vs numpy", unit="case"):
        wv, ib, ob = combos[i % len(combos)]
        q = LayerQuant(ActFormat(ib), ActFormat(ob), 8, wv)
        cin, cout = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        x = rng.integers(0, 2**ib, (8, 8, cin))
        w = rng.integers(-128, 128, (cout, 3, 3, cin))
        b = rng.integers(-1000, 1000, cout)
        m = rng.integers(2**30, 2**31, cout)
        s = np.full(cout, 31 + int(np.log2(9 * cin * 2**ib * 2 ** (wv - 1) / 8 / 2**ob + 1)))
        ref = ops.conv2d(x, w, b, m, s, q, Window.same(3))
        got = ckernels.conv2d(x, w, b, m, s, q, Window.same(3))
        done += 1
        bad += int(not np.array_equal(ref, got))
    return done, bad


def register(app: typer.Typer) -> None:
    """Add the core commands to the `bitpath` app."""

    @app.command("kernels")
    def kernels_cmd(
        check: int = typer.Option(270, help="Random conv2d layers to compare, C against numpy (0: build only)."),
        seed: int = typer.Option(0, help="Random seed."),
    ) -> None:
        """Build the C kernels for the host (cffi) and compare them with the numpy reference."""
        from bitpath.ckernels.build import build

        typer.echo(f"kernels built: {build()}")
        if check:
            done, bad = kernels_check(check, seed)
            typer.echo(f"{done} layers compared, {bad} mismatches")
            if bad:
                raise typer.Exit(1)

    @app.command("codegen")
    def codegen_cmd(
        ir_path: Path = typer.Argument(..., help="The IR file (`bitpath export`)."),
        out: Path = typer.Option(Path("build/model"), "--out", "-o", help="Folder to write model.c into."),
        view_copies: bool = typer.Option(
            True, help="Give paths that read a 2-bit view of wider conv/FC weights a 2-bit copy of it: the same "
            "results, faster kernels, K*Cout/4 more bytes of flash per such layer (docs/kernels.md)."),
    ) -> None:
        """Generate the C model (model.c: weights, per-path tables, layer table, arena) from an IR."""
        from bitpath.codegen import CodegenError, render
        from bitpath.ir import IRError, load

        try:
            gen = render(load(ir_path), out, view_copies=view_copies)
        except (IRError, CodegenError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"wrote {gen.model_c}")
        copies = f", {gen.copy_bytes} B of them 2-bit view copies" if gen.copy_bytes else ""
        typer.echo(f"  IR {gen.ir_hash[:16]}, weights {gen.weight_bytes} B (all paths, nested{copies}), "
                   f"activation arena {gen.arena_bytes} B")
        typer.echo(f"  next: bitpath build --model-dir {out}   or   bitpath emulate --model-dir {out}")

    @app.command("demo")
    def demo_cmd(
        quick: bool = typer.Option(False, help="Smoke configuration (minutes): tiny training, few images."),
        out: Path = typer.Option(None, "--out", help="Run folder (default runs/demo, or runs/demo-quick)."),
        board_images: int = typer.Option(None, help="Test images streamed to the emulated board per path."),
        host_images: int = typer.Option(None, help="Test images for host accuracy (default: all 10,000)."),
        threads: int = typer.Option(None, help="torch CPU threads for training."),
        progress: bool = typer.Option(True, help="Show progress bars."),
    ) -> None:
        """The main job end to end: train, export, accuracy per path, generate C, build, run on the
        emulated Cortex-M4 over the serial protocol (bit-exact check), report."""
        from dataclasses import replace

        from bitpath.demo import DemoConfig, run

        cfg = DemoConfig.quick() if quick else DemoConfig()
        over = {"progress": progress, "threads": threads}
        if out is not None:
            over["out"] = out
        if board_images is not None:
            over["board_images"] = board_images
        if host_images is not None:
            over["host_images"] = host_images
        cfg = replace(cfg, **over)
        r = run(cfg, log=typer.echo)
        bad = sum(d["mismatches"] for d in r["device"].values())
        typer.echo("")
        typer.echo((cfg.out / "demo.md").read_text())
        typer.echo(f"report: {cfg.out / 'demo.md'} and {cfg.out / 'demo.json'} ({r['seconds']} s)")
        if bad:
            typer.echo(f"error: {bad} inferences on the board differ from the host reference", err=True)
            raise typer.Exit(1)
