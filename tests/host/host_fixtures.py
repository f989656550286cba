"""Tiny models and datasets for the host tests (a unique module name: other test folders have conftest.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TinyResNet(nn.Module):
    """Every supported op in a few hundred parameters: conv, depthwise, residual add, pools, FC."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.pw = nn.Conv2d(4, 4, 1, bias=True)
        self.bn3 = nn.BatchNorm2d(4)
        self.relu6 = nn.ReLU6()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        y = self.bn3(self.pw(torch.relu(self.bn2(self.dw(x)))))
        x = self.relu6(x + y)
        return self.fc(self.drop(self.flat(self.gap(x))))


class TinyCNN(nn.Module):
    """conv-bn-relu, pool, flatten of a spatial map (CHW -> HWC weight permutation), fc-bn-relu, fc."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(4 * 3 * 3, 8, bias=False)
        self.bn1 = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.bn1(self.fc1(x))))


def tiny_images(n: int = 96, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable 3-class toy set: a bright bar (horizontal, vertical) or a blob, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, size, size)).astype(np.int64)
    for i, c in enumerate(y):
        r = rng.integers(2, size - 2)
        if c == 0:
            x[i, r, :] += 180
        elif c == 1:
            x[i, :, r] += 180
        else:
            x[i, r - 2 : r + 2, r - 2 : r + 2] += 180
    return np.clip(x, 0, 255).astype(np.uint8)[..., None], y.astype(np.int64)


class TinyNoBN(nn.Module):
    """TinyCNN without BatchNorm or dropout: its gradient over a batch is the mean of per-image gradients,
    so data-parallel training over shards of a batch must equal training on the whole batch."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(4 * 3 * 3, 8)
        self.fc2 = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


class TinyCNNDropout(TinyCNN):
    """TinyCNN with dropout before the last layer: float training draws from the torch RNG."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__(num_classes)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        x = torch.flatten(x, 1)
        return self.fc2(self.drop(torch.relu(self.bn1(self.fc1(x)))))
