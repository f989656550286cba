"""`bitpath demo`: the main job end to end on the embedded default.

train (reusing a finished run with the same configuration) -> export the integer IR -> train the
on-device controller (device costs measured on the emulated board) -> generate C -> accuracy per
path and under the controller on the host (generated C, checked against numpy) -> build the
firmware for the emulated Cortex-M4 -> stream test images over the MLPerf Tiny serial protocol on
every path and under the controller, check every logit and chosen path against the host, and record
emulated instructions per path and layer -> report (JSON + Markdown).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("runs/demo")
    epochs_float: int = 25
    epochs_qat: int = 3
    limit_train: int | None = None
    host_images: int | None = None  # None: the full test set
    board_images: int = 200
    numpy_check: int = 100  # host images also run through the numpy reference
    # the last N training images are never trained on; the controller is calibrated on them
    controller_images: int = 5000
    controller_kind: str = "escalate"  # or "net" (see `bitpath select controller --help`)
    controller_chain: int = 3  # escalate: the most paths one image may run
    bn_batches: int = 50
    threads: int | None = None
    progress: bool = True

    @classmethod
    def quick(cls, out: Path = Path("runs/demo-quick")) -> DemoConfig:
        """A smoke configuration: minutes, not accuracy."""
        return cls(out=out, epochs_float=1, epochs_qat=1, limit_train=3000, host_images=300, board_images=10,
                   bn_batches=4, controller_images=1000)


def same_config(saved: dict | None, tcfg) -> bool:
    """Whether a run saved with config ``saved`` was trained as ``tcfg``; keys added to TrainConfig
    since it was saved take their defaults (a run from before ``holdout`` existed still matches), and
    where the folder is (``out``, relative or absolute) does not matter."""
    if not saved:
        return False
    try:
        return not tcfg.differs_from(saved, ignore=("out",))
    except (TypeError, ValueError):
        return False


def _train(cfg: DemoConfig, log: Callable[[str], None]) -> Path:
    from bitpath.train.config import TrainConfig
    from bitpath.train.trainer import CKPT, FINAL, Trainer, load_final

    tcfg = TrainConfig(out=str(cfg.out), epochs_float=cfg.epochs_float, epochs_qat=cfg.epochs_qat,
                       limit_train=cfg.limit_train, holdout=cfg.controller_images, limit_test=cfg.host_images,
                       bn_batches=cfg.bn_batches, threads=cfg.threads)
    final = cfg.out / FINAL
    if final.is_file():
        import torch

        st = torch.load(final, map_location="cpu", weights_only=False)
        if st.get("stage") != "done" or not same_config(st.get("config"), tcfg):
            raise SystemExit(f"{final} was trained with another configuration: remove {cfg.out} or pick --out")
        try:
            load_final(final)
        except (RuntimeError, KeyError, ValueError) as exc:
            # Same configuration, but the model code changed since (e.g. new quantizer state):
            # the cached weights cannot be loaded, so train again rather than fail.
            log(f"      the cached run {final} no longer loads ({str(exc).splitlines()[0][:80]}...); retraining")
            for stale in (final, cfg.out / CKPT):
                stale.unlink(missing_ok=True)
        else:
            log(f"      reusing the finished run {final} (same configuration)")
            return final
    t = Trainer(tcfg, log=lambda s: log(f"      {s}"), progress=cfg.progress)
    if (cfg.out / CKPT).is_file():
        log("      resuming the interrupted run")
        t.resume()
    t.run()
    return final


def run(cfg: DemoConfig, log: Callable[[str], None] = print) -> dict:
    """Run the whole pipeline; returns the results (also written to ``cfg.out/demo.json``)."""
    from tqdm.auto import tqdm

    from bitpath.bench import boards
    from bitpath.bench import report as bench_report
    from bitpath.bench import results as bench_results
    from bitpath.bench.link import BenchClient
    from bitpath.bench.run import Bench, BenchConfig, firmware_info
    from bitpath.codegen import render
    from bitpath.codegen.hostbuild import build_host_model
    from bitpath.data import load_dataset
    from bitpath.device import build as fw
    from bitpath.device.emulate import Emulator
    from bitpath.export.exporter import export
    from bitpath.export.runner import Runner
    from bitpath.select import dynamic
    from bitpath.select.controller import ControllerConfig
    from bitpath.train.trainer import load_final

    cfg.out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    stage_t = [t_all]

    def done() -> None:
        now = time.time()
        log(f"      ({now - stage_t[0]:.1f} s)")
        stage_t[0] = now

    log("[1/7] train one network for every bit-path (Fashion-MNIST, default CNN)")
    final = _train(cfg, log)

    done()
    log("[2/7] export the integer IR")
    net, st = load_final(final)
    ir = export(net, source={"config": st["config"], "metrics": st.get("metrics")})
    ir_path = cfg.out / "model.bpir.npz"
    ir_hash = ir.save(ir_path)
    log(f"      {ir_path} (sha256 {ir_hash[:16]})")

    done()
    log(f"[3/7] train the on-device controller (the {cfg.controller_images} held-out training images, knob: "
        "within 0.3 pp of the all-8-bit path)")
    train, _ = dynamic.calibration_split(ir, load_dataset("fashion-mnist", "train"), None)
    ir, _ = dynamic.fit(ir, train.x, train.y, val=max(1, len(train) // 4),
                        cfg=ControllerConfig(), reference=0, max_loss_pp=0.3, target_cost=None,
                        work=cfg.out / "controller", log=lambda s: log(f"      {s}"),
                        progress=(lambda it: tqdm(it, leave=False)) if cfg.progress else None,
                        kind=cfg.controller_kind, chain=cfg.controller_chain)
    ir_path = cfg.out / "model.ctrl.bpir.npz"
    ir_hash = ir.save(ir_path)
    log(f"      {ir_path} (sha256 {ir_hash[:16]})")

    done()
    test = load_dataset("fashion-mnist", "test").subset(cfg.host_images)
    log("[4/7] generate C")
    gen = render(ir, cfg.out / "model")
    log(f"      {gen.model_c}: weights {gen.weight_bytes} B for all paths, arena {gen.arena_bytes} B")

    done()
    log(f"[5/7] accuracy of the integer model per path on {len(test)} test images (host)")
    # The generated C compiled for the host is ~10x faster than the numpy reference; both are the
    # same integer network, and the first images are checked against numpy to prove it here too.
    model = build_host_model(gen.model_c, "ref")
    runner = Runner(ir)
    n_check = min(cfg.numpy_check, len(test))
    host: dict[str, dict] = {}
    for p, name in enumerate(ir.path_names):
        it = range(len(test))
        if cfg.progress:
            it = tqdm(it, desc=f"      {name}", leave=False)
        logits = np.stack([model.run(test.x[i], p) for i in it])
        for i in range(n_check):
            if not np.array_equal(logits[i], runner.run(test.x[i], p)):
                raise RuntimeError(f"path {name}, image {i}: generated C and numpy reference differ")
        host[name] = {"accuracy": float((logits.argmax(1) == test.y).mean()), "numpy_checked": n_check}
        log(f"      {name:12s} {100 * host[name]['accuracy']:.2f} %  (first {n_check} images equal to numpy)")
    it = range(len(test))
    if cfg.progress:
        it = tqdm(it, desc="      auto", leave=False)
    auto = [model.run_auto(test.x[i]) for i in it]
    for i in range(n_check):
        want_p, want = runner.run_auto(test.x[i])
        if auto[i][0] != want_p or not np.array_equal(auto[i][1], want):
            raise RuntimeError(f"controller, image {i}: generated C and numpy reference differ")
    pred = np.array([int(np.argmax(lg)) for _, lg in auto])
    chosen = np.bincount([p for p, _ in auto], minlength=len(ir.path_names))
    host["auto"] = {"accuracy": float((pred == test.y).mean()), "numpy_checked": n_check,
                    "chosen": {n: int(c) for n, c in zip(ir.path_names, chosen, strict=True)}}
    log(f"      {'auto':12s} {100 * host['auto']['accuracy']:.2f} %  (controller; paths chosen: "
        + ", ".join(f"{n} {c}" for n, c in host["auto"]["chosen"].items()) + ")")

    done()
    log("[6/7] build the firmware for the emulated Cortex-M4 (QEMU netduinoplus2)")
    elf = fw.build("qemu_f405", model_dir=cfg.out / "model")
    from bitpath.device.size import measure

    size = measure(elf)
    log(f"      {elf}")

    done()
    n_board = min(cfg.board_images, len(test))
    log(f"[7/7] {n_board} test images per path and under the controller (auto), through the serial protocol "
        "on the emulated board")
    bench_dir = cfg.out / "bench"
    log_path = bench_dir / "bench.jsonl"
    log_path.unlink(missing_ok=True)  # a demo run measures afresh (`bitpath bench --resume` continues a log)
    with Emulator(elf) as emu, BenchClient(emu.url, timeout=60.0) as dev:
        dev.resync()
        Bench(dev, ir, test.x, test.y, log_path, profile=boards.profile("qemu_f405"),
              config=BenchConfig(images=n_board, extra={"firmware": firmware_info(elf)}),
              log=lambda s: None, progress=cfg.progress).run()
    measured = bench_results.from_log(log_path)
    files = bench_report.write(measured, bench_dir)
    log(f"      report with plots: {files['html']}")
    done()
    board = {
        name: {
            "images": m["images"],
            "mismatches": m["mismatches"],
            "path_mismatches": m.get("path_mismatches", 0),
            "mean_instructions": m["cost"]["mean"],
            "median_instructions": m["cost"]["median"],
            "p99_instructions": m["cost"]["p99"],
            "layer_instructions": [round(v) for v in m["layers_mean"]],
        }
        for name, m in measured["paths"].items()
    }
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "ir": str(ir_path),
        "ir_hash": ir_hash,
        "host_images": len(test),
        "board": "qemu_f405 (emulated STM32F405, Cortex-M4F), unit: instructions (emulated)",
        "flash_bytes": size.flash,
        "ram_bytes": size.ram,
        "arena_bytes": gen.arena_bytes,
        "weight_bytes": gen.weight_bytes,
        "layers": [s.node["name"] for s in gen.plan.steps],
        "host": host,
        "device": board,
        "oracle": measured.get("oracle"),
        "controller": {k: ir.header["controller"][k] for k in ("lambda", "knob", "costs", "train")},
        "bench_report": str(files["html"]),
        "seconds": round(time.time() - t_all, 1),
        "config": {k: str(v) for k, v in asdict(replace(cfg)).items()},
    }
    (cfg.out / "demo.json").write_text(json.dumps(results, indent=2))
    (cfg.out / "demo.md").write_text(markdown(results))
    return results


def markdown(r: dict) -> str:
    """The demo report as Markdown."""
    w8 = r["device"][next(iter(r["device"]))]["mean_instructions"]
    lines = [
        f"# bitpath demo, {r['date']}",
        "",
        f"IR `{r['ir']}` (sha256 {r['ir_hash'][:16]}), board {r['board']}.",
        f"Firmware: flash {r['flash_bytes']:,} B, RAM {r['ram_bytes']:,} B (activation arena {r['arena_bytes']:,} B);"
        f" weights of all paths together {r['weight_bytes']:,} B (nested storage).",
        "",
        f"| path | accuracy (host, {r['host_images']} images) | board images | logit mismatches "
        "| mean instructions | vs first path |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, h in r["host"].items():
        d = r["device"][name]
        label = name if name != "auto" else "auto (controller picks the path)"
        lines.append(
            f"| {label} | {100 * h['accuracy']:.2f} % | {d['images']} | {d['mismatches']} | "
            f"{d['mean_instructions']:,.0f} | {d['mean_instructions'] / w8:.3f}x |"
        )
    if "auto" in r["device"]:
        c = r["controller"]
        lines += ["", f"Controller: knob lambda {c['lambda']:.3g} ({c['knob']['chosen_by']}); on the board, "
                  f"{r['device']['auto']['path_mismatches']} of {r['device']['auto']['images']} chosen paths differ "
                  f"from the host's. Paths chosen on the host: "
                  + ", ".join(f"{n} {v}" for n, v in r["host"]["auto"]["chosen"].items()) + "."]
    lines += ["", f"Plots (accuracy vs cost, per-layer cost, path histogram): `{r['bench_report']}`."]
    lines += ["", "Per-layer mean instructions:", "", "| path | " + " | ".join(r["layers"]) + " |",
              "|---|" + "---:|" * len(r["layers"])]
    for name, d in r["device"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:,}" for v in d["layer_instructions"]) + " |")
    return "\n".join(lines) + "\n"
