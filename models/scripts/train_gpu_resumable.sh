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
#
# SSL_STEPS=<n> (default 0: no such phase) puts a resumable self-supervised phase first (SimCLR,
# models/scripts/pretrain_ssl.py, n steps over all calls, batch SSL_BATCH, at $SIZE px from random initialisation):
# each call resumes it from SSL_STATE_IN (the previous call's $OUT/ssl, copied back here, e.g. .gpu/ssl-state) and
# leaves $OUT/ssl (state.pt <= 16 MiB, pretraining.json, ssl.log; pretrained.pt once complete). While it is not
# complete the call does nothing else; in the call that completes it, the time left of RUN_BUDGET (if at least 60 s)
# starts the fine-tuning from its backbone (--init-checkpoint), which later calls resume from STATE_IN as usual
# (keep SSL_STEPS and SSL_STATE_IN set: a finished phase is only copied through). Pack with --with-lesions so the
# lesion copies of training patients' photographs are pretrained on too. INIT cannot be combined with it.
#   e.g. SSL_STEPS=6000 PART=.gpu/pack384/part-2 EXPECT_PARTS=2 SSL_STATE_IN=.gpu/ssl-state STATE_IN=.gpu/state \
#     bash models/scripts/train_gpu_resumable.sh
# Dry run on a machine without a GPU (tiny cache, a few steps):
#   DEVICE=cpu RUN_BUDGET=20 TOTAL_STEPS=6 EXTRA="--images-per-grade 2 --eval-every 3" SIZE=64 \
#     PART=<tiny pack part> OUT=/tmp/dry bash models/scripts/train_gpu_resumable.sh
#   # and its self-supervised phase: add SSL_STEPS=8 SSL_BATCH=16 (then SSL_STATE_IN=<copy of /tmp/dry/ssl>)
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
SSL_STEPS=${SSL_STEPS:-0}
SSL_STATE_IN=${SSL_STATE_IN:-}
SSL_BATCH=${SSL_BATCH:-256}                 # PretrainConfig's default: many negatives, small beside an H100
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

budget=$RUN_BUDGET
if [ "$SSL_STEPS" -gt 0 ]; then
  if [ -n "$INIT" ]; then echo "INIT and SSL_STEPS exclude each other: the fine-tuning starts from one of them"; exit 2; fi
  mkdir -p "$RUNS/ssl" "$OUT/ssl"
  if [ -n "$SSL_STATE_IN" ] && [ -f "$SSL_STATE_IN/state.pt" ]; then
    for file in state.pt pretraining.json pretrained.pt ssl.log; do
      [ -f "$SSL_STATE_IN/$file" ] && cp "$SSL_STATE_IN/$file" "$RUNS/ssl/"
    done
    echo "resuming the self-supervised phase from $SSL_STATE_IN/state.pt"
  else
    echo "self-supervised phase: no state given, step 0"
  fi
  ssl_finished() { $PY -c "import json,sys; sys.exit(0 if json.load(open('$RUNS/ssl/pretraining.json')).get('finished') else 1)" 2>/dev/null; }
  if ssl_finished && [ -f "$RUNS/ssl/pretrained.pt" ]; then
    echo "self-supervised phase already complete: $(grep -E '^done:' "$RUNS/ssl/ssl.log" | tail -n 1)"
  else
    began=$(date +%s)
    timeout $((RUN_BUDGET + 120)) $PY models/scripts/pretrain_ssl.py --cache "$STAGE" --out "$RUNS/ssl" --device "$DEVICE" \
      --input-size "$SIZE" --batch-size "$SSL_BATCH" --steps "$SSL_STEPS" --warmup-steps "$((SSL_STEPS / 20 + 1))" \
      --eval-every 500 --log-every 250 --state-every 250 --threads 2 --resume --run-budget "$RUN_BUDGET" \
      ${SSL_EXTRA:-} >> "$RUNS/ssl/ssl.log" 2>&1
    code=$?
    echo "pretrain_ssl.py exited $code: $(tail -n 1 "$RUNS/ssl/ssl.log")"
    grep -E "^loaded|resumed|validation step|run budget" "$RUNS/ssl/ssl.log" | tail -n 6
    for file in state.pt pretraining.json pretrained.pt ssl.log; do [ -f "$RUNS/ssl/$file" ] && cp "$RUNS/ssl/$file" "$OUT/ssl/"; done
    ls -la "$OUT/ssl"
    if [ $code -ne 0 ] || ! ssl_finished; then exit $code; fi
    budget=$((RUN_BUDGET - ($(date +%s) - began)))
    if [ "$budget" -lt 60 ]; then echo "self-supervised phase complete; ${budget}s left: fine-tuning next call"; exit 0; fi
  fi
  for file in state.pt pretraining.json pretrained.pt ssl.log; do [ -f "$RUNS/ssl/$file" ] && cp "$RUNS/ssl/$file" "$OUT/ssl/"; done
fi

if [ -n "$STATE_IN" ] && [ -f "$STATE_IN/state.pt" ]; then
  cp "$STATE_IN"/state.pt "$RUNS/$NAME/"
  for file in best.pt training.json; do [ -f "$STATE_IN/$file" ] && cp "$STATE_IN/$file" "$RUNS/$NAME/"; done
  echo "resuming from $STATE_IN/state.pt"
else
  echo "no state given: step 0${INIT:+, fine-tuning $INIT}"
  [ -n "$INIT" ] && EXTRA="--init-whole $INIT ${EXTRA:-}"
  if [ "$SSL_STEPS" -gt 0 ]; then
    echo "fine-tuning from the self-supervised backbone $RUNS/ssl/pretrained.pt, ${budget}s"
    EXTRA="--init-checkpoint $RUNS/ssl/pretrained.pt ${EXTRA:-}"
  fi
fi

# The shipped recipe (MODEL_CARD.md, call 4) at $SIZE px; --resume continues the state, --run-budget stops in time.
timeout $((budget + 120)) $PY models/scripts/train.py --cache "$STAGE" --out "$RUNS/$NAME" --device "$DEVICE" \
  --input-size "$SIZE" --attention mirror --loss fine_triplet --ema-decay 0.998 --grade-regression-weight 1.0 --seed 1 \
  --images-per-grade 16 --lr 2e-3 --weight-decay 0.05 --warmup-steps 300 --eval-every 250 --log-every 250 --threads 2 \
  --steps "$TOTAL_STEPS" --resume --run-budget "$budget" ${EXTRA:-} > "$RUNS/$NAME/train.log" 2>&1
code=$?
echo "train.py exited $code: $(tail -n 1 "$RUNS/$NAME/train.log")"
grep -E "resumed|validation step|run budget|paused|done:" "$RUNS/$NAME/train.log" | tail -n 12
mkdir -p "$OUT/run"
for file in state.pt best.pt training.json config.json train.log; do
  [ -f "$RUNS/$NAME/$file" ] && cp "$RUNS/$NAME/$file" "$OUT/run/"
done
ls -la "$OUT/run"
exit $code
