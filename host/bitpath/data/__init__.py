"""Offline dataset loaders: every loader returns ``(x uint8 NHWC, y int64)``."""

from bitpath.data.loaders import (
    DATASETS,
    DatasetError,
    Split,
    default_data_dir,
    load_cifar10,
    load_dataset,
    load_idx_pair,
    load_npz,
    read_idx,
)

__all__ = [
    "DATASETS",
    "DatasetError",
    "Split",
    "default_data_dir",
    "load_cifar10",
    "load_dataset",
    "load_idx_pair",
    "load_npz",
    "read_idx",
]
