#!/bin/bash
# Run on the lent GPU machine from the repo root, with the Fashion-MNIST idx files in .devdata/fashion-mnist
# (device tool: carry [".devdata"]); $OUT is where the summary lands.
# Device run 6 (stop 15): the float stage's margin over 92.5 %: 25 float epochs, seeds 0-4, three variants
# (weight decay 0.01, 0.05; peak lr 0.005) against the default (wd 1e-4, lr 0.003) measured in runs 4-5.
export PYTHONPATH=$PWD/host PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
D=$PWD/.devdata/fashion-mnist
R=/tmp/r; mkdir -p $R
T0=$(date +%s)
tr() { local o=$1; shift; timeout 215 python3 -m bitpath train --data-dir $D --out $R/$o --device cuda --threads 1 --no-progress --epochs-qat 0 --bn-batches 1 "$@" > $R/$o.log 2>&1; echo "rc $? $(( $(date +%s) - T0 )) s" >> $R/$o.log; }
for s in 0 1 2 3 4; do
  tr wd01-s$s --seed $s --weight-decay 0.01 &
  tr wd05-s$s --seed $s --weight-decay 0.05 &
  tr lr5-s$s --seed $s --lr-float 0.005 &
done
wait; echo "[$(( $(date +%s) - T0 )) s] done"
cd $R
python3 - <<'PY' | tee $OUT/summary.txt
import json, glob
for d in sorted(glob.glob('/tmp/r/*/metrics.json')):
    m = json.load(open(d)); print(f"{d.split('/')[-2]:10s} float {m['float']:.4f}  t {m.get('train_seconds')}")
PY
grep -h "^rc" *.log | sort | uniq -c
tail -n 3 wd01-s0.log
