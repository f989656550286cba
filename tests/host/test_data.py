"""Dataset loaders on fixture files written in each format."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from bitpath.data import DatasetError, Split, load_dataset, load_npz, read_idx


def write_idx(path, arr: np.ndarray, code: int = 0x08, gz: bool = True) -> None:
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_idx_dir(d, n=5, gz=True):
    rng = np.random.default_rng(0)
    for split, n_ in (("train", n), ("t10k", n - 2)):
        imgs = rng.integers(0, 256, (n_, 28, 28), dtype=np.uint8)
        lbls = rng.integers(0, 10, n_).astype(np.uint8)
        write_idx(d / f"{split}-images-idx3-ubyte", imgs, gz=gz)
        write_idx(d / f"{split}-labels-idx1-ubyte", lbls, gz=gz)
    return imgs, lbls


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dir_roundtrip(tmp_path, gz):
    imgs, lbls = make_idx_dir(tmp_path, gz=gz)
    for name in ("fashion-mnist", "mnist"):
        s = load_dataset(name, "test", tmp_path)
        assert s.x.shape == (3, 28, 28, 1) and s.x.dtype == np.uint8
        np.testing.assert_array_equal(s.x[..., 0], imgs)
        np.testing.assert_array_equal(s.y, lbls)
        assert s.y.dtype == np.int64
    assert len(load_dataset("mnist", "train", tmp_path)) == 5


def test_idx_errors(tmp_path):
    with pytest.raises(DatasetError, match="missing idx file.*t10k-images"):
        load_dataset("mnist", "test", tmp_path)
    with pytest.raises(DatasetError, match="directory not found"):
        load_dataset("mnist", "test", tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(DatasetError, match="bad idx magic"):
        read_idx(bad)
    trunc = tmp_path / "trunc"
    trunc.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(DatasetError, match=r"shape \(10,\).*file has 3"):
        read_idx(trunc)
    # label count that does not match the image count
    d = tmp_path / "mismatch"
    d.mkdir()
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DatasetError, match="expected 4 labels"):
        load_dataset("fashion-mnist", "test", d)


def test_cifar10_batches(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, 2))
        batches[name] = (data, labels)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
    s = load_dataset("cifar10", "test", tmp_path)
    assert s.x.shape == (2, 32, 32, 3)
    data, labels = batches["test_batch"]
    # channel-planar rows -> NHWC
    np.testing.assert_array_equal(s.x[1, 3, 5], data[1].reshape(3, 32, 32)[:, 3, 5])
    np.testing.assert_array_equal(s.y, labels)
    assert len(load_dataset("cifar10", "train", d)) == 10
    (d / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing CIFAR-10 batch .*data_batch_3"):
        load_dataset("cifar10", "train", tmp_path)
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetError, match=r"shape \(N, 3072\)"):
        load_dataset("cifar10", "test", tmp_path)


def test_npz(tmp_path):
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    p = tmp_path / "d.npz"
    np.savez(p, x=x, y=np.array([1, 0]))
    s = load_dataset("npz", "train", p)
    np.testing.assert_array_equal(s.x, x)
    assert s.y.tolist() == [1, 0]
    np.savez(p, x=x[..., 0], y=np.array([1, 0]))
    assert load_npz(p).x.shape == (2, 4, 4, 1)  # NHW gets a channel axis
    np.savez(p, x=x.astype(np.float32), y=np.array([1, 0]))
    with pytest.raises(DatasetError, match="'x' must be uint8"):
        load_npz(p)
    np.savez(p, images=x)
    with pytest.raises(DatasetError, match="expected arrays 'x' and 'y'"):
        load_npz(p)
    np.savez(p, x=x, y=np.array([1, 0, 2]))
    with pytest.raises(DatasetError, match="must be 2 integer labels"):
        load_npz(p)
    p.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_npz(p)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imagenet", "train", p)
    with pytest.raises(DatasetError, match="needs --data-dir"):
        load_dataset("npz", "train")


def test_fashion_mnist_installed():
    """The Debian package's files (skipped where it is not installed)."""
    from bitpath.data.loaders import FASHION_MNIST_DIR

    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    s = load_dataset("fashion-mnist", "test")
    assert s.x.shape == (10000, 28, 28, 1) and s.num_classes == 10


def test_hold_out_keeps_the_head_and_holds_out_the_tail():
    x = np.arange(5 * 2 * 2 * 1, dtype=np.uint8).reshape(5, 2, 2, 1)
    s = Split(x, np.arange(5))
    kept, held = s.hold_out(2)
    assert kept.y.tolist() == [0, 1, 2] and held.y.tolist() == [3, 4]
    np.testing.assert_array_equal(held.x, x[3:])
    assert s.hold_out(0)[0].y.tolist() == [0, 1, 2, 3, 4] and len(s.hold_out(0)[1]) == 0
    for bad in (-1, 5):
        with pytest.raises(DatasetError, match=f"cannot hold out {bad} of 5"):
            s.hold_out(bad)
