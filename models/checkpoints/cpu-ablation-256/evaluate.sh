#!/bin/bash
# Scores the ablation's arms (run.sh) once on the held-out TEST patients, after validation chose each arm's step
# (best.pt): every source apart, the trivial baselines, paired patient-bootstrap differences against mirror-ftl
# (the default recipe: mirror attention + fine triplet loss), and heat-map mass in the held-out lesion boxes.
#   bash models/checkpoints/cpu-ablation-256/evaluate.sh    (needs models/cache/256 and ../shared/data/lesions)
# SEED picks the arms' seed (1 unless set); DATA the shared data folder (../shared/data from the repository root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HERE=models/checkpoints/cpu-ablation-256
SEED=${SEED:-1}
DATA=${DATA:-../shared/data}
ARMS=${ARMS:-"mirror-ftl gem-ftl mirror-triplet gem-triplet gem-ce cbam-ftl"}
models=()
for arm in $ARMS; do models+=(--model "$arm=$HERE/$arm-s$SEED/best.pt"); done
nice -n 5 /usr/bin/python3 models/scripts/evaluate.py --cache models/cache/256 --data "$DATA" --lesion-split held-out \
  "${models[@]}" --reference mirror-ftl --threads 2 --out "models/results/test-metrics-cpu-ablation-256-s$SEED.json" \
  | tee "models/results/test-metrics-cpu-ablation-256-s$SEED.txt"
