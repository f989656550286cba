"""Training configuration."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved in every checkpoint).

    Stages: ``epochs_float`` of float pretraining, ``epochs_qat`` of multi-path QAT, then BatchNorm
    re-estimation per path on ``bn_batches`` batches.
    """

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    model: str = "default-cnn"
    paths: str | None = None  # JSON path table file; None: the default table
    out: str = "runs/default"
    seed: int = 0
    epochs_float: int = 8
    epochs_qat: int = 4
    batch_size: int = 256
    lr_float: float = 3e-3
    lr_qat: float = 1e-3
    weight_decay: float = 1e-4
    weight_quant: str = "lsq"  # lsq | ratio
    act_quant: str = "lsq"  # lsq | pact
    ratio_lambda: float = 1e-3
    loss_inv_scale: float = 0.0
    loss_bin_count: float = 0.0
    loss_deviation: float = 0.0
    random_paths: int = 1  # random paths per step besides the widest and the narrowest
    distill_alpha: float = 0.5
    distill_temp: float = 2.0
    bn_batches: int = 50
    augment: bool = True
    limit_train: int | None = None
    holdout: int = 0  # the last N training images are never trained on: the controller is calibrated on them
    limit_test: int | None = None
    ckpt_every: int = 200  # steps between checkpoints (and at every epoch end)
    init_float: str | None = None  # run dir / .pt whose float model replaces float pretraining
    device: str = "auto"
    threads: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}")
        return cls(**d)

    def differs_from(self, saved: dict, ignore: tuple[str, ...] = ()) -> set[str]:
        """Keys where a run saved with config ``saved`` was trained otherwise than this config says
        (keys added to TrainConfig since it was saved take their defaults; ``ignore`` lists keys that
        do not matter to the caller). Raises ValueError for keys TrainConfig does not know."""
        old, new = asdict(TrainConfig.from_dict(saved)), asdict(self)
        return {k for k, v in old.items() if k not in ignore and new[k] != v}
