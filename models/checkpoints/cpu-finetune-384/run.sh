#!/bin/bash
# The 384-px CPU fine-tune of 0.4.0, resumed call after call (each at most RUN_BUDGET seconds, 30 minutes unless
# set), from any directory:
#   bash models/checkpoints/cpu-finetune-384/run.sh   (needs models/cache/384: see README.md here)
# OUT (a folder under the repository) resumes the same schedule from that folder's state.pt instead.
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
OUT=${OUT:-models/checkpoints/cpu-finetune-384}
RUN_BUDGET=${RUN_BUDGET:-1800}
for call in 1 2 3 4 5 6 7 8; do
  nice -n 19 /usr/bin/python3 models/scripts/train.py --cache models/cache/384 --out "$OUT" \
    --init-whole models/checkpoints/cpu-finetune-256/best.pt --input-size 384 --channels-last \
    --steps 2500 --lr 2e-4 --warmup-steps 20 --eval-every 100 --state-every 50 --log-every 10 \
    --ema-decay 0.998 --grade-regression-weight 1.0 --seed 1 --images-per-grade 6 --threads 2 \
    --resume --run-budget "$RUN_BUDGET" >> "$OUT/train.log" 2>&1
  python3 -c "import json,sys; d=json.load(open('$OUT/training.json')); sys.exit(0 if d.get('finished') else 1)" 2>/dev/null && break
done
