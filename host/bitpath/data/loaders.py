"""Dataset readers for Fashion-MNIST / MNIST (idx), CIFAR-10 (python batches) and ``.npz``.

Every loader returns ``Split(x, y)`` with ``x`` uint8 of shape ``(N, H, W, C)`` (NHWC, the
layout of the integer kernels) and ``y`` int64 of shape ``(N,)``. A missing or malformed file
raises :class:`DatasetError` naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# idx data type codes (http://yann.lecun.com/exdb/mnist/): code -> numpy dtype (big endian)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetError(ValueError):
    """A dataset file is missing or does not have the expected format."""


@dataclass(frozen=True)
class Split:
    """One split of a dataset: ``x`` uint8 NHWC and ``y`` int64 labels."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise DatasetError(f"images must be uint8 NHWC, got dtype {self.x.dtype} shape {self.x.shape}")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise DatasetError(f"labels must have shape ({self.x.shape[0]},), got {self.y.shape}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if len(self) else 0

    def subset(self, n: int | None) -> Split:
        """The first ``n`` examples (all if ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return Split(self.x[:n], self.y[:n])

    def hold_out(self, n: int) -> tuple[Split, Split]:
        """``(kept, held_out)``: the last ``n`` examples held out, the rest kept (``n = 0``: nothing held out)."""
        if not 0 <= n < len(self):
            raise DatasetError(f"cannot hold out {n} of {len(self)} examples: need 0 <= holdout < {len(self)}")
        cut = len(self) - n
        return Split(self.x[:cut], self.y[:cut]), Split(self.x[cut:], self.y[cut:])


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _find(directory: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``directory`` (also the ``stem``-with-dot-idx spelling some mirrors use)."""
    candidates = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
    for name in candidates:
        p = directory / name
        if p.is_file():
            return p
    raise DatasetError(
        f"missing idx file: expected one of {candidates} in {directory} "
        "(Fashion-MNIST: install Debian's dataset-fashion-mnist or pass --data-dir)"
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (optionally gzip-compressed) into an array.

    The format: two zero bytes, a type code, the number of dimensions, one big-endian uint32
    per dimension, then the data in C order.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: file not found (expected an idx file)")
    try:
        with _open(p) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{p}: cannot read ({e}); expected an idx file, optionally gzip-compressed") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{p}: bad idx magic {raw[:4]!r}; expected two zero bytes, a type code and ndim")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(f"{p}: unknown idx type code 0x{code:02x}; expected one of {sorted(_IDX_DTYPES)}")
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{p}: truncated idx header (ndim={ndim})")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise DatasetError(f"{p}: idx header says shape {dims} ({expected} bytes of data), file has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx_pair(directory: str | os.PathLike, split: str) -> Split:
    """An MNIST-style idx image/label pair (``train-*`` or ``t10k-*``) from ``directory``."""
    if split not in _IDX_FILES:
        raise DatasetError(f"split must be one of {sorted(_IDX_FILES)}, got {split!r}")
    d = Path(directory)
    if not d.is_dir():
        raise DatasetError(f"{d}: directory not found (expected MNIST-style idx files)")
    img_stem, lbl_stem = _IDX_FILES[split]
    img_path, lbl_path = _find(d, img_stem), _find(d, lbl_stem)
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(f"{img_path}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{lbl_path}: expected {images.shape[0]} labels (one per image in {img_path.name}), "
            f"got shape {labels.shape}"
        )
    return Split(np.ascontiguousarray(images[..., None]), labels.astype(np.int64))


def load_cifar10(directory: str | os.PathLike, split: str) -> Split:
    """CIFAR-10 "python version" batches (``data_batch_1..5``, ``test_batch``) from ``directory``.

    Also accepts the ``cifar-10-batches-py`` sub-directory the archive unpacks to.
    """
    d = Path(directory)
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if split not in ("train", "test"):
        raise DatasetError(f"split must be 'train' or 'test', got {split!r}")
    xs, ys = [], []
    for name in names:
        p = d / name
        if not p.is_file():
            raise DatasetError(f"missing CIFAR-10 batch {p} (expected the python batches: {', '.join(names)})")
        try:
            with open(p, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a malformed file
            raise DatasetError(f"{p}: not a CIFAR-10 python batch ({e})") from e
        if not isinstance(batch, dict):
            raise DatasetError(f"{p}: expected a pickled dict with b'data' and b'labels'")
        data = batch.get(b"data", batch.get("data"))
        labels = batch.get(b"labels", batch.get("labels"))
        if data is None or labels is None:
            raise DatasetError(f"{p}: expected keys b'data' and b'labels', got {sorted(map(str, batch))}")
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DatasetError(f"{p}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (data.shape[0],):
            raise DatasetError(f"{p}: expected {data.shape[0]} labels, got shape {labels.shape}")
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return Split(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys))


def load_npz(path: str | os.PathLike, split: str | None = None) -> Split:
    """A ``.npz`` with ``x`` (uint8, NHWC or NHW) and ``y`` (integers).

    With ``split``, the keys ``x_<split>``/``y_<split>`` are used when present.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: file not found (expected a .npz with arrays x (uint8 NHWC) and y (int))")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            kx, ky = "x", "y"
            if split is not None and f"x_{split}" in keys:
                kx, ky = f"x_{split}", f"y_{split}"
            if kx not in keys or ky not in keys:
                raise DatasetError(
                    f"{p}: expected arrays 'x' and 'y' (or 'x_{split}'/'y_{split}'), found {sorted(keys)}"
                )
            x, y = z[kx], z[ky]
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 - zip/format errors
        raise DatasetError(f"{p}: not a readable .npz ({e})") from e
    if x.dtype != np.uint8:
        raise DatasetError(f"{p}: '{kx}' must be uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(f"{p}: '{kx}' must be NHWC (or NHW), got shape {x.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(f"{p}: '{ky}' must be {x.shape[0]} integer labels, got {y.dtype} {y.shape}")
    if y.size and y.min() < 0:
        raise DatasetError(f"{p}: '{ky}' has negative labels")
    return Split(np.ascontiguousarray(x), y.astype(np.int64))


DATASETS = ("fashion-mnist", "mnist", "cifar10", "npz")


def default_data_dir(name: str) -> Path | None:
    """Where a dataset is found when ``--data-dir`` is not given."""
    if name == "fashion-mnist":
        env = os.environ.get("BITPATH_FASHION_MNIST")
        return Path(env) if env else FASHION_MNIST_DIR
    return None


def load_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Split:
    """Load ``split`` ('train' or 'test') of dataset ``name`` (one of :data:`DATASETS`).

    ``data_dir`` is the directory of idx files / CIFAR batches, or the ``.npz`` file itself.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    d = Path(data_dir) if data_dir is not None else default_data_dir(name)
    if d is None:
        raise DatasetError(f"dataset {name!r} needs --data-dir (no default location)")
    if name in ("fashion-mnist", "mnist"):
        return load_idx_pair(d, split)
    if name == "cifar10":
        return load_cifar10(d, split)
    return load_npz(d, split)
