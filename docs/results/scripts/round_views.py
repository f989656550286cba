"""Experiment for docs/results/training-fashion-mnist.md: is the floor of the nested view what costs
the 8-bit path its accuracy? One QAT epoch from the demo's float model, like the nesting ablation,
with the narrow views either floored or *rounded* slices of the stored code:

    v = floor(sat_B(q + 2^(k-1)) / 2^k)      (k = stored - view bits; sat_B clamps to the stored range)

i.e. round-half-up to the nearest coarse level, saturating at the top (one QADD8 per weight word on
Cortex-M4). This is now ``TrainConfig.weight_views`` (``bitpath train --weight-views round|floor``,
docs/training.md): the script only picks the setting, and the whole stack (fake-quant, the integer
evaluation, the exported IR's ``w_round``, the numpy reference and the kernels) follows it. When the
experiment was first run only the torch simulation rounded; the fake-quant figures it reported are
what this script reproduces, and the integer model now agrees with them.

    python docs/results/scripts/round_views.py OUT_DIR PATHS_JSON [floor|round]
    python docs/results/scripts/round_views.py OUT_DIR demo[:FLOAT_RUN] [floor|round]   # the demo's QAT
        # stage: 4 epochs, lr 1e-3, 50 BN batches, the default 4-path table, from the demo's float model
        # (or FLOAT_RUN's, e.g. runs/exp/f20: 20 float epochs)
"""

import sys

from bitpath.train.config import WEIGHT_VIEWS, TrainConfig
from bitpath.train.trainer import Trainer

if __name__ == "__main__":
    out, paths = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "round"
    if mode not in WEIGHT_VIEWS:
        sys.exit(f"views must be one of {', '.join(WEIGHT_VIEWS)}, got {mode!r}")
    if paths.startswith("demo"):  # "demo" or "demo:FLOAT_RUN" (another float model, e.g. runs/exp/f20)
        init = paths.split(":", 1)[1] if ":" in paths else "runs/demo"
        cfg = TrainConfig(out=out, init_float=init, epochs_qat=4, lr_qat=1e-3, bn_batches=50, weight_views=mode)
    else:
        cfg = TrainConfig(out=out, init_float="runs/demo", paths=paths, epochs_qat=1, lr_qat=5e-4, bn_batches=20,
                          threads=1, weight_views=mode)
    m = Trainer(cfg, log=print, progress=False).run()
    print({k: (v["fake_quant"] if isinstance(v, dict) else v) for k, v in m.items()})
