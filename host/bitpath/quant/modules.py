"""Fake-quant modules whose forward pass is exactly the integer semantics.

Weights: one symmetric per-output-channel scale ``s_B`` at the stored (widest) width ``B``;
codes ``q_B`` (LSQ: round half up of ``w / s_B``; ratio rule: floor, as in the thesis), and a
``b``-bit path uses the nested view of ``q_B`` at effective scale ``s_B * 2^(B-b)``: floored,
``floor(q_B / 2^(B-b))``, or rounded, ``floor(min(q_B + 2^(B-b-1), 2^(B-1) - 1) / 2^(B-b))``
(:func:`~bitpath.quant.primitives.nested_view`, the IR's ``w_round``).
Activations: unsigned (after ReLU) or signed ``b``-bit codes ``clamp(round_half_up(x / s))``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bitpath.quant.primitives import (
    floor_pass,
    grad_scale,
    nested_view,
    round_half_up,
    round_pass,
    signed_range,
    unsigned_range,
)

WEIGHT_MODES = ("lsq", "ratio")
ACT_MODES = ("lsq", "pact")


def _per_channel(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(C,)`` or ``(1,)`` vector to broadcast along dim 0 of ``like``."""
    return x.view(-1, *([1] * (like.dim() - 1)))


class _RatioRuleQuant(torch.autograd.Function):
    """Nested quantization layer of the thesis (papers/001 section 3.1) with the ratio-rule scale gradient.

    Forward: ``q = clamp(floor(w / s), -2^(B-1), 2^(B-1)-1)``, view ``nested_view(q, B, B-k, round)``
    (floor ``floor(q / 2^k)`` or the rounded view), value ``view * s * 2^k``.
    Backward: STE for ``w`` (inside the clamp range); for ``s`` the thesis' rule
    ``grad_s = g_s * m`` with ``g_s = -tanh(r - lam)`` if ``r < lam`` else 0 and
    ``r = ||dL/dw|| / ||w||`` per scale group (the LARS ratio the thesis cites). The thesis
    leaves ``m`` undefined; we take ``m = -1/s``. The scale is learned as ``log s`` (every learned
    step in bitpath is), so the gradient that reaches ``log s`` is ``g_s * m * s = -g_s`` and one
    SGD step changes ``s`` by the relative amount ``ds/s = lr * tanh(lam - r)``: the negative sign
    makes gradient descent *increase* ``s`` (quantize more) when the parameters are insensitive
    (``r < lam``), the thesis' stated intent, and the change is relative, independent of the
    weights' units (the same reason LSQ scales its step-size gradient).
    """

    @staticmethod
    def forward(ctx, w, s, stored: int, k: int, lam: float, view_round: bool = False):  # noqa: D401
        lo, hi = signed_range(stored)
        sc = _per_channel(s, w)
        v = w / sc
        q = torch.clamp(torch.floor(v), lo, hi)
        view = nested_view(q, stored, stored - k, view_round)
        ctx.save_for_backward(w, s, (v >= lo) & (v < hi + 1))
        ctx.lam = lam
        return view * sc * float(1 << k)

    @staticmethod
    def backward(ctx, grad):
        w, s, inside = ctx.saved_tensors
        grad_w = grad * inside
        dims = tuple(range(1, w.dim()))
        if s.numel() == 1:
            r = grad.norm() / w.norm().clamp_min(1e-12)
            r = r.view(1)
        else:
            r = grad.flatten(1).norm(dim=1) / w.flatten(1).norm(dim=1).clamp_min(1e-12)
        del dims
        g_s = torch.where(r < ctx.lam, -torch.tanh(r - ctx.lam), torch.zeros_like(r))
        m = -1.0 / s.detach()
        return grad_w, g_s * m, None, None, None, None


