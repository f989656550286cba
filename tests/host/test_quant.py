"""Quantizers: nested views, rounding, LSQ/PACT, the ratio rule and BN folding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bitpath.quant import ActQuantizer, WeightQuantizer, nested_view, round_half_up
from bitpath.quant.fold import FoldError, fold_add, fold_layer
from bitpath.ref.packing import weight_view
from bitpath.ref.requant import requantize


@pytest.mark.parametrize("rnd", [False, True])
@pytest.mark.parametrize("ste", [False, True])
def test_nested_view_matches_reference(rnd, ste):
    for stored in (2, 4, 8):
        q = np.arange(-(1 << (stored - 1)), 1 << (stored - 1))  # every code of the stored width
        for b in (2, 4, 8):
            if b > stored:
                continue
            t = nested_view(torch.tensor(q, dtype=torch.float32), stored, b, rnd, ste).numpy().astype(np.int64)
            np.testing.assert_array_equal(t, weight_view(q, stored, b, rnd))


def test_rounded_view_straight_through():
    """The rounded view passes the gradient straight through, except at the codes its saturation clamps."""
    q = torch.arange(-128.0, 128.0, requires_grad=True)
    nested_view(q, 8, 2, round=True, ste=True).sum().backward()
    assert torch.all(q.grad[q.detach() + 32 <= 127] == 1 / 64) and torch.all(q.grad[q.detach() + 32 > 127] == 0)
    q.grad = None
    nested_view(q, 8, 2, ste=True).sum().backward()
    assert torch.all(q.grad == 1 / 64)


def test_round_half_up_ties():
    assert round_half_up(torch.tensor([2.5, -2.5, -0.5, 0.49999])).tolist() == [3.0, -2.0, 0.0, 0.0]


@pytest.mark.parametrize("rnd", [False, True])
@pytest.mark.parametrize("mode", ["lsq", "ratio"])
def test_weight_quantizer_forward_is_view_times_step(mode, rnd):
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3)
    wq = WeightQuantizer(w.shape, 8, (2, 4, 8), mode, view_round=rnd)
    wq.init_from(w)
    codes = wq.codes(w)
    assert codes.min() >= -128 and codes.max() <= 127
    for b in (2, 4, 8):
        k = 8 - b
        view = torch.from_numpy(weight_view(codes.numpy(), 8, b, rnd)).double()
        expect = view * wq.scale.double().view(-1, 1, 1, 1) * 2**k
        torch.testing.assert_close(wq(w, b).double(), expect, rtol=1e-6, atol=1e-7)
    if mode == "lsq":  # codes are round half up of w / s
        torch.testing.assert_close(codes.double(), torch.clamp(torch.floor(w / wq.scale.view(-1, 1, 1, 1) + 0.5),
                                                               -128, 127).double())
    with pytest.raises(ValueError, match="not among this layer's views"):
        wq(w, 3)


def test_rounded_views_fit_better():
    """The initial scale search and the deviation loss see the quantizer's own views: with rounded
    views the narrow views' summed error is lower than with floored ones (the floor's -0.5 step bias)."""
    torch.manual_seed(0)
    w = torch.randn(16, 32)
    dev = {}
    for rnd in (False, True):
        wq = WeightQuantizer(w.shape, 8, (2, 4, 8), "lsq", view_round=rnd)
        wq.init_from(w)
        with torch.no_grad():
            dev[rnd] = float(wq.aux_losses(w)["deviation"])
            expect = sum(((wq(w, b) - w) ** 2).mean() / (w**2).mean() for b in (2, 4, 8))
        assert dev[rnd] == pytest.approx(float(expect), rel=1e-5)
    assert dev[True] < dev[False]
    with pytest.raises(ValueError, match="view_round"):
        WeightQuantizer(w.shape, 8, (2, 8), view_round="round")


@pytest.mark.parametrize("rnd", [False, True])
def test_ratio_rule_rounded_view_gradients(rnd):
    w = torch.randn(4, 8, requires_grad=True)
    wq = WeightQuantizer(w.shape, 8, (2, 8), "ratio", view_round=rnd)
    wq.init_from(w)
    wq(w, 2).sum().backward()
    assert w.grad is not None and torch.isfinite(wq.log_scale.grad).all()


def test_lsq_gradients():
    w = torch.randn(4, 8, requires_grad=True)
    wq = WeightQuantizer(w.shape, 4, (4,), "lsq")
    wq.init_from(w)
    wq(w, 4).sum().backward()
    assert wq.log_scale.grad is not None and torch.isfinite(wq.log_scale.grad).all()
    inside = (w / wq.scale.view(-1, 1)).abs() < 7
    assert torch.all(w.grad[inside] == 1)  # straight-through inside the range


def test_ratio_rule_scale_gradient():
    """g_s = -tanh(r - lambda) for r < lambda, else 0; m = -s, so descent grows s when r < lambda."""
    torch.manual_seed(0)
    w = torch.randn(2, 16, requires_grad=True)
    wq = WeightQuantizer(w.shape, 8, (8,), "ratio", ratio_lambda=0.5)
    wq.init_from(w)
    g = torch.zeros(2, 16)
    g[0] = 1e-3  # channel 0: small gradient, r << lambda
    g[1] = 100.0  # channel 1: r >> lambda
    (wq(w, 8) * g).sum().backward()
    r0 = g[0].norm() / w[0].detach().norm()
    # grad wrt log s = g_s * m * s with m = -1/s: -g_s = tanh(r - lambda)
    torch.testing.assert_close(wq.log_scale.grad[0], torch.tanh(r0 - 0.5))
    assert wq.log_scale.grad[0] < 0  # gradient descent increases the scale
    assert wq.log_scale.grad[1] == 0
    aux = wq.aux_losses(w)
    assert set(aux) == {"inv_scale", "bin_count", "deviation"}
    wq.log_scale.grad = None
    (aux["deviation"] + aux["inv_scale"]).backward()
    assert wq.log_scale.grad is not None and wq.log_scale.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["lsq", "pact"])
@pytest.mark.parametrize("signed", [False, True])
def test_act_quantizer_codes(mode, signed):
    aq = ActQuantizer(2, signed, mode)
    x = torch.linspace(-3, 3, 101)
    aq.train()
    y = aq(x)  # calibrates on first use
    codes = y / aq.step()
    torch.testing.assert_close(codes, torch.round(codes))
    lo, hi = (-2, 1) if signed else (0, 3)
    assert codes.min() >= lo and codes.max() <= hi
    aq.eval()
    fresh = ActQuantizer(4, signed, mode).eval()
    with pytest.raises(RuntimeError, match="before calibration"):
        fresh(x)


def test_fold_matches_float_bn():
    rng = np.random.default_rng(0)
    n = 5
    gamma, beta = rng.normal(1, 0.3, n), rng.normal(0, 0.5, n)
    gamma[2] = -0.7  # negative gamma -> negative multiplier
    mean, var = rng.normal(0, 1, n), rng.uniform(0.5, 2, n)
    s_x, s_w, s_y = 0.02, rng.uniform(0.001, 0.01, n), 0.05
    f = fold_layer("l", n, s_x, s_w, (gamma, beta, mean, var, 1e-5), None, 4, False, s_y, "relu")
    assert f.mult[2] < 0 and (f.shift >= 0).all()
    acc = rng.integers(-3000, 3000, (50, n))
    real = gamma * ((acc * s_x * s_w) - mean) / np.sqrt(var + 1e-5) + beta
    want = np.clip(np.floor(real / s_y + 0.5), 0, 15)
    got = requantize(acc + f.bias, f.mult, f.shift, f.act_min, f.act_max)
    # exact except where the bias rounding (<= 0.5 accumulator units) crosses a rounding boundary
    assert (got != want).mean() < 0.02
    relu6 = fold_layer("l", n, s_x, s_w, None, np.zeros(n), 8, False, 0.05, "relu6")
    assert relu6.act_max == 120  # round(6 / 0.05)
    with pytest.raises(FoldError, match="layer 'z'.*zero or non-finite"):
        fold_layer("z", n, s_x, s_w, (np.zeros(n), beta, mean, var, 1e-5), None, 8, False, 0.1, "relu")
    ma, mb, sh = fold_add("a", 0.1, 0.05, 0.2)
    assert abs(ma / 2**sh - 0.5) < 1e-9 and abs(mb / 2**sh - 0.25) < 1e-9
