"""Distributed training: two CPU processes (gloo) under torchrun.

Two torchrun launches of two processes each:

- ``bitpath train`` through ``python -m torch.distributed.run ... -m bitpath train`` (the real entry
  point): both ranks finish, only rank 0 logs and shows progress bars, both ranks end with the
  weights of the ``final.pt`` that rank 0 wrote;
- this file run as a worker script (``python -m torch.distributed.run ... test_train_ddp.py worker``)
  that drives :class:`Trainer` directly: a run that must equal a one-process run on the
  concatenated shards, and an interrupted-twice-and-resumed run that must equal an uninterrupted one.

Why the equivalence uses a model without BatchNorm: in DDP each rank normalises its own shard
(BatchNorm statistics are per rank; SyncBatchNorm needs a GPU), so a 2 x B run equals a 1 x 2B run
only for a network whose batch gradient is the mean of per-image gradients. For such a network
(:class:`host_fixtures.TinyNoBN`) the test checks every optimizer step's gradients and the final
weights against the one-process run, with a data set whose last global batch splits unevenly
(2 + 1 images), which exercises the loss weighting of uneven shards.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from host_fixtures import TinyCNNDropout, TinyNoBN, tiny_images

from bitpath.train import distributed as D
from bitpath.train.config import TrainConfig
from bitpath.train.trainer import CKPT, FINAL, Interrupted, Trainer, state_digest

HERE = Path(__file__).resolve().parent
WORLD = 2
B = 16  # per-rank batch in the two-process runs


# ---------------------------------------------------------------------------------------- helpers
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """This process' environment without any torchrun or BITPATH_DDP variables, one OpenMP thread, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in (*D.ENV_VARS, D.FORCE_VAR, "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE", "GROUP_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _torchrun(args: list[str], log_dir: Path, timeout: int = 240, world: int = WORLD,
              extra_env: dict[str, str] | None = None) -> dict[int, dict[str, str]]:
    """Run ``args`` under ``torch.distributed.run`` with ``world`` local processes; stdout/stderr per rank."""
    env = _env(**(extra_env or {}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world), "--master-addr",
           "127.0.0.1", "--master-port", str(_free_port()), "--redirects", "3", "--log-dir", str(log_dir), *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    logs: dict[int, dict[str, str]] = {}
    for rank in range(world):
        for stream in ("stdout", "stderr"):
            found = sorted(log_dir.glob(f"**/attempt_0/{rank}/{stream}.log"))
            logs.setdefault(rank, {})[stream] = found[-1].read_text() if found else ""
    detail = "\n".join(f"--- rank {k} {s}:\n{v[-3000:]}" for k, d in logs.items() for s, v in d.items())
    assert r.returncode == 0, f"torchrun failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}\n{detail}"
    return logs


def _npz(path: Path, n_train: int, n_test: int, size: int = 12, test_seed: int = 1) -> Path:
    x, y = tiny_images(n_train, size=size)
    xt, yt = tiny_images(n_test, size=size, seed=test_seed)
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return path


def _equiv_cfg(data: Path, out: Path, batch_size: int) -> TrainConfig:
    return TrainConfig(dataset="npz", data_dir=str(data), out=str(out), epochs_float=2, epochs_qat=2,
                       batch_size=batch_size, bn_batches=2, ckpt_every=2, lr_float=1e-2, lr_qat=3e-3, seed=3,
                       device="cpu")


def _resume_cfg(data: Path, out: Path) -> TrainConfig:
    return TrainConfig(dataset="npz", data_dir=str(data), out=str(out), epochs_float=2, epochs_qat=2, batch_size=B,
                       bn_batches=3, ckpt_every=2, lr_float=1e-2, lr_qat=3e-3, seed=5, device="cpu")


def _trainer(cfg: TrainConfig, model_cls) -> Trainer:
    torch.manual_seed(123)  # the model's initial weights (DDP also copies rank 0's at the start of a stage)
    return Trainer(cfg, model=model_cls(), input_shape=(12, 12, 1), log=lambda s: None, progress=False)


def _states(t: Trainer) -> dict[str, torch.Tensor]:
    return {**{f"float.{k}": v.clone() for k, v in t.float_model.state_dict().items()},
            **{f"q.{k}": v.clone() for k, v in t.qnet.state_dict().items()}}


class _GradRecorder:
    """Records every AdamW step's gradients (None stays None), in the optimizer's parameter order."""

    def __init__(self) -> None:
        self.steps: list[list[torch.Tensor | None]] = []
        self._orig = torch.optim.AdamW.step
        rec = self

        def step(opt, *a, **k):
            rec.steps.append([None if p.grad is None else p.grad.detach().clone()
                              for g in opt.param_groups for p in g["params"]])
            return rec._orig(opt, *a, **k)

        self._patched = step

    def __enter__(self):
        torch.optim.AdamW.step = self._patched
        return self

    def __exit__(self, *exc):
        torch.optim.AdamW.step = self._orig


# ---------------------------------------------------------------------------------------- worker
def _record_writes(root: Path, log: list[str]) -> None:
    """Record every file this process opens for writing under ``root`` (builtins.open and io.open)."""
    orig_open = builtins.open

    def rec_open(file, mode="r", *a, **k):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            p = Path(file).resolve()
            if root in p.parents:
                log.append(str(p.relative_to(root)))
        return orig_open(file, mode, *a, **k)

    builtins.open = io.open = rec_open


def _worker(root: Path) -> None:
    """One torchrun process (see the module docstring); writes its results to ``root/dump``."""
    env = D.from_env()
    assert env.world_size == WORLD, env
    dump = root / "dump"
    writes: list[str] = []
    _record_writes(root / "runs", writes)
    res: dict = {}

    # 1. equivalence with a one-process run on the whole global batches
    with _GradRecorder() as rec:
        t = _trainer(_equiv_cfg(root / "equiv.npz", root / "runs" / "equiv", B), TinyNoBN)
        m = t.run()
    m.pop("train_seconds")
    res["equiv"] = {"states": _states(t), "grads": rec.steps, "metrics": m, "history": t.history}

    # 2. uninterrupted, and 3. interrupted twice (float stage mid-epoch, then QAT) and resumed
    data = root / "resume.npz"
    u = _trainer(_resume_cfg(data, root / "runs" / "u"), TinyCNNDropout)
    mu = u.run()
    r = _trainer(_resume_cfg(data, root / "runs" / "r"), TinyCNNDropout)
    try:
        r.run(stop_after_steps=3)
        raise AssertionError("not interrupted")
    except Interrupted:
        pass
    if env.is_main:
        (dump / "interrupted.pt").write_bytes((root / "runs" / "r" / CKPT).read_bytes())
    for stop in (7, None):
        torch.manual_seed(1000 + env.rank)  # a fresh process would not have the old RNG state
        r = _trainer(_resume_cfg(data, root / "runs" / "r"), TinyCNNDropout)
        assert r.resume()
        try:
            mr = r.run(stop_after_steps=stop)
        except Interrupted:
            assert stop is not None and r.stage == "qat", r.stage
    mu.pop("train_seconds")
    mr.pop("train_seconds")
    res["resume"] = {"u": _states(u), "r": _states(r), "mu": mu, "mr": mr}
    res["writes"] = writes
    torch.save(res, dump / f"rank{env.rank}.pt")
    D.shutdown()


# ---------------------------------------------------------------------------------------- tests
def test_dist_env_parsing():
    assert D.from_env({}) == D.DistEnv() and not D.DistEnv().enabled
    one = D.from_env({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"})
    assert not one.enabled and one.is_main  # world size 1: no process group, exactly one process
    two = D.from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert two.enabled and not two.is_main and two.local_rank == 1
    with pytest.raises(ValueError, match="inconsistent torchrun environment"):
        D.from_env({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="malformed torchrun environment"):
        D.from_env({"WORLD_SIZE": "two", "RANK": "0"})
    assert D.backend_for(torch.device("cpu")) == "gloo" and D.backend_for(torch.device("cuda", 0)) == "nccl"
    assert D.device_for("cpu", two) == torch.device("cpu")
    with pytest.raises(ValueError, match="every process on one GPU"):
        D.device_for("cuda:0", two)
    forced = D.from_env({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", D.FORCE_VAR: "1"})
    assert forced.enabled and forced.world_size == 1 and forced.is_main  # BITPATH_DDP=1: a group of one
    assert not D.from_env({"WORLD_SIZE": "1", "RANK": "0", D.FORCE_VAR: "0"}).enabled
    with pytest.raises(ValueError, match="needs torchrun's environment"):
        D.from_env({D.FORCE_VAR: "1"})
    with pytest.raises(ValueError, match="expected 1"):
        D.from_env({"WORLD_SIZE": "1", "RANK": "0", D.FORCE_VAR: "yes"})


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a GPU (NCCL)"))])
def test_one_process_group_equals_plain_run(tmp_path, device):
    """`BITPATH_DDP=1 torchrun --nproc-per-node 1`: the DDP path (gloo on the CPU, NCCL on a GPU) with one
    process ends like the plain single-process run: the float stage bit for bit, QAT to float rounding.

    This is how a one-GPU machine runs the NCCL code path: NCCL refuses two processes on one GPU.
    """
    data = _npz(tmp_path / "d.npz", 80, 24, size=28, test_seed=5)
    args = ["-m", "bitpath", "train", "--dataset", "npz", "--data-dir", str(data), "--epochs-float", "1",
            "--epochs-qat", "1", "--batch-size", "16", "--bn-batches", "2", "--device", device, "--no-progress"]
    logs = _torchrun([*args, "--out", str(tmp_path / "ddp")], tmp_path / "logs", world=1,
                     extra_env={D.FORCE_VAR: "1"})
    lines = [ln for ln in logs[0]["stdout"].splitlines() if "trained weights sha256" in ln]
    assert len(lines) == 1 and lines[0].startswith("rank 0/1:"), logs[0]["stdout"]  # the process-group path ran
    r = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "plain")], env=_env(), capture_output=True,
                       text=True, timeout=240, cwd=HERE)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trained weights sha256" not in r.stdout  # no process group here
    st = {run: torch.load(tmp_path / run / FINAL, map_location="cpu", weights_only=False) for run in ("ddp", "plain")}
    assert st["ddp"]["world_size"] == st["plain"]["world_size"] == 1
    ddp, plain = st["ddp"], st["plain"]
    assert lines[0].split()[-1] == state_digest(ddp["float_model"], ddp["qnet"])  # the rank's digest is final.pt's
    # The float stage is one model's loss either way. In QAT the DDP path sums the sampled paths' losses into
    # one backward (one all-reduce) where one process runs a backward per path: the gradients are the same
    # sums in another order, so the weights agree to float rounding, not bit for bit (docs/training.md).
    for part in ("float_model", "qnet"):
        assert ddp[part].keys() == plain[part].keys()
        for k, v in ddp[part].items():
            if not torch.is_tensor(v):
                continue
            if part == "float_model":  # exact on a GPU too: CUDA training runs deterministic algorithms
                assert torch.equal(v, plain[part][k]), k
            else:
                assert torch.allclose(v.double(), plain[part][k].double(), rtol=1e-4, atol=1e-5), (part, k)
    for name, m in plain["metrics"].items():
        if name != "train_seconds":
            assert ddp["metrics"][name] == m, name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_training_is_repeatable(tmp_path):
    """Two CUDA runs with the same seed end with the same weights, bit for bit (deterministic algorithms)."""
    data = _npz(tmp_path / "d.npz", 80, 24, size=28, test_seed=5)
    digests = []
    for run in ("a", "b"):
        r = subprocess.run([sys.executable, "-m", "bitpath", "train", "--dataset", "npz", "--data-dir", str(data),
                            "--epochs-float", "2", "--epochs-qat", "1", "--batch-size", "16", "--bn-batches", "2",
                            "--device", "cuda", "--no-progress", "--out", str(tmp_path / run)],
                           env=_env(), capture_output=True, text=True, timeout=240, cwd=HERE)
        assert r.returncode == 0, r.stderr[-3000:]
        st = torch.load(tmp_path / run / FINAL, map_location="cpu", weights_only=False)
        digests.append(state_digest(st["float_model"], st["qnet"]))
    assert digests[0] == digests[1]


def test_torchrun_cli_two_processes(tmp_path):
    """`python -m torch.distributed.run --nproc-per-node 2 -m bitpath train`: rank 0 writes, both ranks agree."""
    data = _npz(tmp_path / "d.npz", 96, 32, size=28, test_seed=5)
    out = tmp_path / "run"
    logs = _torchrun(["-m", "bitpath", "train", "--out", str(out), "--dataset", "npz", "--data-dir", str(data),
                      "--epochs-float", "1", "--epochs-qat", "1", "--batch-size", "16", "--bn-batches", "2",
                      "--device", "cpu"], tmp_path / "logs")
    digests = {}
    for rank in range(WORLD):
        lines = [ln for ln in logs[rank]["stdout"].splitlines() if "trained weights sha256" in ln]
        assert len(lines) == 1 and lines[0].startswith(f"rank {rank}/{WORLD}:"), logs[rank]["stdout"]
        digests[rank] = lines[0].split()[-1]
    st = torch.load(out / FINAL, map_location="cpu", weights_only=False)
    assert st["world_size"] == WORLD and st["stage"] == "done"
    assert digests[0] == digests[1] == state_digest(st["float_model"], st["qnet"])
    assert json.loads((out / "metrics.json").read_text()) == st["metrics"]
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    # rank 0 logs and shows progress bars; rank 1 prints only its digest
    assert "device cpu; 4 paths" in logs[0]["stdout"] and '"w8a8"' in logs[0]["stdout"]
    assert logs[1]["stdout"].strip().splitlines() == [f"rank 1/{WORLD}: trained weights sha256 {digests[1]}"]
    assert "float 1/1" in logs[0]["stderr"] and "float 1/1" not in logs[1]["stderr"]


def test_torchrun_trainer_two_processes(tmp_path, monkeypatch):
    """2 processes x batch B equal 1 process x batch 2B (no BatchNorm); resume under DDP is exact."""
    root = tmp_path
    (root / "dump").mkdir()
    _npz(root / "equiv.npz", 99, 40)  # global batches of 32: 32, 32, 32 and 3 (split 2 + 1)
    _npz(root / "resume.npz", 128, 40)
    _torchrun([str(Path(__file__).resolve()), "worker", str(root)], root / "logs")
    ranks = [torch.load(root / "dump" / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    # only rank 0 wrote into the run directories; it wrote the checkpoints, final models and metrics
    assert ranks[1]["writes"] == []
    written = {Path(p).name.split(".tmp")[0].lstrip(".") for p in ranks[0]["writes"]}
    assert written == {CKPT, FINAL, "metrics.json"}
    for run in ("equiv", "u", "r"):
        assert {p.name for p in (root / "runs" / run).iterdir()} == {CKPT, FINAL, "metrics.json"}

    # both ranks hold identical weights (exactly)
    for part, key in (("equiv", "states"), ("resume", "u"), ("resume", "r")):
        a, b = ranks[0][part][key], ranks[1][part][key]
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (part, key, k)

    # an interrupted and twice resumed 2-process run equals the uninterrupted one, tensor for tensor
    res = ranks[0]["resume"]
    for k in res["u"]:
        assert torch.equal(res["u"][k], res["r"][k]), k
    assert res["mu"] == res["mr"]

    # the same run in one process with batch 2B: the same gradients at every step, the same weights
    for var in D.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    with _GradRecorder() as rec:
        one = _trainer(_equiv_cfg(root / "equiv.npz", root / "one", WORLD * B), TinyNoBN)
        m1 = one.run()
    two = ranks[0]["equiv"]
    assert len(rec.steps) == len(two["grads"]) == 16  # (2 float + 2 QAT epochs) x 4 steps
    for i, (g1, g2) in enumerate(zip(rec.steps, two["grads"], strict=True)):
        assert [g is None for g in g1] == [g is None for g in g2], i  # the same paths sampled on both
        # the averaged gradient is the gradient of the mean loss over the global batch: a sum instead of
        # the average, or unweighted uneven shards (the last step of each epoch) would be off by 10-100 %
        diff = sum(float(((a - b) ** 2).sum()) for a, b in zip(g1, g2, strict=True) if a is not None) ** 0.5
        norm = sum(float((a**2).sum()) for a in g1 if a is not None) ** 0.5
        assert diff <= 1e-4 * norm, (i, diff / norm)  # measured: below 3e-7
    s1 = _states(one)
    for k, v in s1.items():  # measured: relative differences below 1e-7
        w = two["states"][k]
        assert torch.allclose(v.float(), w.float(), rtol=1e-4, atol=1e-6), (k, (v.float() - w.float()).abs().max())
    m1.pop("train_seconds")
    assert m1["float"] == two["metrics"]["float"]
    for h1, h2 in zip(one.history, two["history"], strict=True):
        assert h1["train_acc"] == h2["train_acc"] and abs(h1["loss"] - h2["loss"]) < 1e-4

    # a checkpoint of 2 processes is not resumed by 1
    (root / "runs" / "r" / CKPT).write_bytes((root / "dump" / "interrupted.pt").read_bytes())
    t = _trainer(_resume_cfg(root / "resume.npz", root / "runs" / "r"), TinyCNNDropout)
    with pytest.raises(ValueError, match=r"made by 2 process\(es\).*torchrun --nproc-per-node 2"):
        t.resume()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "worker":
    _worker(Path(sys.argv[2]).resolve())
