#!/usr/bin/env bash
# The CPU training run behind models/MODEL_CARD.md: the shipped model and four baselines on the same backbone,
# the same step budget and the same grade-balanced batches. Three parallel lanes: the three-view mirror model with
# two threads, the single-view baselines two after two with one thread each (the machine has 2 cores shared with
# other builds). Logs go to models/runs/<name>.log (gitignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=${CACHE:-models/cache/256}
STEPS=${STEPS:-300}
EVAL_EVERY=${EVAL_EVERY:-60}
PY=/usr/bin/python3
mkdir -p models/runs
run() { # name attention loss threads
  OMP_NUM_THREADS=$4 $PY models/scripts/train.py --cache "$CACHE" --out "models/runs/$1" --attention "$2" --loss "$3" \
    --steps "$STEPS" --eval-every "$EVAL_EVERY" --threads "$4" > "models/runs/$1.log" 2>&1
}
( run mirror-ftl mirror fine_triplet 2 ) &
( run gem-triplet none triplet 1; run gem-ftl none fine_triplet 1 ) &
( run gem-ce none cross_entropy 1; run cbam-ftl cbam fine_triplet 1 ) &
wait
