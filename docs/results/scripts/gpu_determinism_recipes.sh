#!/bin/bash
# Run on the lent GPU machine from the repo root, with the Fashion-MNIST idx files in .devdata/fashion-mnist
# (device tool: carry [".devdata"]); $OUT is where the summary lands.
# Device run 5 (stop 15): deterministic CUDA training. (1) the DDP tests with both CUDA cases (NCCL group of
# one; two runs -> same weights); (2) float-only seed 3 twice (digests must match) and seed 4; (3) QAT recipes
# base / rp2q3 / rp2q4 from those floats.
export PYTHONPATH=$PWD/host PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
D=$PWD/.devdata/fashion-mnist
R=/tmp/r; mkdir -p $R
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
tr() { local o=$1; shift; timeout 240 python3 -m bitpath train --data-dir $D --out $R/$o --device cuda --threads 2 --no-progress "$@" > $R/$o.log 2>&1; echo "rc $? $(( $(date +%s) - T0 )) s" >> $R/$o.log; }
(timeout 200 python3 -m pytest -q -p no:cacheprovider tests/host/test_train_ddp.py > $R/pytest.log 2>&1; echo "pytest rc $?" >> $R/pytest.log) &
tr float-s3 --seed 3 --epochs-qat 0 &
tr float-s3b --seed 3 --epochs-qat 0 &
tr float-s4 --seed 4 --epochs-qat 0 &
wait; el wave1
for s in 3 4; do
  F=$R/float-s$s
  tr base-s$s --seed $s --init-float $F &
  tr rp2q3-s$s --seed $s --init-float $F --random-paths 2 --epochs-qat 3 &
  tr rp2q4-s$s --seed $s --init-float $F --random-paths 2 &
done
wait; el wave2
cd $R
for f in *.log; do echo "== $f"; tail -c 1500 $f | grep -v '^ *[{}]' ; done > $OUT/logs.txt
python3 - <<'PY' | tee $OUT/summary.txt
import json, glob, torch
from bitpath.train.trainer import state_digest
for d in sorted(glob.glob('/tmp/r/*/metrics.json')):
    m = json.load(open(d)); name = d.split('/')[-2]
    ints = {k: v['integer'] for k, v in m.items() if isinstance(v, dict)}
    gap = ints.get('w8a8', 0) - ints.get('w4a4', 0)
    st = torch.load(d.replace('metrics.json', 'final.pt'), map_location='cpu', weights_only=False)
    print(f"{name:10s} float {m['float']:.4f} " + ' '.join(f"{k} {v:.4f}" for k, v in ints.items()) + f"  gap4 {100*gap:.2f} pp  t {m.get('train_seconds')}  sha {state_digest(st['float_model'], st['qnet'])[:12]}")
PY
grep -h "passed\|failed\|rc \|Warning" pytest.log | tail -5; grep -h "UserWarning" *.log | sort | uniq -c | head
tar czf $OUT/runs.tgz */metrics.json */final.pt
el done
