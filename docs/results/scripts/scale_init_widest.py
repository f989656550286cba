"""Experiment for docs/results/training-fashion-mnist.md: one QAT epoch from the demo's float model
with every weight scale initialised for the widest view only (the default minimises the summed
error of all the views the paths use).

    python docs/results/scripts/scale_init_widest.py OUT_DIR PATHS_JSON
"""

import sys

from bitpath.quant import modules
from bitpath.train.config import TrainConfig
from bitpath.train.trainer import Trainer

_init_all_views = modules.WeightQuantizer.init_from


def _init_widest(self, w):
    views = self.views
    self.views = (max(views),)
    try:
        _init_all_views(self, w)
    finally:
        self.views = views


if __name__ == "__main__":
    modules.WeightQuantizer.init_from = _init_widest
    out, paths = sys.argv[1], sys.argv[2]
    cfg = TrainConfig(out=out, init_float="runs/demo", paths=paths, epochs_qat=1, lr_qat=5e-4, bn_batches=20,
                      threads=1)
    print(Trainer(cfg, log=print, progress=False).run())
