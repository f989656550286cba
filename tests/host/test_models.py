"""Graph capture: recipes, budgets, and refusal of unsupported ops (named)."""

from __future__ import annotations

import pytest
import torch
from host_fixtures import TinyCNN, TinyResNet
from torch import nn

from bitpath.models import ModelCaptureError, build, capture


def test_recipes_capture_and_budget():
    m, shape = build("default-cnn", 10)
    spec = capture(m, shape)
    assert sum(p.numel() for p in m.parameters()) <= 100_000
    assert sum(spec.macs(n) for n in spec.weighted) <= 3_000_000
    assert spec.layer_names == ["conv1", "conv2", "conv3", "fc1", "fc2"]
    assert spec.node("fc1").attrs["bn"] == "bn4" and spec.node("conv1").attrs["act"] == "relu"
    r8 = capture(*build("resnet8", 10))
    assert sum(1 for n in r8.nodes if n.op == "add") == 3
    ds = capture(*build("ds-cnn", 12))
    assert sum(1 for n in ds.nodes if n.op == "depthwise_conv2d") == 4
    assert ds.node("features.0").out_shape == (25, 5, 64)


def test_tiny_models_capture():
    spec = capture(TinyResNet(), (12, 12, 1))
    ops = [n.op for n in spec.nodes]
    assert ops == ["conv2d", "max_pool2d", "depthwise_conv2d", "conv2d", "add", "avg_pool2d", "flatten",
                   "fully_connected"]
    assert spec.node("add").attrs["act"] == "relu6"
    assert spec.node("pw").attrs["act"] is None  # signed pre-residual branch
    spec = capture(TinyCNN(), (12, 12, 1))
    assert spec.node("flatten").attrs["chw"] == (4, 3, 3)


class _Wrap(nn.Module):
    def __init__(self, body, fwd):
        super().__init__()
        self.body = body
        self._fwd = fwd

    def forward(self, x):
        return self._fwd(self, x)


def _head(n_in=4):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(n_in, 2))


@pytest.mark.parametrize(
    "model, match",
    [
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), _head()), r"module '1' \(GELU\) is not supported"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid(), _head()), r"module '1' \(Sigmoid\)"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2), _head()), r"module '1'.*groups=2"),
        (nn.Sequential(nn.Conv2d(1, 4, 3, dilation=2), _head()), r"module '0'.*dilation"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), _head()),
         r"module '2' \(BatchNorm2d\).*must directly follow"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 2)),
         r"AdaptiveAvgPool2d\(1\)"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(400, 2), nn.Softmax(1)),
         r"module '4' \(Softmax\)"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), _head(), nn.ReLU()), r"must be a Conv2d/Linear without"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), _head()), r"average pool '1\.0' reads the signed output of '0'"),
    ],
)
def test_unsupported_modules_refused(model, match):
    with pytest.raises(ModelCaptureError, match=match):
        capture(model, (12, 12, 1))


def test_unsupported_functions_refused():
    def sig(self, x):
        return self.body(torch.sigmoid(x))

    with pytest.raises(ModelCaptureError, match=r"function sigmoid.*not supported"):
        capture(_Wrap(nn.Sequential(nn.Conv2d(1, 4, 3), _head()), sig), (12, 12, 1))

    def view(self, x):
        y = self.body[0](x)
        return self.body[1](y.view(y.shape[0], -1))

    with pytest.raises(ModelCaptureError, match=r"not supported"):
        capture(_Wrap(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(400, 2)), view), (12, 12, 1))

    def mul(self, x):
        return self.body(x * 2)

    with pytest.raises(ModelCaptureError, match=r"function mul"):
        capture(_Wrap(nn.Sequential(nn.Conv2d(1, 4, 3), _head()), mul), (12, 12, 1))
