#!/usr/bin/env bash
# One call of resumable training on a lent GPU machine (or, with DEVICE=cpu, a dry run here). A call runs at most
# RUN_BUDGET seconds of training, resumes from the state it is given and leaves the next one in $OUT, so short GPU
# calls add up to one schedule of TOTAL_STEPS steps (models/src/fundus_cbr/training.py, checkpoint.py).
#
# Data: a packed cache of train + validation patients only (models/scripts/pack_cache.py --max-mib 60), one part
# per call. The machine keeps files only while it is warm (~30 s between calls), so a pack of two parts needs two
# calls back to back: the first only stages part-1 (MODE=stage), the second stages part-2 and trains. The second
# call checks that every part is there (EXPECT_PARTS) and stops at once, before training, if the machine went cold.
#
#   # here: cache at the chosen size, packed; the state of the previous call (if any) in .gpu/state
#   npm run build-cache -- --size 384 --out models/cache/384 --lesions ../shared/data/lesions ../shared/data/{srahim,eyepacs-raw,eyepacs-processed,aptos,idrid,mexico}
#   /usr/bin/python3 models/scripts/pack_cache.py --cache models/cache/384 --out .gpu/pack384 --max-mib 60
#   # call 1 (carry .gpu/pack384/part-1):
#   MODE=stage PART=.gpu/pack384/part-1 bash models/scripts/train_gpu_resumable.sh
#   # call 2 (carry .gpu/pack384/part-2 and .gpu/state), at once:
#   PART=.gpu/pack384/part-2 EXPECT_PARTS=2 STATE_IN=.gpu/state bash models/scripts/train_gpu_resumable.sh
#   # back here: copy $OUT/run/{state.pt,best.pt,training.json,config.json} to .gpu/state for the next call
#
# Output ($OUT): gpu.log; run/state.pt (<= 16 MiB, to resume), run/best.pt (by validation macro P@10),
# run/training.json (every call's steps and the validation curve), run/config.json, run/train.log.
# Dry run on a machine without a GPU (tiny cache, a few steps):
#   DEVICE=cpu RUN_BUDGET=20 TOTAL_STEPS=6 EXTRA="--images-per-grade 2 --eval-every 3" SIZE=64 \
#     PART=<tiny pack part> OUT=/tmp/dry bash models/scripts/train_gpu_resumable.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
MODE=${MODE:-train}
PART=${PART:?PART=<packed part folder> is required}
STAGE=${STAGE:-/tmp/fundus-stage}          # where the parts are gathered on the machine (lost when it goes cold)
EXPECT_PARTS=${EXPECT_PARTS:-1}
STATE_IN=${STATE_IN:-}                      # folder with the previous call's state.pt (and best.pt, training.json)
INIT=${INIT:-}                              # first call only: a checkpoint to fine-tune (onnx_to_checkpoint.py)
OUT=${OUT:-/tmp/fundus-gpu-out}
RUNS=${RUNS:-/tmp/fundus-runs}
NAME=${NAME:-mirror-ftl-reg-384}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-384}
# The schedule over all calls. 0.043 s/step at 256 px alone on an H100 (call 4) is ~0.1 s/step at 384 px: about
# 4,500 steps in an 8-minute call. 20,000 steps (~4-5 calls) is ~300 passes over the 5.3k training images.
TOTAL_STEPS=${TOTAL_STEPS:-20000}
RUN_BUDGET=${RUN_BUDGET:-450}               # seconds of training per call; loading and copying take the rest
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RUNS/$NAME" "$STAGE/images"
exec > >(tee -a "$OUT/gpu.log") 2>&1

echo "== $(date -u +%FT%TZ) mode $MODE, part $PART, device $DEVICE"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
$PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

# Stage this call's part: its images into $STAGE/images, its index as $STAGE/index-<part>.csv; index.csv is then
# every staged part's rows under one header (names are numbered across parts, so they never clash).
part_name=$(basename "$PART")
if [ ! -f "$PART/index.csv" ]; then echo "no $PART/index.csv (carry the part folder)"; exit 2; fi
cp -r "$PART/images/." "$STAGE/images/"
cp "$PART/index.csv" "$STAGE/index-$part_name.csv"
parts=("$STAGE"/index-*.csv)
head -n 1 "${parts[0]}" > "$STAGE/index.csv"
for index in "${parts[@]}"; do tail -n +2 "$index" >> "$STAGE/index.csv"; done
echo "staged ${#parts[@]} part(s): $(($(wc -l < "$STAGE/index.csv") - 1)) images, $(du -sh "$STAGE" | cut -f1)"
if [ "$MODE" = stage ]; then echo "== staged only"; exit 0; fi
if [ "${#parts[@]}" -lt "$EXPECT_PARTS" ]; then
  echo "only ${#parts[@]} of $EXPECT_PARTS parts are staged: the machine went cold between calls; stage the others again"
  exit 3
fi

if [ -n "$STATE_IN" ] && [ -f "$STATE_IN/state.pt" ]; then
  cp "$STATE_IN"/state.pt "$RUNS/$NAME/"
  for file in best.pt training.json; do [ -f "$STATE_IN/$file" ] && cp "$STATE_IN/$file" "$RUNS/$NAME/"; done
  echo "resuming from $STATE_IN/state.pt"
else
  echo "no state given: step 0${INIT:+, fine-tuning $INIT}"
  [ -n "$INIT" ] && EXTRA="--init-whole $INIT ${EXTRA:-}"
fi

# The shipped recipe (MODEL_CARD.md, call 4) at $SIZE px; --resume continues the state, --run-budget stops in time.
timeout $((RUN_BUDGET + 120)) $PY models/scripts/train.py --cache "$STAGE" --out "$RUNS/$NAME" --device "$DEVICE" \
  --input-size "$SIZE" --attention mirror --loss fine_triplet --ema-decay 0.998 --grade-regression-weight 1.0 --seed 1 \
  --images-per-grade 16 --lr 2e-3 --weight-decay 0.05 --warmup-steps 300 --eval-every 250 --log-every 250 --threads 2 \
  --steps "$TOTAL_STEPS" --resume --run-budget "$RUN_BUDGET" ${EXTRA:-} > "$RUNS/$NAME/train.log" 2>&1
code=$?
echo "train.py exited $code: $(tail -n 1 "$RUNS/$NAME/train.log")"
grep -E "resumed|validation step|run budget|paused|done:" "$RUNS/$NAME/train.log" | tail -n 12
mkdir -p "$OUT/run"
for file in state.pt best.pt training.json config.json train.log; do
  [ -f "$RUNS/$NAME/$file" ] && cp "$RUNS/$NAME/$file" "$OUT/run/"
done
ls -la "$OUT/run"
exit $code
