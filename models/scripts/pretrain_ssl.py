"""Self-supervised (SimCLR) pretraining of the backbone on every fundus image of the TRAINING patients, grades
unused: each graded set (eyepacs-processed included) and the lesion set's copies of training patients' IDRiD
photographs (data.select_pretraining_records). The result starts a supervised run through
`train.py --init-checkpoint <out>/pretrained.pt`.

  /usr/bin/python3 models/scripts/pretrain_ssl.py --cache models/cache/256 --out models/runs/ssl --steps 300
  # on a GPU: --device cuda --time-budget 240
  # resumable, call after call (the same command; --steps is the schedule over all calls):
  /usr/bin/python3 models/scripts/pretrain_ssl.py --cache models/cache/256 --out models/runs/ssl --steps 20000 \
      --batch-size 64 --resume --run-budget 1800
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from fundus_cbr.cli import add_run_arguments  # noqa: E402
from fundus_cbr.config import ModelConfig, TrainConfig  # noqa: E402
from fundus_cbr.data import AS_TAKEN_SETS, load_images, load_split, read_cache_index, select_pretraining_records  # noqa: E402
from fundus_cbr.evaluation import make_validator  # noqa: E402
from fundus_cbr.pretraining import PretrainConfig, pretrain  # noqa: E402


def main() -> None:
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, defaults)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--input-size", type=int, default=ModelConfig.input_size,
                        help="model input side in px; cache images of another size are resized to it on loading "
                             "(build the cache at this size: npm run build-cache -- --size N)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/state.pt when it exists (weights, optimiser, step, schedule, RNG "
                             "states, history); the same command can be called again and again")
    parser.add_argument("--run-budget", type=float, default=None,
                        help="seconds this call may run; it stops in time and leaves <out>/state.pt for the next call "
                             "(--steps is then the schedule over all calls)")
    parser.add_argument("--run-steps", type=int, default=None, help="stop this call after this many steps")
    parser.add_argument("--state-every", type=int, default=None, help="write state.pt every N steps (default: --eval-every)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on CPU at 384 px)")
    args = parser.parse_args()
    config = PretrainConfig(
        model=ModelConfig(attention="none", backbone_width=args.width, input_size=args.input_size),
        seed=args.seed, batch_size=args.batch_size, temperature=args.temperature, steps=args.steps,
        learning_rate=args.lr, warmup_steps=args.warmup_steps, threads=args.threads, device=args.device,
        time_budget_seconds=args.time_budget, calibration_steps=args.calibration_steps, eval_every=args.eval_every,
        log_every=args.log_every, channels_last=args.channels_last,
    )
    split = TrainConfig()
    started = time.time()
    size = config.model.input_size
    # Training patients only: validation patients stay unseen until they select the supervised checkpoint, test
    # patients are never touched, and the held-out lesion images (DIARETDB1, copies of test patients' photographs)
    # stay out because they score the heat maps.
    records = select_pretraining_records(read_cache_index(args.cache), split.test_fraction, split.validation_fraction)
    images = load_images(records, args.cache, size)
    validation = load_split(args.cache, "validation", AS_TAKEN_SETS, split.test_fraction, split.validation_fraction, size)
    per_source = collections.Counter(r.source_set for r in records)
    print(f"loaded {len(records)} training patients' images (grades unused): "
          + ", ".join(f"{source} {count}" for source, count in sorted(per_source.items()))
          + f"; {len(validation.records)} validation photographs in {time.time() - started:.0f}s", flush=True)
    result = pretrain(config, images, args.out, make_validator(validation.images, validation.grades, validation.patients),
                      log=lambda line: print(line, flush=True), resume=args.resume, run_budget_seconds=args.run_budget,
                      run_steps=args.run_steps, state_every=args.state_every)
    print(f"{'done' if result['finished'] else 'paused'}: step {result['step']}/{result['steps']}, NT-Xent "
          f"{result['final_loss']:.4f}, {result['wall_seconds'] / 60:.1f} min this call"
          + (f", {os.path.join(args.out, 'pretrained.pt')}" if result["finished"] else
             f", state in {os.path.join(args.out, 'state.pt')}"), flush=True)


if __name__ == "__main__":
    main()