class WeightQuantizer(nn.Module):
    """Symmetric weight quantizer with nested views; one learned scale per output channel (or per tensor).

    Args:
        shape: the weight's shape (dim 0 = output channels).
        stored: the stored width ``B`` (the widest width any path uses for this layer).
        views: the view widths the paths use (for initialisation and the deviation loss).
        mode: ``"lsq"`` (learned step size, gradient scaled by ``1/sqrt(N * Q_P)``, codes rounded
            half up) or ``"ratio"`` (the thesis' nested quantization layer, codes floored).
        per_channel: one scale per output channel (False: one per tensor; used for the logits layer
            so that int32 logits keep the argmax of the real logits).
        ratio_lambda: the threshold ``lambda`` of the ratio rule.
        view_round: narrow views round half up (saturated at the top code) instead of flooring
            (:func:`~bitpath.quant.primitives.nested_view`); the forward pass, the initial scale
            search and the deviation loss all use it, and the exporter writes it as ``w_round``.
    """

    def __init__(self, shape, stored: int, views, mode: str = "lsq", per_channel: bool = True,
                 ratio_lambda: float = 1e-3, view_round: bool = False) -> None:
        super().__init__()
        if mode not in WEIGHT_MODES:
            raise ValueError(f"weight quantizer mode must be one of {WEIGHT_MODES}, got {mode!r}")
        if stored not in (2, 4, 8):
            raise ValueError(f"stored weight width must be 2, 4 or 8, got {stored}")
        self.stored = stored
        self.views = tuple(sorted(set(views)))
        if max(self.views) > stored:
            raise ValueError(f"view widths {self.views} exceed the stored width {stored}")
        self.mode = mode
        self.per_channel = per_channel
        self.ratio_lambda = ratio_lambda
        if not isinstance(view_round, bool):
            raise ValueError(f"view_round must be True or False, got {view_round!r}")
        self.view_round = view_round
        n = shape[0] if per_channel else 1
        # learned in the log domain: Adam's roughly constant step size then changes the scale by a
        # relative amount, and the scale can never reach zero or change sign
        self.log_scale = nn.Parameter(torch.zeros(n))
        self.register_buffer("init_scale", torch.ones(n))
        self.fan = int(math.prod(shape[1:])) if per_channel else int(math.prod(shape))

    @property
    def scale(self) -> torch.Tensor:
        """The step ``s_B`` per output channel (or per tensor)."""
        return self.log_scale.exp()

    def _code(self, v: torch.Tensor) -> torch.Tensor:
        return round_half_up(v) if self.mode == "lsq" else torch.floor(v)

    @torch.no_grad()
    def init_from(self, w: torch.Tensor) -> None:
        """Per channel, the scale that minimises the summed MSE of all views (grid search)."""
        lo, hi = signed_range(self.stored)
        wf = w.detach().flatten(1) if self.per_channel else w.detach().reshape(1, -1)
        amax = wf.abs().amax(dim=1).clamp_min(1e-8)
        best = torch.full_like(amax, float("inf"))
        best_s = amax / (hi + 1)
        for f in torch.linspace(0.15, 1.0, 35):
            s = (amax * f / (hi + 1)).unsqueeze(1)
            q = torch.clamp(self._code(wf / s), lo, hi)
            err = torch.zeros_like(amax)
            for b in self.views:
                k = float(1 << (self.stored - b))
                v = nested_view(q, self.stored, b, self.view_round)
                err += ((v * k * s - wf) ** 2).mean(dim=1) / (wf**2).mean(dim=1).clamp_min(1e-12)
            better = err < best
            best = torch.where(better, err, best)
            best_s = torch.where(better, s.squeeze(1), best_s)
        self.log_scale.copy_(best_s.log())
        self.init_scale.copy_(best_s)

    def codes(self, w: torch.Tensor) -> torch.Tensor:
        """The stored integer codes ``q_B`` (as int64), exactly as the forward pass computes them."""
        lo, hi = signed_range(self.stored)
        with torch.no_grad():
            return torch.clamp(self._code(w / _per_channel(self.scale, w)), lo, hi).to(torch.int64)

    def forward(self, w: torch.Tensor, view: int) -> torch.Tensor:
        """The fake-quantized weight a ``view``-bit path uses: ``nested_view(q_B) * s_B * 2^k``."""
        if view not in self.views:
            raise ValueError(f"view width {view} not among this layer's views {self.views}")
        k = self.stored - view
        if self.mode == "ratio":
            return _RatioRuleQuant.apply(w, self.scale, self.stored, k, self.ratio_lambda, self.view_round)
        lo, hi = signed_range(self.stored)
        g = 1.0 / math.sqrt(self.fan * hi)
        s = _per_channel(grad_scale(self.scale, g), w)
        q = round_pass(torch.clamp(w / s, lo, hi))
        v = nested_view(q, self.stored, view, self.view_round, ste=True)
        return v * s * float(1 << k)

    def aux_losses(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """The thesis' three quantization-encouraging loss terms (section 3.2), unweighted.

        - ``inv_scale``: ``mean(s0 / s)``, the inverse scale magnitude relative to the initial scale.
        - ``bin_count``: ``mean(relu(bins / (2^B - 1) - 1)^2)`` where ``bins = (max w - min w) / s``:
          a channel may not need more bins than the stored width has.
        - ``deviation``: ``sum over views of mean((w_hat - w)^2) / mean(w^2)`` (LSQ-style STE, so
          this term, unlike the ratio rule, sends a task-independent gradient to both ``w`` and ``s``).
        """
        lo, hi = signed_range(self.stored)
        s = _per_channel(self.scale, w)
        wf = w.flatten(1) if self.per_channel else w.reshape(1, -1)
        inv = (self.init_scale / self.scale).mean()
        bins = (wf.amax(dim=1) - wf.amin(dim=1)) / self.scale
        bin_count = torch.relu(bins / float(hi - lo) - 1.0).pow(2).mean()
        q = torch.clamp(w / s, lo, hi)
        q = round_pass(q) if self.mode == "lsq" else floor_pass(q)
        dev = w.new_zeros(())
        denom = (w.detach() ** 2).mean().clamp_min(1e-12)
        for b in self.views:
            k = float(1 << (self.stored - b))
            v = nested_view(q, self.stored, b, self.view_round, ste=True)
            dev = dev + ((v * k * s - w) ** 2).mean() / denom
        return {"inv_scale": inv, "bin_count": bin_count, "deviation": dev}


class ActQuantizer(nn.Module):
    """Activation quantizer for one tensor on one path: ``s * clamp(round_half_up(x / s), lo, hi)``.

    Args:
        bits: 2, 4 or 8.
        signed: False after ReLU (codes ``0..2^b-1``); True for a pre-residual branch.
        mode: ``"lsq"`` (learned step ``s``, gradient scale ``1/sqrt(N * Q_P)``) or ``"pact"``
            (learned clip ``alpha``, ``s = alpha / Q_P``, gradient to ``alpha`` only from clipped
            inputs, as in Choi et al.).

    The scale is initialised on the first calibration batch (:meth:`calibrate`) to the clip that
    minimises the quantization MSE of that batch.
    """

    def __init__(self, bits: int, signed: bool = False, mode: str = "lsq") -> None:
        super().__init__()
        if mode not in ACT_MODES:
            raise ValueError(f"activation quantizer mode must be one of {ACT_MODES}, got {mode!r}")
        if bits not in (2, 4, 8):
            raise ValueError(f"activation width must be 2, 4 or 8, got {bits}")
        self.bits, self.signed, self.mode = bits, signed, mode
        self.lo, self.hi = signed_range(bits) if signed else unsigned_range(bits)
        self.log_param = nn.Parameter(torch.zeros(()))  # log of LSQ's step s or PACT's clip alpha
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("init_step", torch.ones(()))
        self.calibrating = False

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Runs saved before this buffer existed: their calibrated step is unknown, so the saved
        # (learned) step stands in. ``init_step`` only floors the learned step while training.
        key, log_key = prefix + "init_step", prefix + "log_param"
        if key not in state_dict and log_key in state_dict:
            p = state_dict[log_key].exp()
            state_dict[key] = p if self.mode == "lsq" else p / self.hi
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def param(self) -> torch.Tensor:
        """LSQ: the step ``s``; PACT: the clip ``alpha``."""
        return self.log_param.exp()

    def step(self) -> torch.Tensor:
        """The quantization step ``s`` (what export turns into requantization constants)."""
        return self.param if self.mode == "lsq" else self.param / self.hi

    @torch.no_grad()
    def _init_from(self, x: torch.Tensor) -> None:
        xs = x.detach().flatten()
        if xs.numel() > 20_000:  # a deterministic, evenly strided sample is enough to place the clip
            xs = xs[:: xs.numel() // 20_000 + 1]
        amax = xs.abs().max().clamp_min(1e-2)  # an all-zero batch must not give a degenerate step
        best, best_s = float("inf"), amax / self.hi
        for f in torch.linspace(0.05, 1.0, 32):
            s = amax * f / self.hi
            err = ((torch.clamp(round_half_up(xs / s), self.lo, self.hi) * s - xs) ** 2).mean()
            if err < best:
                best, best_s = float(err), s
        self.log_param.copy_((best_s if self.mode == "lsq" else best_s * self.hi).log())
        self.init_step.copy_(best_s)
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating or not bool(self.initialized):
            if not (self.calibrating or self.training):
                raise RuntimeError("activation quantizer used before calibration (run a calibration batch first)")
            self._init_from(x)
        if self.mode == "lsq":
            g = 1.0 / math.sqrt(max(x[0].numel(), 1) * self.hi)
            s = grad_scale(self.param, g)
            return round_pass(torch.clamp(x / s, self.lo, self.hi)) * s
        alpha = self.param
        lo_v = -alpha * (-self.lo / self.hi) if self.signed else torch.zeros_like(alpha)
        y = torch.minimum(torch.maximum(x, lo_v), alpha)
        s = (alpha / self.hi).detach()
        return y + (round_half_up(y / s) * s - y).detach()
