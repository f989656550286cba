"""Multi-process training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc-per-node N -m bitpath train ...`` starts N copies of the trainer with the
variables ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. :func:`from_env` reads them; with no
such variables, or a world size of 1, nothing here is used and training runs exactly as in a
single process (no process group). ``BITPATH_DDP=1`` beside a world size of 1 takes the
multi-process path anyway (process group, DistributedDataParallel, collectives over one rank): that
is how a machine with one GPU checks the NCCL code path, which needs one GPU per process. With a
process group, :func:`setup` picks each process' device (``cuda:LOCAL_RANK`` on GPUs, else the
CPU) and starts the group with the backend that device needs: NCCL for CUDA, gloo for the CPU.

The trainer (``bitpath.train.trainer``) decides what is sharded; this module only holds the
process-group plumbing and a few collective helpers that do nothing in a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
FORCE_VAR = "BITPATH_DDP"  # "1": use the process group even for one process (checks the DDP path on one GPU)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly single-process) run."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    force: bool = False  # a process group even for one process (BITPATH_DDP=1 under torchrun)

    @property
    def enabled(self) -> bool:
        """True when a process group is used: more than one process, or one with ``BITPATH_DDP=1``."""
        return self.world_size > 1 or self.force

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files, logs and shows progress bars."""
        return self.rank == 0


def from_env(environ=None) -> DistEnv:
    """The :class:`DistEnv` that ``torchrun`` describes in the environment (single process without it).

    An already initialised default process group (started by the caller) takes precedence.
    """
    env = os.environ if environ is None else environ
    force = env.get(FORCE_VAR, "0")
    if force not in ("0", "1"):
        raise ValueError(f"{FORCE_VAR}={force!r}: expected 1 (process group even for one process) or 0")
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_world_size(), dist.get_rank(), int(env.get("LOCAL_RANK", 0)), force == "1")
    present = [k for k in ENV_VARS if k in env]
    if not present:
        if force == "1":
            raise ValueError(f"{FORCE_VAR}=1 needs torchrun's environment; start the run with "
                             "`torchrun --nproc-per-node 1 -m bitpath train ...`")
        return DistEnv()
    try:
        world = int(env.get("WORLD_SIZE", 1))
        rank = int(env.get("RANK", 0))
        local = int(env.get("LOCAL_RANK", rank))
    except ValueError as e:
        raise ValueError(f"malformed torchrun environment ({', '.join(f'{k}={env.get(k)!r}' for k in present)}): "
                         f"{e}; start the run with `torchrun --nproc-per-node N -m bitpath train ...`") from e
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"inconsistent torchrun environment WORLD_SIZE={world} RANK={rank} LOCAL_RANK={local}")
    if world > 1 and ("WORLD_SIZE" not in env or "RANK" not in env):
        raise ValueError("WORLD_SIZE and RANK must both be set for multi-process training; use torchrun")
    return DistEnv(world, rank, local, force == "1")


def device_for(name: str, env: DistEnv) -> torch.device:
    """The device of this process for ``--device name``.

    In a single process this is :func:`bitpath.train.trainer.pick_device`'s choice. With several
    processes ``auto`` and ``cuda`` mean ``cuda:LOCAL_RANK`` (one GPU per process); an explicit
    ``cuda:N`` is refused because every process would share that GPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not env.enabled:
        return torch.device(name)
    dev = torch.device(name)
    if dev.type != "cuda":
        return dev
    if dev.index is not None:
        raise ValueError(f"--device {name} under torchrun would put every process on one GPU; pass --device cuda "
                         "(or auto): each process then uses cuda:LOCAL_RANK")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda but CUDA is not available; pass --device cpu (gloo backend)")
    n = torch.cuda.device_count()
    if env.local_rank >= n:
        raise ValueError(f"LOCAL_RANK {env.local_rank} needs GPU {env.local_rank} but this machine has {n}; "
                         f"use --nproc-per-node {n} or less, or --device cpu")
    return torch.device("cuda", env.local_rank)


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup(env: DistEnv, device: torch.device) -> None:
    """Start the default process group for ``env`` if it has several processes and none is running."""
    if not env.enabled:
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device), init_method="env://")
    if dist.get_world_size() != env.world_size:
        raise RuntimeError(f"process group has {dist.get_world_size()} processes, WORLD_SIZE says {env.world_size}")


def shutdown() -> None:
    """Destroy the default process group, if one was started (call once at the end of the program)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every process (no-op in a single process)."""
    if env.enabled:
        dist.barrier()


def all_gather_object(env: DistEnv, obj) -> list:
    """Every process' ``obj``, by rank (``[obj]`` in a single process)."""
    if not env.enabled:
        return [obj]
    out: list = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(env: DistEnv, t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over the processes in place (no-op in a single process); returns ``t``."""
    if env.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_buffers(env: DistEnv, module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every process."""
    if not env.enabled:
        return
    for b in module.buffers():
        dist.broadcast(b, src=0)
