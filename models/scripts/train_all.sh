#!/usr/bin/env bash
# The CPU training run behind models/MODEL_CARD.md: the shipped model and four baselines on the same backbone,
# the same step budget and the same grade-balanced batches, in three parallel lanes of one thread each
# (the machine has 2 cores shared with other builds). Logs go to models/runs/<name>.log (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${CACHE:-models/cache/256}
STEPS=${STEPS:-450}
PY=/usr/bin/python3
export OMP_NUM_THREADS=1
mkdir -p models/runs
run() { # name attention loss
  $PY models/scripts/train.py --cache "$CACHE" --out "models/runs/$1" --attention "$2" --loss "$3" \
    --steps "$STEPS" --eval-every 75 --threads 1 > "models/runs/$1.log" 2>&1
}
( run mirror-ftl mirror fine_triplet ) &
( run gem-triplet none triplet; run gem-ftl none fine_triplet ) &
( run gem-ce none cross_entropy; run cbam-ftl cbam fine_triplet ) &
wait
