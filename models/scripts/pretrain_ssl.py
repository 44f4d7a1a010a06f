"""Self-supervised (SimCLR) pretraining of the backbone on the training patients' images, grades unused; the
result starts a supervised run through `train.py --init-checkpoint <out>/pretrained.pt`.

  /usr/bin/python3 models/scripts/pretrain_ssl.py --cache models/cache/256 --out models/runs/ssl --steps 300
  # on a GPU: --device cuda --time-budget 240
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from fundus_cbr.cli import add_run_arguments  # noqa: E402
from fundus_cbr.config import ModelConfig, TrainConfig  # noqa: E402
from fundus_cbr.data import AS_TAKEN_SETS, GRADED_SETS, load_split  # noqa: E402
from fundus_cbr.evaluation import make_validator  # noqa: E402
from fundus_cbr.pretraining import PretrainConfig, pretrain  # noqa: E402


def main() -> None:
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, defaults)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    args = parser.parse_args()
    config = PretrainConfig(
        model=ModelConfig(attention="none", backbone_width=args.width),
        seed=args.seed, batch_size=args.batch_size, temperature=args.temperature, steps=args.steps,
        learning_rate=args.lr, warmup_steps=args.warmup_steps, threads=args.threads, device=args.device,
        time_budget_seconds=args.time_budget, calibration_steps=args.calibration_steps, eval_every=args.eval_every,
        log_every=args.log_every,
    )
    split = TrainConfig()
    started = time.time()
    size = config.model.input_size
    # Training patients only: validation patients stay unseen until they select the supervised checkpoint, and
    # test patients are never touched. The lesion set is left out because its images score the heat maps.
    train = load_split(args.cache, "train", GRADED_SETS, split.test_fraction, split.validation_fraction, size)
    validation = load_split(args.cache, "validation", AS_TAKEN_SETS, split.test_fraction, split.validation_fraction, size)
    print(f"loaded {len(train.records)} training images (grades unused) in {time.time() - started:.0f}s", flush=True)
    result = pretrain(config, train.images, args.out, make_validator(validation.images, validation.grades, validation.patients),
                      log=lambda line: print(line, flush=True))
    print(f"done: {result['steps']} steps, final NT-Xent {result['final_loss']:.4f}, {result['wall_seconds'] / 60:.1f} min, "
          f"{os.path.join(args.out, 'pretrained.pt')}", flush=True)


if __name__ == "__main__":
    main()
