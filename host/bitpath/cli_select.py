"""`bitpath select`: bit-path selection and the on-device controller (issue 5).

Sub-steps, each usable alone:

- `bitpath select costs IR`: the per-layer device cost table (measured on the emulated board);
- `bitpath select sensitivity IR`: per-layer sensitivity to lowering (KL of the logits, imprinting);
- `bitpath select paths IR`: K candidate bit-paths by an integer program -> a `--paths` JSON for
  `bitpath train`;
- `bitpath select controller IR`: train the on-device controller and write an IR that carries it;
- `bitpath select report IR`: static paths, the dynamic model, cascades and the oracle on a test set;
- `bitpath select run RUN --out DIR`: all of it in a chain, fine-tuning with the chosen table included.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

HELP = ("Bit-path selection: measured device costs, layer sensitivity, candidate paths by ILP, fine-tuning with "
        "them, the on-device controller and its report (`bitpath select run` chains them all).")


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(1)


def _split(ir, dataset: str, data_dir: Path | None, split: str):
    """One split of a dataset whose images the model reads (a clear error otherwise)."""
    from bitpath.data import DatasetError, load_dataset

    try:
        d = load_dataset(dataset, split, data_dir)
    except DatasetError as e:
        _fail(str(e))
    if tuple(d.x.shape[1:]) != tuple(ir.header["input"]["shape"]):
        _fail(f"{dataset} images are {d.x.shape[1:]}, the model reads {ir.header['input']['shape']}")
    return d


def _images(ir, dataset: str | None, data_dir: Path | None, n: int, split: str = "test", offset: int = 0):
    """``n`` images (and labels) of a dataset, or None when no dataset is named."""
    if not dataset:
        return None, None
    d = _split(ir, dataset, data_dir, split)
    return d.x[offset : offset + n], d.y[offset : offset + n]


def register(app: typer.Typer) -> None:
    """Add `bitpath select ...` to the app."""
    sel = typer.Typer(help=HELP, no_args_is_help=True)
    app.add_typer(sel, name="select")

    @sel.command("costs")
    def costs_cmd(
        ir_path: Path = typer.Argument(..., help="IR (.bpir.npz); only its graph and shapes matter for the cost."),
        out: Path = typer.Option(None, "--out", "-o", help="Cost table JSON (default: next to the IR, "
                                 "<ir>.costs-<board>.json)."),
        remeasure: bool = typer.Option(False, help="Measure again even if a current table is cached."),
        images: int = typer.Option(2, help="Images per synthetic path (instruction counts vary little)."),
        dataset: str = typer.Option(None, help="Take the images from this dataset (default: pseudo-random)."),
        data_dir: Path = typer.Option(None, help="Dataset folder."),
        stored: str = typer.Option("8,4,2", help="Stored (nested) weight widths to time."),
        board: str = typer.Option("qemu_f405", help="Board the table is for (qemu_f405 is measured here)."),
        port: str = typer.Option(None, help="Measure a real board already running the synthetic model "
                                 "(pyserial URL); the result is merged into --out as a separate source."),
        synth_out: Path = typer.Option(None, help="Only write the synthetic cost models (one folder per "
                                       "chunk, IR + model.c) to build and flash on a real board."),
        merge: Path = typer.Option(None, help="Merge another cost table (e.g. cycles from a real board) into --out."),
        markdown: bool = typer.Option(False, "--markdown", help="Print the table as Markdown."),
    ) -> None:
        """Measure (or load the cached) per-layer cost of every (stored, w, a_in, a_out) combination.

        The IR's path table is replaced by synthetic paths that re-use the stored weights as views;
        the model is generated, built and run on the emulated board, and `bp-layers` is read per
        path. The table is keyed by the graph, kernel sources, firmware sources and board; a stale
        table is refused (use --remeasure).
        """
        from bitpath.ir import IRError, load
        from bitpath.select import costs as C

        try:
            ir = load(ir_path)
        except IRError as e:
            _fail(str(e))
        widths = tuple(int(s) for s in stored.split(",") if s.strip())
        out = out or ir_path.with_name(ir_path.name.replace(".bpir.npz", "") + f".costs-{board}.json")
        if synth_out is not None:
            from bitpath.codegen import render

            for k, sir in enumerate(C.build_synthetic(ir, widths)):
                d = synth_out / f"chunk{k}"
                d.mkdir(parents=True, exist_ok=True)
                sir.save(d / "model.bpir.npz")
                render(sir, d)
                typer.echo(f"{d}: {len(sir.path_names)} paths; build with `bitpath build --board {board} "
                           f"--model-dir {d}`, flash, then `bitpath select costs {ir_path} --board {board} "
                           f"--port URL --synth-out {synth_out}`")
            if port is None:
                return
        try:
            if merge is not None:
                table = C.merge(C.load(out, ir), C.load(merge))
                C.save(table, out)
                typer.echo(f"merged {merge} into {out}")
            elif port is not None:
                table = _measure_port(C, ir, out, port, board, synth_out, images, dataset, data_dir, widths)
            else:
                x, _ = _images(ir, dataset, data_dir, images)
                table, measured = C.cached(ir, out, remeasure=remeasure, board=board, images=x,
                                           n_images=images, stored=widths, log=typer.echo)
                typer.echo(("measured and wrote " if measured else "current table: ") + str(out))
        except C.CostTableError as e:
            _fail(str(e))
        if markdown:
            typer.echo(C.markdown(table))

    def _measure_port(C, ir, out, port, board, synth_out, images, dataset, data_dir, widths):
        from bitpath.device.client import Client
        from bitpath.ir import load

        if synth_out is None:
            _fail("--port needs --synth-out DIR (the synthetic models the board runs, one chunk at a time)")
        x, _ = _images(ir, dataset, data_dir, images)
        x = C.default_images(ir, images) if x is None else x
        base = C.load(out, ir) if out.is_file() else None
        table = {"layers": {}}
        unit = None
        with Client(port, timeout=10.0) as dev:
            dev.sync()
            info = dev.info()
            for d in sorted(synth_out.glob("chunk*")):
                sir = load(d / "model.bpir.npz")
                if sir.content_hash()[:16] != info.ir_hash:
                    continue
                m = C.measure_device(dev, sir, x, typer.echo)
                unit = m.pop("__unit__")
                C._accumulate(table, sir, m)
        if unit is None:
            _fail(f"the board at {port} runs none of the synthetic models in {synth_out}")
        meas = C._package(ir, table, board, unit, len(x), widths)
        if base is None:
            C.save(meas, out)
            typer.echo(f"wrote {out} (one chunk per run: flash the next chunk and run again to add it)")
            return meas
        table = C.merge(base, meas)
        C.save(table, out)
        typer.echo(f"merged {board}/{unit} into {out}")
        return table

    @sel.command("sensitivity")
    def sensitivity_cmd(
        ir_path: Path = typer.Argument(..., help="Trained IR (.bpir.npz)."),
        method: str = typer.Option("kl", help="kl (KL of the logits when one layer is lowered), imprint "
                                   "(imprinted per-layer accuracy, papers/004 section 2.4) or hessian "
                                   "(Hutchinson trace x perturbation, HAWQ-V3; needs torch and --run)."),
        run: Path = typer.Option(None, help="Training run folder with final.pt (hessian; default: the IR's folder)."),
        probes: int = typer.Option(8, help="Hutchinson probes (hessian)."),
        out: Path = typer.Option(None, "--out", "-o", help="Sensitivity JSON (default: <ir>.sens-<method>.json)."),
        dataset: str = typer.Option("fashion-mnist", help="Calibration data (training split)."),
        data_dir: Path = typer.Option(None, help="Dataset folder."),
        images: int = typer.Option(128, help="Calibration images."),
        ref_path: int = typer.Option(0, help="Path whose constants the lowered layers are derived from "
                                     "(normally the all-8-bit path)."),
    ) -> None:
        """Per-layer sensitivity of every (w, a_in) combination, on the integer model (numpy reference)."""
        from bitpath.ir import IRError, load
        from bitpath.select import sensitivity as S

        try:
            ir = load(ir_path)
        except IRError as e:
            _fail(str(e))
        x, y = _images(ir, dataset, data_dir, images, split="train")
        kw = {}
        if method == "hessian":
            try:
                kw = {"model": S.model_from_run(run or ir_path.parent, ir, ref_path), "probes": probes}
            except (FileNotFoundError, ValueError) as e:
                _fail(str(e))
        try:
            res = S.compute(ir, method, x, y, ref_path=ref_path, log=typer.echo, **kw)
        except (ValueError, KeyError) as e:
            _fail(str(e))
        out = out or ir_path.with_name(ir_path.name.replace(".bpir.npz", "") + f".sens-{method}.json")
        S.save(res, out)
        typer.echo(S.markdown(res))
        typer.echo(f"wrote {out}")

    @sel.command("paths")
    def paths_cmd(
        ir_path: Path = typer.Argument(..., help="IR (.bpir.npz): the graph, shapes and parameter counts."),
        costs_file: Path = typer.Option(..., "--costs", help="Cost table (`bitpath select costs`)."),
        sens_file: Path = typer.Option(..., "--sensitivity", help="Sensitivity JSON (`bitpath select sensitivity`)."),
        k: int = typer.Option(4, "-k", help="Number of candidate paths."),
        budgets: str = typer.Option(None, help="Cost budgets, comma-separated, as fractions of the most expensive "
                                    "path (default: K evenly spaced from the cheapest feasible to 1.0)."),
        flash: int = typer.Option(None, help="Flash budget for all weights together, bytes (nested storage)."),
        ram: int = typer.Option(None, help="Peak activation RAM budget per path, bytes."),
        unit: str = typer.Option(None, help="Cost source unit (default: the table's main one)."),
        cost_board: str = typer.Option(None, "--cost-board", help="Cost source board (default: the table's main one)."),
        out: Path = typer.Option(None, "--out", "-o", help="Paths JSON for `bitpath train --paths` "
                                 "(default: <ir>.paths.json)."),
    ) -> None:
        """Choose K bit-paths jointly: minimise summed sensitivity under budgets on measured cost, flash, RAM.

        Writes a path table for `bitpath train --paths FILE`; after fine-tuning and export,
        `bitpath select controller` adds the controller.
        """
        from bitpath.ir import IRError, load
        from bitpath.select import costs as C
        from bitpath.select import ilp
        from bitpath.select import sensitivity as S

        try:
            ir = load(ir_path)
            table = C.load(costs_file, ir, cost_board)
            src = C.source(table, cost_board, unit)
            sens = S.load(sens_file)
        except (IRError, C.CostTableError, ValueError) as e:
            _fail(str(e))
        if sens.get("ir_hash") not in (None, ir.content_hash()):
            typer.echo(f"warning: {sens_file} was computed on another IR ({sens['ir_hash'][:16]})", err=True)
        try:
            problem = ilp.Problem.from_ir(ir, src, sens)
        except ilp.Infeasible as e:
            _fail(str(e))
        fr = [float(b) for b in budgets.split(",")] if budgets else None
        try:
            sol = ilp.sweep(problem, k=k, fractions=fr, flash_bytes=flash, ram_bytes=ram)
        except ilp.Infeasible as e:
            _fail(str(e))
        out = out or ir_path.with_name(ir_path.name.replace(".bpir.npz", "") + ".paths.json")
        out.write_text(json.dumps(ilp.to_paths_json(problem, sol), indent=1) + "\n")
        typer.echo(ilp.summary(problem, sol))
        typer.echo(f"wrote {out}  (next: `bitpath train --paths {out}`, then export and `bitpath select controller`)")

    @sel.command("controller")
    def controller_cmd(
        ir_path: Path = typer.Argument(..., help="Trained multi-path IR (.bpir.npz)."),
        out: Path = typer.Option(None, "--out", "-o", help="IR with the controller (default: <ir>.ctrl.bpir.npz)."),
        dataset: str = typer.Option("fashion-mnist", help="Training data (its training split)."),
        data_dir: Path = typer.Option(None, help="Dataset folder."),
        images: int = typer.Option(None, help="Calibrate on the first N training images. Default: the images the "
                                   "network was never trained on (`bitpath train --holdout`), else the first 20000."),
        held_out: int = typer.Option(5000, "--held-out", help="--kind net: of those, held out to choose the knob "
                                     "(at most a quarter)."),
        max_loss: float = typer.Option(None, help="Knob: allowed accuracy loss (pp) against --reference on the "
                                       "held-out images; take the cheapest setting within it (default 0.3)."),
        target_cost: float = typer.Option(None, help="Knob instead: mean cost as a fraction of --reference's; "
                                          "take the most accurate setting within it."),
        reference: str = typer.Option(None, help="Reference path (default: the first, normally all-8-bit)."),
        kind: str = typer.Option("escalate", help="escalate: run the cheapest path first and escalate to a dearer "
                                 "one when its top-1/top-2 logit margin is below a threshold; net: a tiny network "
                                 "on the pooled input picks the path before any runs."),
        chain: int = typer.Option(3, min=2, max=3, help="escalate: the most paths one image may run, cheapest first "
                                  "(3: cheap -> middle -> dear chains are fitted too, stage by stage)."),
        per_class: bool = typer.Option(False, "--per-class/--shared-threshold", help="escalate: one threshold per "
                                       "predicted class instead of one for all."),
        pool: int = typer.Option(4, help="Average-pool window on the raw input."),
        hidden: int = typer.Option(16, help="Hidden units."),
        epochs: int = typer.Option(30, help="Training epochs of the controller."),
        seed: int = typer.Option(0, help="Seed."),
        cost_images: int = typer.Option(3, help="Images per path when measuring device costs."),
        work: Path = typer.Option(None, help="Work folder for caches and builds (default: <out>.work)."),
        progress: bool = typer.Option(True, help="Progress bars."),
    ) -> None:
        """Fit the on-device controller for an IR and write a new IR that carries it.

        escalate (default): the device runs the cheapest path, and runs a dearer one only when the
        top-1/top-2 margin of its int32 logits is below a threshold; thresholds (and which pair of
        paths) are fitted to the integer model's answers on training images for the knob.
        net: labels are the integer model's own answers on training images; a tiny network on the
        pooled input predicts, per path, whether it will be right; the device takes
        argmax(score - penalty), the penalty being the path's measured cost times the knob.
        Device costs (every path, and the controller itself) are measured on the emulated board.
        """
        from bitpath.ir import IRError, load
        from bitpath.select import controller as C
        from bitpath.select import dynamic as D

        if max_loss is not None and target_cost is not None:
            _fail("give --max-loss or --target-cost, not both")
        if max_loss is None and target_cost is None:
            max_loss = 0.3
        if kind not in ("escalate", "net"):
            _fail(f"--kind is 'escalate' or 'net', got {kind!r}")
        try:
            ir = load(ir_path)
            ref = ir.path_index(reference) if reference is not None else 0
        except IRError as e:
            _fail(str(e))
        calib, which = D.calibration_split(ir, _split(ir, dataset, data_dir, "train"), images)
        if images is not None and len(calib) < images:
            _fail(f"{dataset} has only {len(calib)} training images; lower --images")
        typer.echo(f"calibrating on {which}")
        x, y = calib.x, calib.y
        held_out = min(held_out, len(x) // 4)
        out = out or ir_path.with_name(ir_path.name.replace(".bpir.npz", "") + ".ctrl.bpir.npz")
        work = work or out.with_name(out.name + ".work")
        cfg = C.ControllerConfig(pool=pool, hidden=hidden, epochs=epochs, seed=seed)
        old = ir.header.get("controller")
        try:
            new, info = D.fit(ir, x, y, val=held_out, cfg=cfg, reference=ref, max_loss_pp=max_loss,
                              target_cost=target_cost, work=work, cost_images=cost_images,
                              costs=old.get("costs") if old else None, log=typer.echo,
                              progress=_progress(progress), kind=kind, per_class=per_class, chain=chain)
        except (C.ControllerError, IRError) as e:
            _fail(str(e))
        new.save(out)
        typer.echo(f"wrote {out}  (next: `bitpath select report {out}`, `bitpath codegen {out}`)")

    @sel.command("report")
    def report_cmd(
        ir_path: Path = typer.Argument(..., help="IR with a controller (`bitpath select controller`)."),
        out: Path = typer.Option(None, "--out", "-o", help="Report folder (default: <ir>.report)."),
        dataset: str = typer.Option("fashion-mnist", help="Test data (its test split)."),
        data_dir: Path = typer.Option(None, help="Dataset folder."),
        images: int = typer.Option(10000, help="Test images (from the start of the test split)."),
        board_images: int = typer.Option(200, help="Images run with `bp-path auto` on the emulated board "
                                         "(chosen path and logits compared with the host); 0 skips it."),
        work: Path = typer.Option(None, help="Work folder for caches and builds (default: <out>/work)."),
        what_if: str = typer.Option(None, "--what-if", help="Re-cost the same answers with hypothetical path costs, "
                                    "e.g. 'w4a4=0.5,w2a2-fl8=0.3' (fractions of the reference path's cost)."),
        progress: bool = typer.Option(True, help="Progress bars."),
    ) -> None:
        """Static paths, the dynamic model (knob sweep and chosen setting), cascades and the oracle on a
        test set; JSON + Markdown + PNG Pareto plot (accuracy vs mean device cost)."""
        import sys

        from bitpath.ir import IRError, load
        from bitpath.select import controller as C
        from bitpath.select import dynamic as D

        try:
            ir = load(ir_path)
        except IRError as e:
            _fail(str(e))
        x, y = _images(ir, dataset, data_dir, images, split="test")
        out = out or ir_path.with_name(ir_path.name.replace(".bpir.npz", "") + ".report")
        hyp = None
        if what_if:
            try:
                hyp = {k.strip(): float(v) for k, v in (kv.split("=") for kv in what_if.split(","))}
            except ValueError:
                _fail(f"--what-if wants PATH=FRACTION[,PATH=FRACTION...], got {what_if!r}")
        try:
            r = D.evaluate(ir, x, y, work or out / "work", board_images=board_images, what_if=hyp, log=typer.echo,
                           progress=_progress(progress))
        except C.ControllerError as e:
            _fail(str(e))
        files = D.write_report(r, out, "bitpath select report " + " ".join(sys.argv[3:]))
        typer.echo(D.markdown(r))
        typer.echo("wrote " + ", ".join(str(p) for p in files.values()))

    @sel.command("run")
    def run_cmd(
        src: Path = typer.Argument(..., help="Finished training run folder (final.pt; model.bpir.npz is exported "
                                   "if missing)."),
        out: Path = typer.Option(..., "--out", "-o", help="New folder: cost table, sensitivity, paths, the "
                                 "fine-tuned run (train/), its IR with the controller, the report."),
        k: int = typer.Option(4, "-k", help="Number of candidate paths."),
        method: str = typer.Option("kl", help="Sensitivity: kl, imprint or hessian."),
        sens_images: int = typer.Option(128, help="Calibration images for the sensitivity."),
        stored: str = typer.Option("8,4,2", help="Stored (nested) weight widths the cost table measures."),
        flash: int = typer.Option(None, help="Flash budget for all weights, bytes."),
        ram: int = typer.Option(None, help="Peak activation RAM budget per path, bytes."),
        epochs_qat: int = typer.Option(None, help="Multi-path QAT epochs of the fine-tuning (default: the source "
                                        "run's)."),
        lr_qat: float = typer.Option(None, help="QAT learning rate (default: the source run's)."),
        limit_train: int = typer.Option(None, help="Fine-tune on the first N training images only."),
        limit_test: int = typer.Option(None, help="Evaluate the fine-tuned run on the first N test images only."),
        controller_images: int = typer.Option(20000, help="Training images for the controller."),
        held_out: int = typer.Option(5000, "--held-out", help="Of those, held out to choose the knob."),
        max_loss: float = typer.Option(0.3, help="Knob: allowed accuracy loss (pp) against the first path."),
        controller: str = typer.Option("escalate", "--controller", help="Controller kind: escalate or net "
                                       "(see `bitpath select controller --help`)."),
        report_images: int = typer.Option(10000, help="Test images in the report."),
        board_images: int = typer.Option(200, help="Images under `bp-path auto` on the emulated board."),
        dataset: str = typer.Option("fashion-mnist", help="Dataset."),
        data_dir: Path = typer.Option(None, help="Dataset folder."),
        threads: int = typer.Option(None, help="torch CPU threads."),
        progress: bool = typer.Option(True, help="Progress bars."),
    ) -> None:
        """The whole chain on a trained run: costs -> sensitivity -> K paths (ILP) -> fine-tune with them ->
        export -> controller -> report. Steps whose output exists are reused, so a killed run continues."""
        from bitpath.data import DatasetError
        from bitpath.ir import IRError
        from bitpath.select import controller as C
        from bitpath.select import costs as K
        from bitpath.select import ilp
        from bitpath.select.pipeline import SelectRun, run

        cfg = SelectRun(src=src, out=out, k=k, method=method, sens_images=sens_images,
                        stored=tuple(int(v) for v in stored.split(",") if v.strip()), flash=flash, ram=ram,
                        epochs_qat=epochs_qat,
                        lr_qat=lr_qat, limit_train=limit_train, limit_test=limit_test,
                        controller_images=controller_images, held_out=held_out, max_loss=max_loss,
                        controller_kind=controller,
                        report_images=report_images, board_images=board_images, dataset=dataset, data_dir=data_dir,
                        threads=threads)
        try:
            r = run(cfg, log=typer.echo, progress=_progress(progress))
        except (FileNotFoundError, IRError, DatasetError, K.CostTableError, ilp.Infeasible, C.ControllerError,
                ValueError) as e:
            _fail(str(e))
        d = r["dynamic"]
        typer.echo(f"dynamic: {100 * d['accuracy']:.2f} % at {d['relative_cost']:.3f}x the first path; "
                   f"report in {out / 'report'}")

    def _progress(show: bool):
        if not show:
            return None
        from tqdm.auto import tqdm

        return lambda it: tqdm(it, leave=False, dynamic_ncols=True)
