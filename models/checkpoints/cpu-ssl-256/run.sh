#!/bin/bash
# SimCLR pretraining of the shipped architecture's backbone (width 0.25, 4 stages, local-contrast input, no
# attention: pretraining shapes the backbone only) at 256 px from random initialisation, on every training
# patient's fundus image in models/cache/256, resumed call after call (each at most RUN_BUDGET seconds, 30 minutes
# unless set) at nice -n 19, from any directory:
#   bash models/checkpoints/cpu-ssl-256/run.sh   (needs models/cache/256: see README.md here)
# OUT (a folder under the repository) resumes the same schedule from that folder's state.pt instead; CALLS calls
# at most (8 unless set), fewer once the schedule is complete.
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
OUT=${OUT:-models/checkpoints/cpu-ssl-256}
RUN_BUDGET=${RUN_BUDGET:-1800}
CALLS=${CALLS:-8}
CACHE=${CACHE:-models/cache/256}
if [ ! -f "$CACHE/index.csv" ]; then
  echo "no $CACHE/index.csv: build the cache first (npm run build-cache, see README.md here)" >&2
  exit 2
fi
mkdir -p "$OUT"
for call in $(seq 1 "$CALLS"); do
  nice -n 19 /usr/bin/python3 models/scripts/pretrain_ssl.py --cache "$CACHE" --out "$OUT" --input-size 256 \
    --width 0.25 --batch-size 64 --steps 20000 --lr 2e-3 --warmup-steps 500 --eval-every 500 --state-every 100 \
    --log-every 50 --seed 1 --threads 2 --channels-last --resume --run-budget "$RUN_BUDGET" ${EXTRA:-} >> "$OUT/pretrain.log" 2>&1 \
    || { echo "call $call failed: see $OUT/pretrain.log" >&2; exit 1; }
  if /usr/bin/python3 -c "import json,sys; sys.exit(0 if json.load(open('$OUT/pretraining.json')).get('finished') else 1)"; then
    break
  fi
done
