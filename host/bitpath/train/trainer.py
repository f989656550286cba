"""Multi-path training: float pretrain -> multi-path QAT -> BatchNorm re-estimation per path.

Determinism: every epoch draws its order, augmentation and dropout from generators seeded by
``(seed, stage, epoch)``; the generator and RNG states are saved in each checkpoint, so a run
resumed from any checkpoint produces the same weights as an uninterrupted one.
Checkpoints are written atomically (temporary file + ``os.replace``) to ``<out>/checkpoint.pt``;
the finished model is ``<out>/final.pt``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bitpath.data import load_dataset
from bitpath.models import build, capture
from bitpath.models.graph import GraphSpec
from bitpath.train.config import TrainConfig
from bitpath.train.paths import PathTable, default_table
from bitpath.train.qnet import MultiPathNet

STAGES = ("float", "qat", "bn", "done")
CKPT = "checkpoint.pt"
FINAL = "final.pt"


class Interrupted(RuntimeError):
    """Raised by ``stop_after_steps`` (tests simulate a kill with it)."""


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA if present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _seed(*parts: int) -> int:
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def _augment(x: torch.Tensor, gen: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random horizontal flip and translation by up to ``shift`` pixels (zero fill), uint8 NCHW."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    dy = torch.randint(-shift, shift + 1, (n,), generator=gen)
    dx = torch.randint(-shift, shift + 1, (n,), generator=gen)
    padded = F.pad(x, (shift, shift, shift, shift))
    iy = (torch.arange(h).view(1, h, 1) + shift - dy.view(n, 1, 1)).expand(n, h, w)
    ix = (torch.arange(w).view(1, 1, w) + shift - dx.view(n, 1, 1)).expand(n, h, w)
    flat = padded.flatten(2)  # (n, c, (h+2s)*(w+2s))
    idx = (iy * (w + 2 * shift) + ix).flatten(1).unsqueeze(1).expand(-1, x.shape[1], -1)
    return flat.gather(2, idx).view_as(x)


class Trainer:
    """Runs (or resumes) the three stages for one :class:`TrainConfig`.

    Args:
        cfg: the configuration.
        model: optional user module (default: the ``cfg.model`` recipe).
        input_shape: ``(H, W, C)`` for a user module.
        log: a ``print``-like callable for progress lines.
        progress: show tqdm progress bars.
    """

    def __init__(self, cfg: TrainConfig, model: nn.Module | None = None, input_shape=None,
                 log: Callable[[str], None] = print, progress: bool = True) -> None:
        self.cfg = cfg
        self.log = log
        self.progress = progress
        self.out = Path(cfg.out)
        self.device = pick_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        train = load_dataset(cfg.dataset, "train", cfg.data_dir).subset(cfg.limit_train)
        test = load_dataset(cfg.dataset, "test", cfg.data_dir).subset(cfg.limit_test)
        self.num_classes = max(train.num_classes, test.num_classes)
        self.x_train = torch.from_numpy(train.x).permute(0, 3, 1, 2).contiguous()
        self.y_train = torch.from_numpy(train.y)
        self.x_test = torch.from_numpy(test.x).permute(0, 3, 1, 2).contiguous()
        self.y_test = torch.from_numpy(test.y)
        shape = tuple(train.x.shape[1:])
        torch.manual_seed(cfg.seed)
        if model is None:
            model, rshape = build(cfg.model, self.num_classes, shape)
            input_shape = rshape
        self.input_shape = tuple(input_shape or shape)
        if self.input_shape != shape:
            raise ValueError(f"model input {self.input_shape} (H, W, C) does not match dataset images {shape}")
        self.float_model = model
        self.spec: GraphSpec = capture(model, self.input_shape)
        self.table: PathTable = (PathTable.load(cfg.paths, self.spec) if cfg.paths else default_table(self.spec))
        self.qnet: MultiPathNet | None = None
        self.stage, self.epoch, self.step, self.global_step = "float", 0, 0, 0
        self.opt: torch.optim.Optimizer | None = None
        self.gen_state: torch.Tensor | None = None
        self.rng_state: torch.Tensor | None = None
        self.history: list[dict] = []
        self.elapsed = 0.0  # training seconds up to the last checkpoint of earlier sessions
        self._run_t0: float | None = None

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        return {
            "config": asdict(self.cfg),
            "spec": self.spec.to_dict(),
            "table": self.table.to_dict(),
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "stage": self.stage,
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "float_model": self.float_model.state_dict(),
            "qnet": self.qnet.state_dict() if self.qnet is not None else None,
            "opt": self.opt.state_dict() if self.opt is not None else None,
            "gen_state": self.gen_state,
            "rng_state": self.rng_state,
            "history": self.history,
            "elapsed": self.elapsed + (time.time() - self._run_t0 if self._run_t0 is not None else 0.0),
        }

    def save(self) -> None:
        atomic_save(self._state(), self.out / CKPT)

    def resume(self) -> bool:
        """Load ``<out>/checkpoint.pt`` if it exists; True when resumed."""
        path = self.out / CKPT
        if not path.is_file():
            return False
        st = torch.load(path, map_location="cpu", weights_only=False)
        saved = TrainConfig.from_dict(st["config"])
        diff = {k for k, v in asdict(saved).items() if k not in ("device", "threads") and asdict(self.cfg)[k] != v}
        if diff:
            raise ValueError(f"{path}: checkpoint was made with a different config ({sorted(diff)}); use another --out")
        self.float_model.load_state_dict(st["float_model"])
        self.stage, self.epoch, self.step, self.global_step = st["stage"], st["epoch"], st["step"], st["global_step"]
        if st["qnet"] is not None:
            self._make_qnet(calibrate=False)
            self.qnet.load_state_dict(st["qnet"])
        self._make_opt()
        if st["opt"] is not None and self.opt is not None:
            self.opt.load_state_dict(st["opt"])
        self.gen_state, self.rng_state = st["gen_state"], st["rng_state"]
        self.history, self.elapsed = st["history"], st["elapsed"]
        self.log(f"resumed {path}: stage {self.stage}, epoch {self.epoch}, step {self.step}")
        return True

    # ------------------------------------------------------------------ setup
    def _make_qnet(self, calibrate: bool) -> None:
        cfg = self.cfg
        self.qnet = MultiPathNet(self.float_model.cpu(), self.spec, self.table, cfg.weight_quant, cfg.act_quant,
                                 cfg.ratio_lambda)
        if calibrate:
            g = torch.Generator().manual_seed(_seed(cfg.seed, 99))
            idx = torch.randperm(len(self.x_train), generator=g)[: max(cfg.batch_size, 256)]
            self.qnet.calibrate(self.x_train[idx])
        self.qnet.to(self.device)

    def _make_opt(self) -> None:
        cfg = self.cfg
        if self.stage == "float":
            self.float_model.to(self.device)
            self.opt = torch.optim.AdamW(self.float_model.parameters(), lr=cfg.lr_float, weight_decay=cfg.weight_decay)
        elif self.stage == "qat":
            decay, no_decay = [], []
            for name, p in self.qnet.named_parameters():
                is_weight = name.endswith(".weight") and not name.startswith("bns.")
                (decay if is_weight else no_decay).append(p)
            self.opt = torch.optim.AdamW(
                [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                lr=cfg.lr_qat,
            )
        else:
            self.opt = None

    def _lr(self, base: float, epochs: int) -> float:
        """Cosine decay over the stage, with a short linear warm-up."""
        steps_per_epoch = math.ceil(len(self.x_train) / self.cfg.batch_size)
        total = max(1, epochs * steps_per_epoch)
        t = self.epoch * steps_per_epoch + self.step
        warm = min(1.0, (t + 1) / max(1, steps_per_epoch // 4))
        return base * warm * 0.5 * (1 + math.cos(math.pi * min(t, total) / total))

    # ------------------------------------------------------------------ run
    def run(self, stop_after_steps: int | None = None) -> dict:
        """Run the remaining stages; returns the final metrics. ``stop_after_steps`` simulates a kill."""
        cfg = self.cfg
        self._stop_at = None if stop_after_steps is None else self.global_step + stop_after_steps
        if self.opt is None and self.stage in ("float", "qat"):
            if self.stage == "qat" and self.qnet is None:
                self._make_qnet(calibrate=True)
            self._make_opt()
        t0 = self._run_t0 = time.time()
        try:
            if self.stage == "float":
                if cfg.init_float:
                    self._load_float(cfg.init_float)
                else:
                    self._train_stage("float", cfg.epochs_float)
                self.stage, self.epoch, self.step = "qat", 0, 0
                self.gen_state = self.rng_state = None
                self._make_qnet(calibrate=True)
                self._make_opt()
                self.save()
            if self.stage == "qat":
                self._train_stage("qat", cfg.epochs_qat)
                self.stage, self.epoch, self.step = "bn", 0, 0
                self.gen_state = self.rng_state = None
                self.opt = None
                self.save()
            if self.stage == "bn":
                self._reestimate_bn()
                self.stage = "done"
                self.save()
        finally:
            self.elapsed += time.time() - t0
            self._run_t0 = None
        metrics = self.evaluate()
        metrics["train_seconds"] = round(self.elapsed, 1)
        atomic_save({**self._state(), "metrics": metrics}, self.out / FINAL)
        (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics

    def _load_float(self, src: str) -> None:
        """Take the float model of another run (its final.pt or checkpoint.pt) instead of pretraining."""
        p = Path(src)
        if p.is_dir():
            p = p / FINAL if (p / FINAL).is_file() else p / CKPT
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no run to take the float model from (--init-float)")
        st = torch.load(p, map_location="cpu", weights_only=False)
        if st.get("stage") == "float":
            raise ValueError(f"{p}: its float pretraining has not finished (stage 'float')")
        try:
            self.float_model.load_state_dict(st["float_model"])
        except (RuntimeError, KeyError) as e:
            raise ValueError(f"{p}: float model does not match {self.cfg.model!r}: {e}") from e
        self.log(f"float model taken from {p}")

    def _batches(self, stage: str, gen: torch.Generator):
        perm = torch.randperm(len(self.x_train), generator=gen)
        bs = self.cfg.batch_size
        for i in range(0, len(perm), bs):
            yield perm[i : i + bs]

    def _train_stage(self, stage: str, epochs: int) -> None:
        cfg = self.cfg
        steps_per_epoch = math.ceil(len(self.x_train) / cfg.batch_size)
        net = self.float_model if stage == "float" else self.qnet
        while self.epoch < epochs:
            gen = torch.Generator()
            gen.manual_seed(_seed(cfg.seed, STAGES.index(stage), self.epoch))
            perm_gen = torch.Generator()
            perm_gen.manual_seed(_seed(cfg.seed, STAGES.index(stage), self.epoch, 1))
            batches = list(self._batches(stage, perm_gen))
            if self.step == 0:
                torch.manual_seed(_seed(cfg.seed, STAGES.index(stage), self.epoch, 2))
            else:
                gen.set_state(self.gen_state)
                torch.set_rng_state(self.rng_state)
            net.train()
            bar = _bar(range(self.step, steps_per_epoch), self.progress, f"{stage} {self.epoch + 1}/{epochs}")
            tot_loss, tot_ok, tot_n = 0.0, 0, 0
            for s in bar:
                idx = batches[s]
                xb = self.x_train[idx]
                if cfg.augment:
                    xb = _augment(xb, gen)
                xb, yb = xb.to(self.device), self.y_train[idx].to(self.device)
                lr = self._lr(cfg.lr_float if stage == "float" else cfg.lr_qat, epochs)
                for g in self.opt.param_groups:
                    g["lr"] = lr
                self.opt.zero_grad(set_to_none=True)
                if stage == "float":
                    out = net(xb.float() / 255.0)
                    loss = F.cross_entropy(out, yb)
                    loss.backward()
                else:
                    out, loss = self._qat_step(xb, yb)
                self.opt.step()
                if stage == "qat":
                    self.qnet.clamp_scales_()
                tot_loss += float(loss.detach()) * len(idx)
                tot_ok += int((out.argmax(1) == yb).sum())
                tot_n += len(idx)
                self.step = s + 1
                self.global_step += 1
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{tot_loss / tot_n:.3f}", acc=f"{tot_ok / tot_n:.3f}")
                self.gen_state, self.rng_state = gen.get_state(), torch.get_rng_state()
                if self.step < steps_per_epoch and cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.save()
                if self._stop_at is not None and self.global_step >= self._stop_at:
                    self.save()
                    raise Interrupted(f"stopped after global step {self.global_step}")
            self.history.append({"stage": stage, "epoch": self.epoch + 1, "loss": tot_loss / max(tot_n, 1),
                                 "train_acc": tot_ok / max(tot_n, 1)})
            self.log(f"{stage} epoch {self.epoch + 1}/{epochs}: loss {tot_loss / max(tot_n, 1):.4f} "
                     f"train acc {tot_ok / max(tot_n, 1):.4f}")
            self.epoch += 1
            self.step = 0
            self.gen_state = self.rng_state = None
            self.save()

    def _qat_step(self, xb: torch.Tensor, yb: torch.Tensor):
        cfg = self.cfg
        wide, narrow = self.table.widest(self.spec), self.table.narrowest(self.spec)
        rest = [i for i in range(len(self.table)) if i not in (wide, narrow)]
        rnd = random.Random(_seed(cfg.seed, 7, self.global_step))
        chosen = [wide] + ([narrow] if narrow != wide else []) + rnd.sample(rest, min(cfg.random_paths, len(rest)))
        teacher = None
        out_wide, total = None, 0.0
        for p in chosen:
            logits = self.qnet(xb, p)
            ce = F.cross_entropy(logits, yb)
            if p == wide or cfg.distill_alpha <= 0:
                loss = ce
            else:
                t = cfg.distill_temp
                kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
                loss = (1 - cfg.distill_alpha) * ce + cfg.distill_alpha * kd
            if p == wide:
                teacher = logits.detach()
                out_wide = logits.detach()
            loss = loss / len(chosen)
            loss.backward()
            total += float(loss.detach())
        coefs = {"inv_scale": cfg.loss_inv_scale, "bin_count": cfg.loss_bin_count, "deviation": cfg.loss_deviation}
        if any(coefs.values()):
            aux = self.qnet.aux_losses()
            reg = sum(coefs[k] * v for k, v in aux.items() if coefs[k])
            reg.backward()
            total += float(reg.detach())
        return out_wide, torch.tensor(total)

    @torch.no_grad()
    def _reestimate_bn(self) -> None:
        """Per path: reset the BatchNorm statistics and re-estimate them (cumulative average) on ``bn_batches``."""
        cfg = self.cfg
        net = self.qnet
        gen = torch.Generator()
        gen.manual_seed(_seed(cfg.seed, 2, 0, 1))
        batches = list(self._batches("bn", gen))[: cfg.bn_batches]
        for p in range(len(self.table)):
            net.train()  # batch statistics (an eval-mode forward uses the folded constants, not the BN modules)
            bns = net.path_bns(p)
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
            for idx in _bar(batches, self.progress, f"bn {self.table.names[p]}"):
                net(self.x_train[idx].to(self.device), p)
            for bn in bns:
                bn.momentum = 0.1
                bn.eval()
        net.eval()

    # ------------------------------------------------------------------ evaluation (torch)
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Test accuracy of the float model and, per path, of the fake-quant and integer-exact torch models."""
        res: dict = {"float": _accuracy(lambda x: self.float_model.eval()(x.float() / 255.0), self.x_test, self.y_test,
                                        self.device)}
        if self.qnet is not None and self.stage == "done":
            self.qnet.eval()
            for p, name in enumerate(self.table.names):
                res[name] = {
                    "fake_quant": _accuracy(lambda x, p=p: self.qnet(x, p), self.x_test, self.y_test, self.device),
                    "integer": _accuracy(lambda x, p=p: self.qnet(x, p, integer=True), self.x_test, self.y_test,
                                         self.device),
                }
        return res


