"""Self-supervised pretraining of the backbone (SimCLR, Chen et al. 2020) on fundus images without grades.

No pretrained weights can be downloaded here, and only ~3000 graded training images exist; contrastive pretraining
on every training/validation photograph (grades unused) gives the backbone a start that is not random. The result
is an ordinary checkpoint of this project, so `train.py --init-checkpoint` loads its backbone (see
model.load_init_checkpoint); the projection used during pretraining is discarded there.

Two augmented views of each image are positives, every other image in the batch a negative (NT-Xent loss). The
views use the training augmentation at larger strengths: rotation, scale, shift and colour, never a horizontal flip
(it would turn a left eye into a right one).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np
import torch
from torch.nn import functional as F

from .checkpoint import save_checkpoint
from .config import AugmentationConfig, ModelConfig
from .data import augment_batch
from .model import FundusEmbedder
from .training import StepBudget, prepare_device, seed_everything, warmup_cosine

ValidationFn = Callable[[FundusEmbedder], Dict[str, float]]


@dataclass
class PretrainConfig:
    # attention "none": pretraining shapes the backbone only, which every attention kind shares.
    model: ModelConfig = field(default_factory=lambda: ModelConfig(attention="none"))
    seed: int = 0
    # SimCLR wants many negatives; 256 images (512 views) fit an H100 many times over at 256 px and width 0.25.
    batch_size: int = 256
    # NT-Xent temperature: 0.1-0.5 in the SimCLR paper; 0.2 is a common middle for small batches.
    temperature: float = 0.2
    steps: int = 1000
    learning_rate: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    # Stronger than supervised training: the task must not be solvable from camera colour or framing alone.
    augmentation: AugmentationConfig = field(default_factory=lambda: AugmentationConfig(
        rotation_degrees=25.0, scale_range=(0.8, 1.2), translate_fraction=0.08, brightness=0.4, contrast=0.4,
        saturation=0.4))
    threads: int = 2
    device: str = "cpu"
    time_budget_seconds: Optional[float] = None
    calibration_steps: int = 40
    eval_every: int = 250
    log_every: int = 50


def nt_xent_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B L2-normalised views: view i's positive is the other view of the same image, its negatives
    the other 2B - 2 views. (B, D), (B, D) -> scalar (mean over the 2B anchors)."""
    views = torch.cat([first, second], dim=0)
    count = first.shape[0]
    logits = views @ views.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * count, dtype=torch.bool, device=views.device), float("-inf"))
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(0, count)]).to(views.device)
    return F.cross_entropy(logits, targets)


def pretrain(
    config: PretrainConfig,
    images: torch.Tensor,
    out_dir: str,
    validate: Optional[ValidationFn] = None,
    log: Callable[[str], None] = print,
) -> Dict[str, object]:
    """images: uint8 (N, 3, H, W), no labels. Writes out_dir/pretrained.pt (the last step: with no labels there is
    nothing to select on; `validate`, if given, only reports how grade-aware the features already are)."""
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(config.threads)
    generator = seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    device = prepare_device(config.device)
    model = FundusEmbedder(config.model).to(device)
    images = images.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    batch_size = min(config.batch_size, images.shape[0])
    history, running, step = [], 0.0, 0
    started = time.time()
    budget = StepBudget(config.time_budget_seconds, config.calibration_steps)

    def learning_rate(at: int) -> float:
        return warmup_cosine(at, config.learning_rate, config.warmup_steps, config.steps)

    while step < config.steps:
        fixed = budget.steps_at(step, config.steps)
        if fixed is not None:
            config = dataclasses.replace(config, steps=fixed[0])
            log(f"time budget {config.time_budget_seconds:.0f}s at {fixed[1]:.3f}s/step: {config.steps} steps")
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        chosen = images[torch.from_numpy(rng.choice(images.shape[0], size=batch_size, replace=False)).to(device)]
        first = model(augment_batch(chosen, generator, config.augmentation)).embedding
        second = model(augment_batch(chosen, generator, config.augmentation)).embedding
        loss = nt_xent_loss(first, second, config.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running = loss.item() if step == 0 else 0.9 * running + 0.1 * loss.item()
        step += 1
        if step % config.log_every == 0 or step == config.steps:
            elapsed = time.time() - started
            log(f"step {step}/{config.steps} nt-xent {running:.4f} lr {learning_rate(step - 1):.2e} "
                f"{elapsed / step:.3f}s/step elapsed {elapsed / 60:.1f}min")
        if validate is not None and (step % config.eval_every == 0 or step == config.steps):
            summary = validate(model)
            history.append({"step": step, **summary})
            log(f"validation step {step} (features only, no selection): macro_p@10={summary['macro_p@10']:.3f} "
                f"knn_qwk={summary['knn_qwk']:.3f}")
    save_checkpoint(os.path.join(out_dir, "pretrained.pt"), model, {"step": config.steps, "self_supervised": True})
    result = {"steps": config.steps, "final_loss": running, "wall_seconds": time.time() - started, "history": history,
              "config": dataclasses.asdict(config)}
    with open(os.path.join(out_dir, "pretraining.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    return result
