"""Training configuration."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

WEIGHT_VIEWS = ("round", "floor")

@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved in every checkpoint).

    Stages: ``epochs_float`` of float pretraining, ``epochs_qat`` of multi-path QAT, then BatchNorm
    re-estimation per path on ``bn_batches`` batches.

    ``weight_views``: how a path narrower than a layer's stored width reads its weights: ``"round"``
    (the stored code rounded half up to the narrow grid, saturated at the top; the IR's
    ``w_round``) or ``"floor"`` (its top bits). A saved config without the key was trained before
    rounded views existed: :meth:`from_dict` reads it as ``"floor"`` (docs/training.md).
    """

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    model: str = "default-cnn"
    paths: str | None = None  # JSON path table file; None: the default table
    out: str = "runs/default"
    seed: int = 0
    epochs_float: int = 25
    epochs_qat: int = 3  # with every path in every step (random_paths 2 of the 4 default paths)
    batch_size: int = 256
    lr_float: float = 3e-3
    lr_qat: float = 1e-3
    weight_decay: float = 0.01  # AdamW, decoupled (docs/training.md: 1e-4 regularised almost nothing)
    weight_quant: str = "lsq"  # lsq | ratio
    act_quant: str = "lsq"  # lsq | pact
    weight_views: str = "round"  # round | floor: narrow views of the stored weight codes
    ratio_lambda: float = 1e-3
    loss_inv_scale: float = 0.0
    loss_bin_count: float = 0.0
    loss_deviation: float = 0.0
    random_paths: int = 2  # random paths per step besides the widest and the narrowest
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

    def __post_init__(self) -> None:
        if self.weight_views not in WEIGHT_VIEWS:
            raise ValueError(f"weight_views must be 'round' or 'floor', got {self.weight_views!r}")

    @property
    def view_round(self) -> bool:
        """Whether narrow weight views round (``weight_views == "round"``)."""
        return self.weight_views == "round"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The config of a saved run. Keys added since it was saved take their defaults, except
        ``weight_views``: a run saved before it existed floored its views, so it reads as ``"floor"``."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}")
        return cls(**{"weight_views": "floor", **d})

    def differs_from(self, saved: dict, ignore: tuple[str, ...] = ()) -> set[str]:
        """Keys where a run saved with config ``saved`` was trained otherwise than this config says
        (keys added to TrainConfig since it was saved take their defaults, but a missing
        ``weight_views`` is ``"floor"``, see :meth:`from_dict`; ``ignore`` lists keys that
        do not matter to the caller). Raises ValueError for keys TrainConfig does not know."""
        old, new = asdict(TrainConfig.from_dict(saved)), asdict(self)
        return {k for k, v in old.items() if k not in ignore and new[k] != v}