def _accuracy(fn, x, y, device, bs: int = 1000) -> float:
    ok = 0
    for i in range(0, len(x), bs):
        ok += int((fn(x[i : i + bs].to(device)).argmax(1).cpu() == y[i : i + bs]).sum())
    return ok / max(len(x), 1)


def _bar(it, show: bool, desc: str):
    if not show:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False, dynamic_ncols=True)


def load_final(path: str | Path) -> tuple[MultiPathNet, dict]:
    """Rebuild the trained :class:`MultiPathNet` from ``final.pt`` (or a finished ``checkpoint.pt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / FINAL
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no trained model (expected final.pt from `bitpath train`)")
    st = torch.load(p, map_location="cpu", weights_only=False)
    if st.get("stage") != "done" or st.get("qnet") is None:
        raise ValueError(f"{p}: training has not finished (stage {st.get('stage')!r}); resume it with --resume")
    cfg = TrainConfig.from_dict(st["config"])
    model, _ = build(cfg.model, st["num_classes"], tuple(st["input_shape"]))
    model.load_state_dict(st["float_model"])
    spec = GraphSpec.from_dict(st["spec"])
    table = PathTable.from_dict(st["table"], spec)
    net = MultiPathNet(model, spec, table, cfg.weight_quant, cfg.act_quant, cfg.ratio_lambda)
    net.load_state_dict(st["qnet"])
    net.eval()
    return net, st


__all__ = ["Interrupted", "Trainer", "atomic_save", "load_final", "pick_device", "np"]
