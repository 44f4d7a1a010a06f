"""Train one embedding model on the product's preprocessed cache; model selection on validation patients only.

Example (the shipped model):
  /usr/bin/python3 models/scripts/train.py --cache models/cache/256 --out models/runs/mirror-ftl \
      --attention mirror --loss fine_triplet --steps 300 --eval-every 60
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from fundus_cbr.cli import add_run_arguments  # noqa: E402
from fundus_cbr.config import LossConfig, ModelConfig, TrainConfig  # noqa: E402
from fundus_cbr.data import AS_TAKEN_SETS, GRADED_SETS, load_split, sampling_weights  # noqa: E402
from fundus_cbr.evaluation import make_validator  # noqa: E402
from fundus_cbr.training import train  # noqa: E402


def main() -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, defaults)
    parser.add_argument("--attention", choices=["mirror", "cbam", "none"], default="mirror")
    parser.add_argument("--loss", choices=["fine_triplet", "triplet", "cross_entropy"], default="fine_triplet")
    parser.add_argument("--grades-per-batch", type=int, default=defaults.grades_per_batch)
    parser.add_argument("--images-per-grade", type=int, default=defaults.images_per_grade)
    parser.add_argument("--stages", type=int, default=ModelConfig.backbone_stages)
    parser.add_argument("--input-size", type=int, default=ModelConfig.input_size,
                        help="model input side in px; cache images of another size are resized to it on loading "
                             "(build the cache at this size: npm run build-cache -- --size N)")
    parser.add_argument("--init-checkpoint", default=None,
                        help="torchvision resnet18 .pth (with --width 1 --stages 4) or a pretrain_ssl.py checkpoint to "
                             "start from; refused unless it fits the whole backbone")
    parser.add_argument("--init-whole", default=None,
                        help="a checkpoint of this project with the same architecture: fine-tune all of it (e.g. the "
                             "shipped model rebuilt by onnx_to_checkpoint.py); ignored when resuming")
    parser.add_argument("--input-normalisation", choices=["local_contrast", "imagenet"],
                        default=ModelConfig.input_normalisation,
                        help="imagenet for ImageNet-pretrained weights (they expect mean/std-normalised input)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--gamma", type=float, default=LossConfig.gamma, help="fine triplet / Circle loss scale")
    parser.add_argument("--margin", type=float, default=LossConfig.margin, help="fine triplet / Circle loss margin")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="validate and save an exponential moving average of the weights (e.g. 0.999)")
    parser.add_argument("--grade-regression-weight", type=float, default=LossConfig.grade_regression_weight,
                        help="weight of the auxiliary grade read-out (smooth L1) added to a metric loss; 0 = off")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/state.pt when it exists (weights, optimiser, weight average, step, "
                             "schedule, sampler and RNG states); the same command can be called again and again")
    parser.add_argument("--run-budget", type=float, default=None,
                        help="seconds this call may run; it stops in time and leaves <out>/state.pt for the next call "
                             "(--steps is then the schedule over all calls)")
    parser.add_argument("--run-steps", type=int, default=None, help="stop this call after this many steps")
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on CPU at 384 px)")
    parser.add_argument("--state-every", type=int, default=None, help="write state.pt every N steps (default: --eval-every)")
    args = parser.parse_args()

    model_config = ModelConfig(attention=args.attention, backbone_width=args.width, backbone_stages=args.stages,
                               input_normalisation=args.input_normalisation, input_size=args.input_size)
    config = TrainConfig(
        model=model_config,
        loss=LossConfig(kind=args.loss, gamma=args.gamma, margin=args.margin,
                        grade_regression_weight=args.grade_regression_weight),
        steps=args.steps,
        eval_every=args.eval_every,
        learning_rate=args.lr,
        seed=args.seed,
        threads=args.threads,
        grades_per_batch=args.grades_per_batch,
        images_per_grade=args.images_per_grade,
        device=args.device,
        time_budget_seconds=args.time_budget,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        calibration_steps=args.calibration_steps,
        log_every=args.log_every,
        ema_decay=args.ema_decay,
        channels_last=args.channels_last,
    )
    started = time.time()
    size = model_config.input_size
    train_split = load_split(args.cache, "train", GRADED_SETS, config.test_fraction, config.validation_fraction, size)
    validation = load_split(args.cache, "validation", AS_TAKEN_SETS, config.test_fraction, config.validation_fraction, size)
    print(f"loaded {len(train_split.records)} training images ({len(set(train_split.patients))} patients), "
          f"{len(validation.records)} validation photographs ({len(set(validation.patients))} patients) "
          f"in {time.time() - started:.0f}s", flush=True)
    result = train(
        config,
        train_split.images,
        train_split.grades,
        sampling_weights(train_split.records, config.as_taken_weight),
        args.out,
        validate=make_validator(validation.images, validation.grades, validation.patients),
        init_checkpoint=args.init_checkpoint,
        init_whole=args.init_whole,
        log=lambda line: print(line, flush=True),
        resume=args.resume,
        run_budget_seconds=args.run_budget,
        run_steps=args.run_steps,
        state_every=args.state_every,
    )
    print(f"{'done' if result['finished'] else 'paused'}: step {result['step']}/{result['steps']}, best validation "
          f"macro P@10 {result['best_validation']:.3f} at step {result['best_step']}, "
          f"{result['wall_seconds'] / 60:.1f} min this call", flush=True)


if __name__ == "__main__":
    main()
