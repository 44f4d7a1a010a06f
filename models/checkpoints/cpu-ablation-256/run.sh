#!/bin/bash
# The paper's ablation on the new data (issue 14 item 6), on the CPU: six arms fine-tuned from the same SimCLR
# backbone (../cpu-ssl-256/state.pt at step 5,400, i.e. `git show 734152a:models/checkpoints/cpu-ssl-256/state.pt`),
# 256 px, width 0.25, 1,000 steps, seed SEED (1 unless set), everything else train.py's default recipe. Arms run two
# at a time with one thread each, from a queue (a GeM or CBAM arm steps at 0.8 s with one thread beside another run,
# against 1.1 s for one mirror arm alone on both threads; a mirror arm at 2.6 s), each resumable (--resume), at
# nice -n 19:
#   bash models/checkpoints/cpu-ablation-256/run.sh            (needs models/cache/256 and init-ssl.pt here)
# ARMS picks arms (default: all six, in pairs); OUT_ROOT the folder the arm folders go in (this one unless set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HERE=models/checkpoints/cpu-ablation-256
OUT_ROOT=${OUT_ROOT:-$HERE}
SEED=${SEED:-1}
STEPS=${STEPS:-1000}
INIT=${INIT:-$HERE/init-ssl.pt}
ARMS=${ARMS:-"mirror-ftl gem-ftl mirror-triplet gem-triplet gem-ce cbam-ftl"}
[ -f "$INIT" ] || { echo "no $INIT: git show 734152a:models/checkpoints/cpu-ssl-256/state.pt > $INIT" >&2; exit 2; }
[ -f models/cache/256/index.csv ] || { echo "no models/cache/256/index.csv: build the cache first" >&2; exit 2; }

flags() {  # arm name -> train.py flags
  case "$1" in
    mirror-ftl) echo "--attention mirror --loss fine_triplet" ;;
    gem-ftl) echo "--attention none --loss fine_triplet" ;;
    gem-triplet) echo "--attention none --loss triplet" ;;
    mirror-triplet) echo "--attention mirror --loss triplet" ;;
    gem-ce) echo "--attention none --loss cross_entropy" ;;
    cbam-ftl) echo "--attention cbam --loss fine_triplet" ;;
    *) echo "unknown arm $1" >&2; exit 2 ;;
  esac
}

arm() {
  local name=$1 out="$OUT_ROOT/$1-s$SEED"
  set -euo pipefail
  mkdir -p "$out"
  # shellcheck disable=SC2046
  nice -n 19 /usr/bin/python3 models/scripts/train.py --cache models/cache/256 --out "$out" \
    --init-checkpoint "$INIT" --input-size 256 --channels-last --steps "$STEPS" --eval-every 100 \
    --state-every 50 --log-every 10 --seed "$SEED" --threads 1 --calibration-steps 0 $(flags "$name") \
    --resume ${EXTRA:-} >> "$out/train.log" 2>&1
}

export OUT_ROOT SEED STEPS INIT EXTRA
export -f arm flags
# shellcheck disable=SC2086
printf '%s\n' $ARMS | xargs -P 2 -I{} bash -c 'arm {}'
