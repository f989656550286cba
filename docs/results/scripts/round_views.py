"""Experiment for docs/results/training-fashion-mnist.md: is the floor of the nested view what costs
the 8-bit path its accuracy? One QAT epoch from the demo's float model, like the nesting ablation,
with the narrow views taken as *rounded* slices of the stored code instead of floored ones:

    v = floor(sat_B(q + 2^(k-1)) / 2^k)      (k = stored - view bits; sat_B clamps to the stored range)

i.e. round-half-up to the nearest coarse level, saturating at the top (one QADD8 per weight word on
Cortex-M4). Only the torch simulation changes here (fake-quant accuracy is what this reports; the
integer kernels still floor), so it measures what the semantic change would buy before it is built.

    python docs/results/scripts/round_views.py OUT_DIR PATHS_JSON [floor|round]
    python docs/results/scripts/round_views.py OUT_DIR demo[:FLOAT_RUN] [floor|round]   # the demo's QAT
        # stage: 4 epochs, lr 1e-3, 50 BN batches, the default 4-path table, from the demo's float model
        # (or FLOAT_RUN's, e.g. runs/exp/f20: 20 float epochs)
"""

import math
import sys

import torch

from bitpath.quant import modules
from bitpath.quant.primitives import floor_pass, grad_scale, round_half_up, round_pass, signed_range
from bitpath.train.config import TrainConfig
from bitpath.train.trainer import Trainer


def view(q: torch.Tensor, stored: int, k: int) -> torch.Tensor:
    """Rounded slice of the (already integer) code q, with the straight-through estimator."""
    if k == 0:
        return q
    lo, hi = signed_range(stored)
    return floor_pass(torch.clamp(q + float(1 << (k - 1)), lo, hi) / float(1 << k))


def forward(self, w, view_bits):
    k = self.stored - view_bits
    lo, hi = signed_range(self.stored)
    g = 1.0 / math.sqrt(self.fan * hi)
    s = modules._per_channel(grad_scale(self.scale, g), w)
    q = round_pass(torch.clamp(w / s, lo, hi))
    return view(q, self.stored, k) * s * float(1 << k)


@torch.no_grad()
def init_from(self, w):
    lo, hi = signed_range(self.stored)
    wf = w.detach().flatten(1) if self.per_channel else w.detach().reshape(1, -1)
    amax = wf.abs().amax(dim=1).clamp_min(1e-8)
    best = torch.full_like(amax, float("inf"))
    best_s = amax / (hi + 1)
    for f in torch.linspace(0.15, 1.0, 35):
        s = (amax * f / (hi + 1)).unsqueeze(1)
        q = torch.clamp(round_half_up(wf / s), lo, hi)
        err = torch.zeros_like(amax)
        for b in self.views:
            k = self.stored - b
            err += ((view(q, self.stored, k) * float(1 << k) * s - wf) ** 2).mean(dim=1) / (wf**2).mean(dim=1).clamp_min(1e-12)
        better = err < best
        best = torch.where(better, err, best)
        best_s = torch.where(better, s.squeeze(1), best_s)
    self.log_scale.copy_(best_s.log())
    self.init_scale.copy_(best_s)


if __name__ == "__main__":
    out, paths = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "round"
    if mode == "round":
        modules.WeightQuantizer.forward = forward
        modules.WeightQuantizer.init_from = init_from
    if paths.startswith("demo"):  # "demo" or "demo:FLOAT_RUN" (another float model, e.g. runs/exp/f20)
        init = paths.split(":", 1)[1] if ":" in paths else "runs/demo"
        cfg = TrainConfig(out=out, init_float=init, epochs_qat=4, lr_qat=1e-3, bn_batches=50)
    else:
        cfg = TrainConfig(out=out, init_float="runs/demo", paths=paths, epochs_qat=1, lr_qat=5e-4, bn_batches=20,
                          threads=1)
    m = Trainer(cfg, log=print, progress=False).run()
    print({k: (v["fake_quant"] if isinstance(v, dict) else v) for k, v in m.items()})
