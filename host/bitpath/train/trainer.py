"""Multi-path training: float pretrain -> multi-path QAT -> BatchNorm re-estimation per path.

Determinism: every epoch draws its order, augmentation and dropout from generators seeded by
``(seed, stage, epoch)``; the generator and RNG states are saved in each checkpoint, so a run
resumed from any checkpoint produces the same weights as an uninterrupted one.
Checkpoints are written atomically (temporary file + ``os.replace``) to ``<out>/checkpoint.pt``;
the finished model is ``<out>/final.pt``.

Under ``torchrun`` (``WORLD_SIZE`` > 1, see :mod:`bitpath.train.distributed`) the training stages
run in DistributedDataParallel: every process draws the same permutation and augmentation for a
global batch of ``world_size * batch_size`` images and trains on its contiguous slice of it; DDP
averages the gradients. BatchNorm re-estimation and evaluation are sharded and summed with
``all_reduce``; rank 0 alone writes files, behind a barrier. With one process nothing changes.
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
from bitpath.train import distributed as D
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


def deterministic_cuda() -> None:
    """Make CUDA training repeatable: the same seed gives the same weights, bit for bit, on the same GPU.

    cuDNN picks deterministic convolution algorithms (no benchmarking), cuBLAS gets a fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``, read when its first handle is made, so this runs before any CUDA
    work), and PyTorch's deterministic mode is on. Ops with no deterministic CUDA kernel warn
    instead of failing. A different GPU model or library version may still give other last bits.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to a temporary file in the same directory, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def state_digest(*state_dicts: dict | None) -> str:
    """sha256 over the names, dtypes, shapes and bytes of every tensor of the given state dicts.

    ``state_digest(st["float_model"], st["qnet"])`` of a ``final.pt`` equals
    :meth:`Trainer.state_digest` of the trainer that wrote it.
    """
    import hashlib

    h = hashlib.sha256()
    for i, sd in enumerate(state_dicts):
        for k in sorted(sd or {}):
            v = sd[k]
            if not torch.is_tensor(v):
                continue
            v = v.detach().cpu().contiguous().reshape(-1)
            h.update(f"{i}.{k}:{v.dtype}:{tuple(sd[k].shape)}".encode())
            h.update(v.view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def _seed(*parts: int) -> int:
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


def _augment(x: torch.Tensor, gen: torch.Generator, shift: int = 2, rows: slice | None = None) -> torch.Tensor:
    """Random horizontal flip and translation by up to ``shift`` pixels (zero fill), uint8 NCHW.

    ``rows``: the draws are made for all of ``x`` (one global batch, the same on every process)
    but only these rows are transformed and returned (this process' shard).
    """
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    dy = torch.randint(-shift, shift + 1, (n,), generator=gen)
    dx = torch.randint(-shift, shift + 1, (n,), generator=gen)
    if rows is not None:
        x, flip, dy, dx = x[rows], flip[rows], dy[rows], dx[rows]
    n, _, h, w = x.shape
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
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

    Under ``torchrun`` (see :mod:`bitpath.train.distributed`) the constructor joins the process
    group; only rank 0 logs, shows progress bars and writes files.
    """

    def __init__(self, cfg: TrainConfig, model: nn.Module | None = None, input_shape=None,
                 log: Callable[[str], None] = print, progress: bool = True) -> None:
        self.cfg = cfg
        self.dist = D.from_env()
        self.log = log if self.dist.is_main else _quiet
        self.progress = progress and self.dist.is_main
        self.out = Path(cfg.out)
        self.device = D.device_for(cfg.device, self.dist) if self.dist.enabled else pick_device(cfg.device)
        if self.device.type == "cuda":
            deterministic_cuda()
        D.setup(self.dist, self.device)
        self.ddp: nn.Module | None = None  # the DistributedDataParallel wrapper of the stage being trained
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        train = load_dataset(cfg.dataset, "train", cfg.data_dir).hold_out(cfg.holdout)[0].subset(cfg.limit_train)
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

    @property
    def global_batch(self) -> int:
        """Images per optimizer step: ``batch_size`` per process times the number of processes."""
        return self.cfg.batch_size * self.dist.world_size

    def state_digest(self) -> str:
        """sha256 of the float model and the multi-path network (see :func:`state_digest`)."""
        return state_digest(self.float_model.state_dict(), self.qnet.state_dict() if self.qnet is not None else None)

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        return {
            "world_size": self.dist.world_size,
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
        """Write ``<out>/checkpoint.pt``. With several processes every rank must call it: rank 0 writes
        (with every rank's torch RNG state), the others wait at a barrier."""
        if not self.dist.enabled:
            atomic_save(self._state(), self.out / CKPT)
            return
        rng_states = D.all_gather_object(self.dist, self.rng_state)
        if self.dist.is_main:
            atomic_save({**self._state(), "rank_rng_states": rng_states}, self.out / CKPT)
        D.barrier(self.dist)

    def resume(self) -> bool:
        """Load ``<out>/checkpoint.pt`` if it exists; True when resumed."""
        path = self.out / CKPT
        if not path.is_file():
            return False
        st = torch.load(path, map_location="cpu", weights_only=False)
        diff = self.cfg.differs_from(st["config"], ignore=("device", "threads"))
        if diff:
            raise ValueError(f"{path}: checkpoint was made with a different config ({sorted(diff)}); use another --out")
        saved_world = st.get("world_size", 1)
        if saved_world != self.dist.world_size and st["stage"] != "done":
            how = "without torchrun" if saved_world == 1 else f"with `torchrun --nproc-per-node {saved_world}`"
            raise ValueError(f"{path}: checkpoint was made by {saved_world} process(es), this run has "
                             f"{self.dist.world_size}; the batch order depends on it: resume {how}")
        self.float_model.load_state_dict(st["float_model"])
        self.stage, self.epoch, self.step, self.global_step = st["stage"], st["epoch"], st["step"], st["global_step"]
        if st["qnet"] is not None:
            self._make_qnet(calibrate=False)
            self.qnet.load_state_dict(st["qnet"])
        self._make_opt()
        if st["opt"] is not None and self.opt is not None:
            self.opt.load_state_dict(st["opt"])
        self.gen_state, self.rng_state = st["gen_state"], st["rng_state"]
        if self.dist.enabled and st.get("rank_rng_states") is not None:
            self.rng_state = st["rank_rng_states"][self.dist.rank]
        self.history, self.elapsed = st["history"], st["elapsed"]
        self.log(f"resumed {path}: stage {self.stage}, epoch {self.epoch}, step {self.step}")
        D.barrier(self.dist)  # every rank has read the checkpoint before rank 0 may replace it
        return True

    # ------------------------------------------------------------------ setup
    def _make_qnet(self, calibrate: bool) -> None:
        cfg = self.cfg
        self.qnet = MultiPathNet(self.float_model.cpu(), self.spec, self.table, cfg.weight_quant, cfg.act_quant,
                                 cfg.ratio_lambda, cfg.view_round)
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
        steps_per_epoch = math.ceil(len(self.x_train) / self.global_batch)
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
        if self.dist.enabled:
            digests = D.all_gather_object(self.dist, self.state_digest())
            if len(set(digests)) != 1:
                raise RuntimeError(f"the processes ended with different weights (sha256 by rank: {digests}); this is "
                                   "a bug in bitpath's distributed training: train in one process and report it")
        if self.dist.is_main:
            atomic_save({**self._state(), "metrics": metrics}, self.out / FINAL)
            atomic_write_text(json.dumps(metrics, indent=2), self.out / "metrics.json")
        D.barrier(self.dist)
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

    def _batches(self, gen: torch.Generator, size: int, min_size: int = 1) -> list[torch.Tensor]:
        """One epoch's batches of ``size`` indices, from a permutation drawn from ``gen``.

        A last batch shorter than ``min_size`` (the number of processes: each must get an image) is
        filled up with the first indices of the permutation, the way DistributedSampler pads.
        """
        perm = torch.randperm(len(self.x_train), generator=gen)
        out = [perm[i : i + size] for i in range(0, len(perm), size)]
        if out and len(out[-1]) < min_size:
            fill = perm[torch.arange(min_size - len(out[-1])) % len(perm)]
            out[-1] = torch.cat([out[-1], fill])
        return out

    def _shard(self, n: int) -> tuple[slice, float]:
        """This process' rows of a global batch of ``n`` images and the weight of its loss.

        Rank ``r`` takes the ``r``-th of ``world_size`` contiguous slices whose lengths differ by at
        most one. DDP averages the processes' gradients with equal weights, so a slice that is not
        ``n / world_size`` long scales its loss by ``len * world_size / n``: the average is then the
        gradient of the mean loss over the whole global batch.
        """
        w, r = self.dist.world_size, self.dist.rank
        lo, hi = n * r // w, n * (r + 1) // w
        return slice(lo, hi), (1.0 if n % w == 0 else (hi - lo) * w / n)

    def _wrap(self, stage: str) -> nn.Module:
        """The DistributedDataParallel module that trains ``stage`` (its construction syncs rank 0's state)."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        if stage == "float":
            return DDP(self.float_model, device_ids=ids)
        # A QAT step uses the shared weights plus the BatchNorm and activation steps of the sampled
        # paths only; the others are unused on every rank alike (same path sampling), and DDP then
        # leaves their gradients at None so that AdamW skips them, as in a single process.
        return DDP(_Sandwich(self.qnet, self.cfg), device_ids=ids, find_unused_parameters=True)

    def _train_stage(self, stage: str, epochs: int) -> None:
        steps_per_epoch = math.ceil(len(self.x_train) / self.global_batch)
        net = self.float_model if stage == "float" else self.qnet
        rank_salt = (self.dist.rank,) if self.dist.rank else ()  # dropout: other draws on every rank
        self.ddp = self._wrap(stage) if self.dist.enabled else None
        try:
            while self.epoch < epochs:
                self._train_epoch(stage, epochs, net, steps_per_epoch, rank_salt)
        finally:
            self.ddp = None
        # BatchNorm running statistics follow rank 0 (DDP broadcasts them before every forward);
        # after the last step every rank takes rank 0's again.
        D.broadcast_buffers(self.dist, net)

    def _train_epoch(self, stage: str, epochs: int, net: nn.Module, steps_per_epoch: int, rank_salt: tuple) -> None:
        cfg = self.cfg
        gen = torch.Generator()
        gen.manual_seed(_seed(cfg.seed, STAGES.index(stage), self.epoch))
        perm_gen = torch.Generator()
        perm_gen.manual_seed(_seed(cfg.seed, STAGES.index(stage), self.epoch, 1))
        batches = self._batches(perm_gen, self.global_batch, self.dist.world_size)
        if self.step == 0:
            torch.manual_seed(_seed(cfg.seed, STAGES.index(stage), self.epoch, 2, *rank_salt))
        else:
            gen.set_state(self.gen_state)
            torch.set_rng_state(self.rng_state)
        net.train()
        bar = _bar(range(self.step, steps_per_epoch), self.progress, f"{stage} {self.epoch + 1}/{epochs}")
        tot_loss, tot_ok, tot_n = 0.0, 0, 0
        for s in bar:
            idx = batches[s]
            rows, weight = self._shard(len(idx)) if self.dist.enabled else (None, 1.0)
            xb = self.x_train[idx]
            if rows is not None:
                idx = idx[rows]
            if cfg.augment:  # drawn for the whole global batch, the same on every rank
                xb = _augment(xb, gen, rows=rows)
            elif rows is not None:
                xb = xb[rows]
            xb, yb = xb.to(self.device), self.y_train[idx].to(self.device)
            lr = self._lr(cfg.lr_float if stage == "float" else cfg.lr_qat, epochs)
            for g in self.opt.param_groups:
                g["lr"] = lr
            self.opt.zero_grad(set_to_none=True)
            if stage == "float":
                out = (self.ddp or net)(xb.float() / 255.0)
                loss = F.cross_entropy(out, yb)
                (loss if weight == 1.0 else loss * weight).backward()
            else:
                out, loss = self._qat_step(xb, yb, weight)
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
        if self.dist.enabled:  # the epoch's loss and accuracy over every rank's images
            t = torch.tensor([tot_loss, tot_ok, tot_n], dtype=torch.float64, device=self.device)
            tot_loss, tot_ok, tot_n = D.all_reduce_sum(self.dist, t).tolist()
            tot_ok, tot_n = int(tot_ok), int(tot_n)
        self.history.append({"stage": stage, "epoch": self.epoch + 1, "loss": tot_loss / max(tot_n, 1),
                             "train_acc": tot_ok / max(tot_n, 1)})
        self.log(f"{stage} epoch {self.epoch + 1}/{epochs}: loss {tot_loss / max(tot_n, 1):.4f} "
                 f"train acc {tot_ok / max(tot_n, 1):.4f}")
        self.epoch += 1
        self.step = 0
        self.gen_state = self.rng_state = None
        self.save()

    def _qat_step(self, xb: torch.Tensor, yb: torch.Tensor, weight: float = 1.0):
        cfg = self.cfg
        wide, narrow = self.table.widest(self.spec), self.table.narrowest(self.spec)
        rest = [i for i in range(len(self.table)) if i not in (wide, narrow)]
        rnd = random.Random(_seed(cfg.seed, 7, self.global_step))  # the same paths on every rank
        chosen = [wide] + ([narrow] if narrow != wide else []) + rnd.sample(rest, min(cfg.random_paths, len(rest)))
        if self.ddp is not None:  # all paths in one DDP forward, one backward: DDP averages the summed gradient
            loss, out_wide, reported = self.ddp(xb, yb, chosen, wide, weight)
            loss.backward()
            return out_wide, reported
        out_wide, total = None, 0.0
        for p, logits, loss in _path_losses(self.qnet, cfg, xb, yb, chosen, wide):
            if p == wide:
                out_wide = logits.detach()
            loss.backward()
            total += float(loss.detach())
        reg = _aux_loss(self.qnet, cfg)
        if reg is not None:
            reg.backward()
            total += float(reg.detach())
        return out_wide, torch.tensor(total)

    @torch.no_grad()
    def _reestimate_bn(self) -> None:
        """Per path: reset the BatchNorm statistics and re-estimate them (cumulative average) on ``bn_batches``.

        With several processes rank ``r`` runs batches ``r, r + world_size, ...`` and the per-rank
        averages are combined, weighted by their batch counts, with ``all_reduce``: the same
        average over the same batches as one process computes.
        """
        cfg = self.cfg
        net = self.qnet
        gen = torch.Generator()
        gen.manual_seed(_seed(cfg.seed, 2, 0, 1))
        batches = self._batches(gen, cfg.batch_size)[: cfg.bn_batches]
        mine = batches[self.dist.rank :: self.dist.world_size]
        for p in range(len(self.table)):
            net.train()  # batch statistics (an eval-mode forward uses the folded constants, not the BN modules)
            bns = net.path_bns(p)
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
            for idx in _bar(mine, self.progress, f"bn {self.table.names[p]}"):
                net(self.x_train[idx].to(self.device), p)
            if self.dist.enabled and batches:
                for bn in bns:
                    t = D.all_reduce_sum(self.dist, torch.stack([bn.running_mean, bn.running_var]) * len(mine))
                    bn.running_mean.copy_(t[0] / len(batches))
                    bn.running_var.copy_(t[1] / len(batches))
                    bn.num_batches_tracked.fill_(len(batches))
            for bn in bns:
                bn.momentum = 0.1
                bn.eval()
        net.eval()

    # ------------------------------------------------------------------ evaluation (torch)
    def _accuracy(self, fn) -> float:
        """Test accuracy of ``fn``; with several processes each counts a contiguous shard, summed with all_reduce."""
        if not self.dist.enabled:
            return _accuracy(fn, self.x_test, self.y_test, self.device)
        n, w, r = len(self.x_test), self.dist.world_size, self.dist.rank
        lo, hi = n * r // w, n * (r + 1) // w
        ok = _correct(fn, self.x_test[lo:hi], self.y_test[lo:hi], self.device)
        return int(D.all_reduce_sum(self.dist, torch.tensor([ok], dtype=torch.int64, device=self.device))) / max(n, 1)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Test accuracy of the float model and, per path, of the fake-quant and integer-exact torch models."""
        # _make_qnet moved the float model to the CPU (MultiPathNet copies it there): back to the device
        fm = self.float_model.to(self.device).eval()
        res: dict = {"float": self._accuracy(lambda x: fm(x.float() / 255.0))}
        if self.qnet is not None and self.stage == "done":
            self.qnet.eval()
            for p, name in enumerate(self.table.names):
                res[name] = {
                    "fake_quant": self._accuracy(lambda x, p=p: self.qnet(x, p)),
                    "integer": self._accuracy(lambda x, p=p: self.qnet(x, p, integer=True)),
                }
        return res


class _Sandwich(nn.Module):
    """One QAT step as one module call, for DistributedDataParallel: every sampled path, summed loss."""

    def __init__(self, qnet: MultiPathNet, cfg: TrainConfig) -> None:
        super().__init__()
        self.qnet, self.cfg = qnet, cfg

    def forward(self, xb: torch.Tensor, yb: torch.Tensor, chosen: list[int], wide: int, weight: float):
        """Returns the loss to back-propagate, the widest path's logits and the loss to report (unweighted)."""
        total, out_wide = None, None
        for p, logits, loss in _path_losses(self.qnet, self.cfg, xb, yb, chosen, wide):
            if p == wide:
                out_wide = logits.detach()
            total = loss if total is None else total + loss
        reported = total.detach()
        if weight != 1.0:
            total = total * weight
        reg = _aux_loss(self.qnet, self.cfg)
        if reg is not None:
            total = total + reg
            reported = reported + reg.detach()
        return total, out_wide, reported


def _path_losses(qnet: MultiPathNet, cfg: TrainConfig, xb: torch.Tensor, yb: torch.Tensor, chosen: list[int],
                 wide: int):
    """Yield ``(path, logits, loss / len(chosen))`` per sampled path, in order (sandwich rule).

    The widest path learns from the labels; the others from ``(1 - alpha) * CE + alpha * T^2 * KL``
    to the widest path's (detached) logits. The caller may back-propagate each loss before the next.
    """
    teacher = None
    for p in chosen:
        logits = qnet(xb, p)
        ce = F.cross_entropy(logits, yb)
        if p == wide or cfg.distill_alpha <= 0:
            loss = ce
        else:
            t = cfg.distill_temp
            kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
            loss = (1 - cfg.distill_alpha) * ce + cfg.distill_alpha * kd
        if p == wide:
            teacher = logits.detach()
        yield p, logits, loss / len(chosen)


def _aux_loss(qnet: MultiPathNet, cfg: TrainConfig) -> torch.Tensor | None:
    """The weighted optional quantizer losses (``--loss-*``), or None when all are off."""
    coefs = {"inv_scale": cfg.loss_inv_scale, "bin_count": cfg.loss_bin_count, "deviation": cfg.loss_deviation}
    if not any(coefs.values()):
        return None
    aux = qnet.aux_losses()
    return sum(coefs[k] * v for k, v in aux.items() if coefs[k])


def _correct(fn, x, y, device, bs: int = 1000) -> int:
    ok = 0
    for i in range(0, len(x), bs):
        ok += int((fn(x[i : i + bs].to(device)).argmax(1).cpu() == y[i : i + bs]).sum())
    return ok


def _accuracy(fn, x, y, device, bs: int = 1000) -> float:
    return _correct(fn, x, y, device, bs) / max(len(x), 1)


def _quiet(_msg: str) -> None:
    """The log of ranks other than 0."""


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
    net = MultiPathNet(model, spec, table, cfg.weight_quant, cfg.act_quant, cfg.ratio_lambda, cfg.view_round)
    net.load_state_dict(st["qnet"])
    net.eval()
    return net, st


__all__ = ["Interrupted", "Trainer", "atomic_save", "atomic_write_text", "load_final", "pick_device", "state_digest",
           "np"]
