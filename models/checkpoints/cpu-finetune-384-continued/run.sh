#!/bin/bash
# The 384-px schedule resumed in this folder (from a copy of ../cpu-finetune-384/state.pt at step 1,600), by the
# same command as there; it ran as one call of 1,380 s (finished: a rerun does nothing more).
OUT=models/checkpoints/cpu-finetune-384-continued RUN_BUDGET=1380 exec bash "$(dirname "${BASH_SOURCE[0]}")/../cpu-finetune-384/run.sh"
