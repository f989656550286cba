"""`bitpath select run`: the whole selection chain on a finished training run, one step at a time,
each step skipped when its output is already there (so an interrupted run continues):

costs (measured on the emulated board) -> sensitivity -> K paths by ILP -> multi-path fine-tuning
with the chosen table (QAT from the source run's float model) -> export -> controller -> report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bitpath.ir import IR, load


@dataclass(frozen=True)
class SelectRun:
    """What `bitpath select run` does; see the CLI for each field's meaning."""

    src: Path  # finished training run (final.pt, model.bpir.npz)
    out: Path  # new run folder
    k: int = 4
    method: str = "kl"
    sens_images: int = 128
    stored: tuple[int, ...] = (8, 4, 2)  # stored widths the cost table measures
    flash: int | None = None
    ram: int | None = None
    epochs_qat: int | None = None  # None: the source run's
    lr_qat: float | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    controller_images: int = 20000
    held_out: int = 5000
    max_loss: float = 0.3
    controller_kind: str = "escalate"  # or "net"
    report_images: int = 10000
    board_images: int = 200
    dataset: str = "fashion-mnist"
    data_dir: Path | None = None
    threads: int | None = None


def _source_ir(src: Path, log: Callable[[str], None]) -> tuple[IR, Path]:
    p = src / "model.bpir.npz"
    if p.is_file():
        return load(p), p
    from bitpath.export.exporter import export
    from bitpath.train.trainer import load_final

    log(f"      exporting {src} (no model.bpir.npz yet)")
    net, st = load_final(src)
    ir = export(net, source={"config": st["config"], "metrics": st.get("metrics")})
    ir.save(p)
    return ir, p


def run(cfg: SelectRun, log: Callable[[str], None] = print,
        progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Run (or continue) the chain; returns the report dict."""
    from bitpath.data import load_dataset
    from bitpath.select import controller as C
    from bitpath.select import costs as K
    from bitpath.select import dynamic as D
    from bitpath.select import ilp
    from bitpath.select import sensitivity as S
    from bitpath.train.config import TrainConfig
    from bitpath.train.trainer import FINAL, Trainer, load_final

    cfg.out.mkdir(parents=True, exist_ok=True)
    ir, ir_path = _source_ir(cfg.src, log)
    train = load_dataset(cfg.dataset, "train", cfg.data_dir)

    log("[1/7] device cost table (emulated board; cached by graph, kernels and firmware)")
    costs_path = cfg.out / "costs-qemu_f405.json"
    try:
        table, measured = K.cached(ir, costs_path, stored=cfg.stored, log=lambda s: log(f"      {s}"))
    except K.StaleCostTable as e:
        log(f"      {e}: measuring again")
        table, measured = K.cached(ir, costs_path, remeasure=True, stored=cfg.stored, log=lambda s: log(f"      {s}"))
    log(f"      {'measured' if measured else 'current'}: {costs_path}")

    sens_path = cfg.out / f"sens-{cfg.method}.json"
    log(f"[2/7] layer sensitivity ({cfg.method})")
    if sens_path.is_file() and S.load(sens_path).get("ir_hash") in (None, ir.content_hash()):
        sens = S.load(sens_path)
        log(f"      reusing {sens_path}")
    else:
        kw = {}
        if cfg.method == "hessian":
            kw = {"model": S.model_from_run(cfg.src, ir, 0)}
        n = cfg.sens_images
        sens = S.compute(ir, cfg.method, train.x[:n], train.y[:n], ref_path=0, log=lambda s: log(f"      {s}"), **kw)
        S.save(sens, sens_path)

    paths_path = cfg.out / "paths.json"
    log(f"[3/7] {cfg.k} candidate paths by integer program")
    if paths_path.is_file():
        log(f"      reusing {paths_path}")
    else:
        problem = ilp.Problem.from_ir(ir, K.source(table), sens)
        sol = ilp.sweep(problem, k=cfg.k, flash_bytes=cfg.flash, ram_bytes=cfg.ram)
        paths_path.write_text(json.dumps(ilp.to_paths_json(problem, sol), indent=1) + "\n")
        log("      " + ilp.summary(problem, sol).replace("\n", "\n      "))

    epochs = f"{cfg.epochs_qat}" if cfg.epochs_qat is not None else "the source run's"
    log(f"[4/7] multi-path fine-tuning with the chosen table ({epochs} QAT epochs from the float model of {cfg.src})")
    run_dir = cfg.out / "train"
    if (run_dir / FINAL).is_file():
        log(f"      reusing the finished run {run_dir}")
    else:
        _, st = load_final(cfg.src)
        base = TrainConfig.from_dict(st["config"])
        tcfg = replace(base, out=str(run_dir), paths=str(paths_path), init_float=str(cfg.src),
                       epochs_qat=cfg.epochs_qat if cfg.epochs_qat is not None else base.epochs_qat,
                       lr_qat=cfg.lr_qat if cfg.lr_qat is not None else base.lr_qat,
                       limit_train=cfg.limit_train, limit_test=cfg.limit_test, threads=cfg.threads,
                       dataset=cfg.dataset, data_dir=str(cfg.data_dir) if cfg.data_dir else base.data_dir)
        t = Trainer(tcfg, log=lambda s: log(f"      {s}"), progress=progress is not None)
        if (run_dir / "checkpoint.pt").is_file():
            log("      resuming the interrupted fine-tuning")
            t.resume()
        t.run()

    log("[5/7] export")
    new_ir_path = run_dir / "model.bpir.npz"
    if new_ir_path.is_file():
        new_ir = load(new_ir_path)
    else:
        from bitpath.export.exporter import export

        net, st = load_final(run_dir)
        new_ir = export(net, source={"config": st["config"], "metrics": st.get("metrics"),
                                     "select": {"paths": str(paths_path), "from": str(ir_path)}})
        new_ir.save(new_ir_path)

    log("[6/7] controller")
    ctrl_path = run_dir / "model.ctrl.bpir.npz"
    if ctrl_path.is_file():
        ctrl_ir = load(ctrl_path)
        log(f"      reusing {ctrl_path}")
    else:
        calib, which = D.calibration_split(new_ir, train, None, default=cfg.controller_images)
        log(f"      calibrating on {which}")
        n = len(calib)
        ctrl_ir, _ = D.fit(new_ir, calib.x, calib.y, val=min(cfg.held_out, n // 4), cfg=C.ControllerConfig(),
                           reference=0, max_loss_pp=cfg.max_loss, target_cost=None, work=cfg.out / "controller",
                           log=lambda s: log(f"      {s}"), progress=progress, kind=cfg.controller_kind)
        ctrl_ir.save(ctrl_path)

    log("[7/7] report")
    test = load_dataset(cfg.dataset, "test", cfg.data_dir)
    n = min(cfg.report_images, len(test))
    r = D.evaluate(ctrl_ir, test.x[:n], test.y[:n], cfg.out / "report" / "work", board_images=cfg.board_images,
                   log=lambda s: log(f"      {s}"), progress=progress)
    r["select_run"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    files = D.write_report(r, cfg.out / "report", f"bitpath select run {cfg.src} --out {cfg.out}")
    log(f"      {files['md']}")
    return r


__all__ = ["SelectRun", "run"]
