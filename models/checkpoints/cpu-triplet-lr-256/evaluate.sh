#!/bin/bash
# Scores the LR search's selected gem-triplet step (run.sh; lr 3e-4 won on validation) once on the held-out TEST
# patients beside the ablation's mirror-ftl, gem-ftl and gem-triplet (lr 2e-3) of seed 1: every source apart, the
# trivial baselines, paired patient-bootstrap differences against mirror-ftl, heat-map mass in the lesion boxes.
#   bash models/checkpoints/cpu-triplet-lr-256/evaluate.sh    (needs models/cache/256 and ../shared/data/lesions)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HERE=models/checkpoints/cpu-triplet-lr-256
ABLATION=models/checkpoints/cpu-ablation-256
DATA=${DATA:-../shared/data}
nice -n 5 /usr/bin/python3 models/scripts/evaluate.py --cache models/cache/256 --data "$DATA" --lesion-split held-out \
  --model "mirror-ftl=$ABLATION/mirror-ftl-s1/best.pt" --model "gem-ftl=$ABLATION/gem-ftl-s1/best.pt" \
  --model "gem-triplet-lr2e-3=$ABLATION/gem-triplet-s1/best.pt" --model "gem-triplet-lr3e-4=$HERE/lr3e-4/gem-triplet-s1/best.pt" \
  --reference mirror-ftl --threads 2 --out models/results/test-metrics-cpu-triplet-lr-256.json \
  | tee models/results/test-metrics-cpu-triplet-lr-256.txt
