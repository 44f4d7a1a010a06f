#!/bin/bash
# A learning-rate search for the ablation's batch-hard triplet baseline (issue 14 item 6), selected on validation
# patients only. In ../cpu-ablation-256 both triplet arms collapsed at the default recipe's lr 2e-3: their loss
# reached the margin (0.200) by step ~60, inside the 30 warm-up steps' ramp, and their best validation step was the
# first. Here the same arm (train.py flags of ../cpu-ablation-256/run.sh, the same SimCLR backbone init-ssl.pt,
# 256 px, width 0.25, 1,000 steps, seed SEED) runs at each learning rate of LRS, two at a time with one thread each
# at nice -n 19, resumable (rerun the same command). Each run's folder: lr<LR>/<arm>-s<SEED>.
#   bash models/checkpoints/cpu-triplet-lr-256/run.sh       (needs models/cache/256 and ../cpu-ablation-256/init-ssl.pt)
# ARM picks the arm (gem-triplet unless set), LRS the rates ("3e-4 1e-4" unless set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HERE=models/checkpoints/cpu-triplet-lr-256
ARM=${ARM:-gem-triplet}
LRS=${LRS:-"3e-4 1e-4"}
export SEED=${SEED:-1}
run_lr() {
  OUT_ROOT="$HERE/lr$1" EXTRA="--lr $1" ARMS="$ARM" bash models/checkpoints/cpu-ablation-256/run.sh
}
export HERE ARM
export -f run_lr
# shellcheck disable=SC2086
printf '%s\n' $LRS | xargs -P 2 -I{} bash -c 'run_lr {}'
