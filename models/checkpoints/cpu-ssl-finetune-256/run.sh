#!/bin/bash
# Supervised fine-tuning (the default recipe: mirror attention, fine triplet loss, 256 px, width 0.25) from the
# self-supervised backbone of ../cpu-ssl-256 at step 3,100 (its state.pt as committed in the commit that adds this
# folder), resumed call after call (each at most RUN_BUDGET seconds, 30 minutes unless set) at nice -n 19:
#   bash models/checkpoints/cpu-ssl-finetune-256/run.sh   (needs models/cache/256; from any directory)
# INIT (the SSL state to start from; read at step 0 only), OUT, CALLS (8) can be set. The first call copies INIT
# into OUT as init-ssl.pt (not committed: it is ../cpu-ssl-256/state.pt of that commit), so the pretraining can go on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
OUT=${OUT:-models/checkpoints/cpu-ssl-finetune-256}
INIT=${INIT:-models/checkpoints/cpu-ssl-256/state.pt}
RUN_BUDGET=${RUN_BUDGET:-1800}
CALLS=${CALLS:-8}
mkdir -p "$OUT"
[ -f "$OUT/init-ssl.pt" ] || cp "$INIT" "$OUT/init-ssl.pt"
for call in $(seq 1 "$CALLS"); do
  nice -n 19 /usr/bin/python3 models/scripts/train.py --cache models/cache/256 --out "$OUT" \
    --init-checkpoint "$OUT/init-ssl.pt" --input-size 256 --channels-last --steps 2000 --eval-every 200 \
    --state-every 50 --log-every 10 --seed 1 --threads 2 --calibration-steps 0 \
    --resume --run-budget "$RUN_BUDGET" ${EXTRA:-} >> "$OUT/train.log" 2>&1
  /usr/bin/python3 -c "import json,sys; d=json.load(open('$OUT/training.json')); sys.exit(0 if d.get('finished') else 1)" 2>/dev/null && break
done
