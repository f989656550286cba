"""Built-in network recipes.

- ``default-cnn``: 28x28x1 (Fashion-MNIST / MNIST), ~62k parameters, ~1.96M MACs.
- ``resnet8``: the MLPerf Tiny image-classification ResNet-8 (32x32x3, 16/32/64 channels).
- ``ds-cnn``: the MLPerf Tiny keyword-spotting DS-CNN (49x10x1 MFCC input, 64 channels).
"""

from __future__ import annotations

from torch import nn


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class DefaultCNN(nn.Module):
    """conv(1->16) pool conv(16->32) pool conv(32->64) pool fc(576->64) fc(64->classes)."""

    def __init__(self, num_classes: int = 10, in_ch: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 3 * 3, 64, bias=False)
        self.bn4 = nn.BatchNorm1d(64)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(64, num_classes)
        self.relu1, self.relu2, self.relu3, self.relu4 = nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.bn3(self.conv3(x))))
        x = self.drop(self.relu4(self.bn4(self.fc1(self.flatten(x)))))
        return self.fc2(x)


class ResidualBlock(nn.Module):
    """conv-bn-relu, conv-bn, plus a (1x1 conv-bn when shapes change) shortcut, then relu."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        s = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(y + s)


class ResNet8(nn.Module):
    """MLPerf Tiny ResNet-8 for 32x32x3 (~78k parameters)."""

    def __init__(self, num_classes: int = 10, in_ch: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_cbr(in_ch, 16))
        self.block1 = ResidualBlock(16, 16, 1)
        self.block2 = ResidualBlock(16, 32, 2)
        self.block3 = ResidualBlock(32, 64, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


class DSCNN(nn.Module):
    """MLPerf Tiny DS-CNN for 49x10 MFCCs: conv 10x4/2 then four depthwise-separable blocks."""

    def __init__(self, num_classes: int = 12, in_ch: int = 1, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, width, (10, 4), (2, 2), (5, 1), bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        for _ in range(4):
            layers += _cbr(width, width, 3, 1, groups=width)
            layers += _cbr(width, width, 1)
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(0.2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.drop(self.features(x)))))


RECIPES = {
    "default-cnn": (DefaultCNN, (28, 28, 1)),
    "resnet8": (ResNet8, (32, 32, 3)),
    "ds-cnn": (DSCNN, (49, 10, 1)),
}


def build(name: str, num_classes: int, input_shape: tuple[int, int, int] | None = None) -> tuple[nn.Module, tuple]:
    """A recipe's module and its (H, W, C) input shape."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(RECIPES)}")
    cls, shape = RECIPES[name]
    shape = tuple(input_shape) if input_shape is not None else shape
    return cls(num_classes=num_classes, in_ch=shape[2]), shape
