"""Command-line arguments shared by the training scripts (scripts/train.py, scripts/pretrain_ssl.py)."""
from __future__ import annotations

import argparse

from .config import ModelConfig


def add_run_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The cache, run directory, schedule, budget, device and logging arguments, with defaults taken from the
    script's own config dataclass (TrainConfig or PretrainConfig: both have these fields)."""
    parser.add_argument("--cache", required=True, help="cache dir with index.csv (npm run build-cache)")
    parser.add_argument("--out", required=True, help="run dir for checkpoints and logs")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--width", type=float, default=ModelConfig.backbone_width)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--device", default=defaults.device, help="cpu, cuda or cuda:N")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds; fixes the step count (at most --steps) from the speed measured in the first steps")
    parser.add_argument("--calibration-steps", type=int, default=defaults.calibration_steps,
                        help="steps timed before --time-budget fixes the step count")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--log-every", type=int, default=defaults.log_every)
