"""Fixtures for the host tests."""

from __future__ import annotations

import numpy as np
import pytest
from host_fixtures import tiny_images


@pytest.fixture
def tiny_npz(tmp_path):
    x, y = tiny_images(128)
    xt, yt = tiny_images(48, seed=1)
    p = tmp_path / "tiny.npz"
    np.savez(p, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return p
