"""`bitpath` sub-commands of the integer core: kernel build/self-check and the end-to-end demo."""

from __future__ import annotations

import itertools

import numpy as np
import typer

from bitpath.ref.formats import ActFormat, LayerQuant, Window


def kernels_check(cases: int, seed: int) -> tuple[int, int]:
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

    @app.command("demo")
    def demo_cmd(
        quick: bool = typer.Option(False, help="Smallest configuration (smoke test)."),
    ) -> None:
        """Run the main job end to end on the embedded default (grows as the pipeline lands)."""
        from bitpath.ckernels.build import build

        typer.echo("[1/1] integer core: build the C kernels and check them against the numpy reference")
        typer.echo(f"      kernels: {build()}")
        done, bad = kernels_check(27 if quick else 270, 0)
        typer.echo(f"      {done} random layers over every (weight, input, output) bit combination: {bad} mismatches")
        if bad:
            raise typer.Exit(1)
