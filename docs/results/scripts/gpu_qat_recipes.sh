#!/bin/bash
# Run on the lent GPU machine from the repo root, with the Fashion-MNIST idx files in .devdata/fashion-mnist
# (device tool: carry [".devdata"]); $OUT is where the summary lands.
# Device run 4 (stop 15): (1) the DDP tests, with the NCCL one-process-group case; (2) the default recipe
# under `BITPATH_DDP=1 torchrun --nproc-per-node 1` (NCCL) beside the plain run; (3) QAT-stage recipes for
# the 4-bit gap, seeds 0-2, from one float model per seed: base (1 random path, 4 epochs), rp2q3 (all 4
# paths each step, 3 epochs: the same compute), rp2q4, q6 (1 random path, 6 epochs).
export PYTHONPATH=$PWD/host PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
D=$PWD/.devdata/fashion-mnist
R=/tmp/r; mkdir -p $R
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
tr() { local o=$1; shift; timeout 300 python3 -m bitpath train --data-dir $D --out $R/$o --device cuda --threads 2 --no-progress "$@" > $R/$o.log 2>&1; echo "rc $? $(( $(date +%s) - T0 )) s" >> $R/$o.log; }
(timeout 240 python3 -m pytest -q -p no:cacheprovider tests/host/test_train_ddp.py > $R/pytest.log 2>&1; echo "pytest rc $?" >> $R/pytest.log) &
(BITPATH_DDP=1 timeout 300 python3 -m torch.distributed.run --nproc-per-node 1 -m bitpath train --data-dir $D --out $R/ddp --device cuda --threads 2 --no-progress > $R/ddp.log 2>&1; echo "rc $?" >> $R/ddp.log) &
tr plain &
for s in 0 1 2; do tr float-s$s --seed $s --epochs-qat 0 & done
wait; el wave1
for s in 0 1 2; do
  F=$R/float-s$s
  tr base-s$s --seed $s --init-float $F &
  tr rp2q3-s$s --seed $s --init-float $F --random-paths 2 --epochs-qat 3 &
  tr rp2q4-s$s --seed $s --init-float $F --random-paths 2 &
  tr q6-s$s --seed $s --init-float $F --epochs-qat 6 &
done
wait; el wave2
cd $R
for f in *.log; do echo "== $f"; tail -c 600 $f | grep -v '^ *[{}]' ; done > $OUT/logs.txt
python3 - <<'PY' | tee $OUT/summary.txt
import json, glob, os
for d in sorted(glob.glob('/tmp/r/*/metrics.json')):
    m = json.load(open(d)); name = d.split('/')[-2]
    ints = {k: v['integer'] for k, v in m.items() if isinstance(v, dict)}
    gap = ints.get('w8a8', 0) - ints.get('w4a4', 0)
    print(f"{name:12s} float {m['float']:.4f} " + ' '.join(f"{k} {v:.4f}" for k, v in ints.items()) + f"  gap4 {100*gap:.2f} pp  t {m.get('train_seconds')}")
PY
grep -h "passed\|failed\|rc " pytest.log | tail -3
tar czf $OUT/runs.tgz */metrics.json */final.pt
el done
