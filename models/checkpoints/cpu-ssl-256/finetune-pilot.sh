#!/bin/bash
# Pilot for issue 14 item 3: does the self-supervised backbone help supervised fine-tuning? Two CPU runs of the
# default supervised recipe (mirror attention, fine triplet loss, 256 px, width 0.25) that differ only in their
# start: the backbone of this folder's state.pt (INIT, copied first so the running pretraining can go on) or
# random initialisation. Validation patients only (train.py's selection and figures); no test figure is read.
#   bash models/checkpoints/cpu-ssl-256/finetune-pilot.sh     (needs models/cache/256; from any directory)
# STEPS (400 unless set), SEED (1), OUT_ROOT (/tmp/ssl-finetune-pilot) can be set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
STEPS=${STEPS:-400}
SEED=${SEED:-1}
OUT_ROOT=${OUT_ROOT:-/tmp/ssl-finetune-pilot}
mkdir -p "$OUT_ROOT"
INIT="$OUT_ROOT/ssl-state.pt"
cp models/checkpoints/cpu-ssl-256/state.pt "$INIT"
for start in ssl random; do
  extra=()
  [ "$start" = ssl ] && extra=(--init-checkpoint "$INIT")
  nice -n 10 /usr/bin/python3 models/scripts/train.py --cache models/cache/256 --out "$OUT_ROOT/$start-seed$SEED" \
    --input-size 256 --steps "$STEPS" --eval-every 100 --seed "$SEED" --channels-last --calibration-steps 0 \
    "${extra[@]}" > "$OUT_ROOT/$start-seed$SEED.log" 2>&1
  grep "^validation\|^done" "$OUT_ROOT/$start-seed$SEED.log"
done
