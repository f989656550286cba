"""`bitpath` sub-commands of the train area: train, export, eval."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `bitpath` app."""
    app.command("train")(train)
    app.command("export")(export_cmd)
    app.command("eval")(eval_cmd)


def train(
    out: Path = typer.Option(Path("runs/default"), "--out",
                             help="Run directory (checkpoints, final.pt, metrics.json)."),
    dataset: str = typer.Option("fashion-mnist", help="fashion-mnist, mnist, cifar10 or npz."),
    data_dir: str = typer.Option(None, "--data-dir", help="Dataset directory (or the .npz file). Default for "
                                 "fashion-mnist: /usr/share/datasets/fashion-mnist."),
    model: str = typer.Option("default-cnn", help="Built-in recipe: default-cnn, resnet8, ds-cnn."),
    paths: Path = typer.Option(None, "--paths", help="JSON bit-path table (docs/training.md); default: 4 paths."),
    epochs_float: int = typer.Option(25, help="Float pretraining epochs."),
    epochs_qat: int = typer.Option(3, help="Multi-path QAT epochs."),
    batch_size: int = typer.Option(256, help="Batch size (per process: under torchrun with N processes a step "
                                   "uses N x this many images)."),
    lr_float: float = typer.Option(3e-3, help="Peak AdamW learning rate, float stage (cosine decay)."),
    lr_qat: float = typer.Option(1e-3, help="Peak AdamW learning rate, QAT stage (cosine decay)."),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay on weights (not on scales or BatchNorm)."),
    weight_quant: str = typer.Option("lsq", help="Weight quantizer: lsq or ratio (thesis nested layer)."),
    act_quant: str = typer.Option("lsq", help="Activation quantizer: lsq or pact."),
    weight_views: str = typer.Option("round", "--weight-views",
                                     help="How a path narrower than a layer's stored width reads its weights: "
                                     "round (the stored code rounded half up to the narrow grid, saturated at "
                                     "the top; one QADD8 per weight word on Cortex-M4) or floor (its top bits, "
                                     "as runs made before this option; docs/training.md)."),
    ratio_lambda: float = typer.Option(1e-3, help="Ratio-rule threshold lambda (weight_quant=ratio)."),
    loss_inv_scale: float = typer.Option(0.0, help="Weight of the inverse-scale penalty."),
    loss_bin_count: float = typer.Option(0.0, help="Weight of the bin-count constraint."),
    loss_deviation: float = typer.Option(0.0, help="Weight of the quantized-vs-original deviation loss."),
    random_paths: int = typer.Option(2, help="Random paths per QAT step besides the widest and narrowest "
                                      "(2: all 4 default paths in every step)."),
    distill_alpha: float = typer.Option(0.5, help="Weight of distillation from the widest path (0 disables)."),
    bn_batches: int = typer.Option(50, help="Batches for BatchNorm re-estimation per path."),
    augment: bool = typer.Option(True, help="Random flips and 2-pixel shifts."),
    limit_train: int = typer.Option(None, help="Use only the first N training images (smoke runs)."),
    holdout: int = typer.Option(0, help="Never train on the last N training images; `bitpath select controller` "
                                "then calibrates on them (images the network has not seen)."),
    limit_test: int = typer.Option(None, help="Use only the first N test images."),
    seed: int = typer.Option(0, help="Random seed (runs are deterministic)."),
    ckpt_every: int = typer.Option(200, help="Steps between checkpoints (also at every epoch end)."),
    init_float: str = typer.Option(None, "--init-float", help="Skip float pretraining: take the float model of "
                                   "this run (directory or .pt), e.g. to compare quantizers from the same start."),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:N. Under torchrun: auto, cuda "
                               "(cuda:LOCAL_RANK, NCCL) or cpu (gloo)."),
    threads: int = typer.Option(None, help="torch CPU threads."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint.pt."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train one network for every bit-path: float pretrain, multi-path QAT, BN re-estimation.

    Multi-process: `torchrun --nproc-per-node N -m bitpath train ...` (docs/training.md).
    """
    from bitpath.train import distributed
    from bitpath.train.config import WEIGHT_VIEWS, TrainConfig
    from bitpath.train.trainer import CKPT, Trainer

    if weight_views not in WEIGHT_VIEWS:
        raise typer.BadParameter(f"must be one of {', '.join(WEIGHT_VIEWS)}, got {weight_views!r}",
                                 param_hint="'--weight-views'")
    cfg = TrainConfig(
        dataset=dataset, data_dir=data_dir, model=model, paths=str(paths) if paths else None, out=str(out),
        seed=seed, epochs_float=epochs_float, epochs_qat=epochs_qat, batch_size=batch_size, lr_float=lr_float,
        lr_qat=lr_qat, weight_decay=weight_decay, weight_quant=weight_quant, act_quant=act_quant,
        weight_views=weight_views, ratio_lambda=ratio_lambda, loss_inv_scale=loss_inv_scale,
        loss_bin_count=loss_bin_count, loss_deviation=loss_deviation, random_paths=random_paths,
        distill_alpha=distill_alpha,
        bn_batches=bn_batches, augment=augment, limit_train=limit_train, holdout=holdout, limit_test=limit_test,
        ckpt_every=ckpt_every, init_float=init_float, device=device, threads=threads,
    )
    if not resume and (out / CKPT).exists():
        raise typer.BadParameter(f"{out / CKPT} exists; pass --resume to continue it or choose another --out")
    try:
        try:
            t = Trainer(cfg, log=typer.echo, progress=progress)
            if resume:
                t.resume()
        except ValueError as e:  # a missing or malformed dataset (DatasetError), path table or model: no traceback
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        t.log(f"device {t.device}; {len(t.table)} paths: {', '.join(t.table.names)}")
        metrics = t.run()
        t.log(json.dumps(metrics, indent=2))
        if t.dist.enabled:  # every rank: the weights it ended with (run() has checked that they agree)
            typer.echo(f"rank {t.dist.rank}/{t.dist.world_size}: trained weights sha256 {t.state_digest()}")
    finally:
        distributed.shutdown()


def export_cmd(
    run: Path = typer.Argument(..., help="Run directory (with final.pt) or a final.pt file."),
    out: Path = typer.Option(None, "--out", help="IR file to write (default <run>/model.bpir.npz)."),
) -> None:
    """Export a trained run to one integer IR file (docs/ir.md)."""
    from bitpath.export.exporter import export
    from bitpath.train.trainer import load_final

    net, st = load_final(run)
    ir = export(net, source={"config": st["config"], "metrics": st.get("metrics")})
    dest = out or ((run if run.is_dir() else run.parent) / "model.bpir.npz")
    h = ir.save(dest)
    typer.echo(f"wrote {dest} ({dest.stat().st_size} bytes, sha256 {h})")


def eval_cmd(
    ir_path: Path = typer.Argument(..., help="IR file from `bitpath export`."),
    dataset: str = typer.Option("fashion-mnist", help="fashion-mnist, mnist, cifar10 or npz."),
    data_dir: str = typer.Option(None, "--data-dir", help="Dataset directory (or .npz file)."),
    path: list[str] = typer.Option(None, "--path", help="Path name(s) to evaluate (default: all)."),
    limit: int = typer.Option(None, help="Only the first N test images."),
    compare: Path = typer.Option(None, help="Run directory: also report how often the fake-quant model agrees."),
    json_out: Path = typer.Option(None, "--json-out", help="Write the results as JSON."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Accuracy per path of the integer model (numpy reference) on the test set."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table
    from tqdm.auto import tqdm

    from bitpath.data import load_dataset
    from bitpath.export.runner import Runner
    from bitpath.ir import load

    ir = load(ir_path)
    test = load_dataset(dataset, "test", data_dir).subset(limit)
    names = path or ir.path_names
    runner = Runner(ir)
    results: dict = {"ir": str(ir_path), "hash": ir.content_hash(), "images": len(test), "paths": {}}
    fq = None
    if compare is not None:
        import torch

        from bitpath.train.trainer import load_final

        fq, _ = load_final(compare)
        xt = torch.from_numpy(test.x).permute(0, 3, 1, 2).contiguous()
    for name in names:
        t0 = time.time()
        bar = (lambda it, n=name: tqdm(it, desc=f"eval {n}", leave=False)) if progress else None
        logits = runner.logits(test.x, name, bar)
        pred = logits.argmax(1)
        r = {"accuracy": float((pred == test.y).mean()), "seconds": round(time.time() - t0, 1)}
        if fq is not None:
            pi = ir.path_index(name)
            with torch.no_grad():
                f_pred = np.concatenate([fq(xt[i : i + 1000].float(), pi).argmax(1).numpy()
                                         for i in range(0, len(xt), 1000)])
                i_logits = np.concatenate([fq(xt[i : i + 1000], pi, integer=True).numpy()
                                           for i in range(0, len(xt), 1000)])
            r["fake_quant_accuracy"] = float((f_pred == test.y).mean())
            r["fake_quant_disagree"] = int((f_pred != pred).sum())
            r["torch_integer_logits_equal"] = bool(np.array_equal(i_logits, logits))
        results["paths"][name] = r
    table = Table(title=f"integer model {ir_path.name} on {len(test)} {dataset} test images")
    for col in ("path", "accuracy", *(("fake-quant acc", "differ", "torch int == numpy") if fq else ())):
        table.add_column(col)
    for name, r in results["paths"].items():
        row = [name, f"{100 * r['accuracy']:.2f} %"]
        if fq is not None:
            row += [f"{100 * r['fake_quant_accuracy']:.2f} %", str(r["fake_quant_disagree"]),
                    str(r["torch_integer_logits_equal"])]
        table.add_row(*row)
    Console().print(table)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=2))
