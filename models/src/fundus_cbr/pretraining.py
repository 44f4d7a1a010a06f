"""Self-supervised pretraining of the backbone (SimCLR, Chen et al. 2020) on fundus images without grades.

No pretrained weights can be downloaded here, and only ~5,300 graded training images exist; contrastive
pretraining on every training patient's fundus image (grades unused; scripts/pretrain_ssl.py takes them from
data.select_pretraining_records) gives the backbone a start that is not random. The result is an ordinary
checkpoint of this project, so `train.py --init-checkpoint` loads its backbone (see model.load_init_checkpoint);
the projection used during pretraining is discarded there. Resumable across calls exactly as supervised training
is, with training.py's helpers (state file, RNG states, config on resume, the call's clock).

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

from .checkpoint import MAX_STATE_BYTES, save_checkpoint, save_training_state
from .config import AugmentationConfig, ModelConfig
from .data import augment_batch
from .model import FundusEmbedder
from .training import (
    CallClock,
    StepBudget,
    config_to_resume,
    optimizer_state_on_cpu,
    prepare_device,
    restore_rng_states,
    rng_states,
    seed_everything,
    state_to_resume,
    warmup_cosine,
)

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
    # NHWC memory format, as TrainConfig.channels_last: 1.46x less CPU work per step at 384 px, 1.05x at 256 px
    # (models/results/cpu-training-speed.md, measured for supervised training); changes results by rounding only.
    channels_last: bool = False


def nt_xent_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B L2-normalised views: view i's positive is the other view of the same image, its negatives
    the other 2B - 2 views. (B, D), (B, D) -> scalar (mean over the 2B anchors)."""
    views = torch.cat([first, second], dim=0)
    count = first.shape[0]
    logits = views @ views.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * count, dtype=torch.bool, device=views.device), float("-inf"))
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(0, count)]).to(views.device)
    return F.cross_entropy(logits, targets)


def image_set_fingerprint(images: torch.Tensor, sampled_images: int = 64) -> str:
    """Identifies the image set a pretraining state belongs to (the batch choice draws indices into it): the count,
    the shape, every image at 1/16 of its side (so the order counts too) and the full bytes of `sampled_images`
    evenly spaced ones. uint8 (N, 3, H, W) on the CPU; ~20 MB hashed for 8k images at 256 px."""
    import hashlib

    images = images.cpu()
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images[:, :, ::16, ::16].contiguous().numpy().tobytes())
    for index in np.unique(np.linspace(0, images.shape[0] - 1, num=min(sampled_images, images.shape[0])).astype(int)):
        digest.update(images[int(index)].contiguous().numpy().tobytes())
    return f"{images.shape[0]}:{digest.hexdigest()[:16]}"


def pretrain_config_from_dict(values: Dict[str, object]) -> PretrainConfig:
    """The PretrainConfig a state was written from (nested dataclasses rebuilt, tuples restored)."""
    values = dict(values)
    return PretrainConfig(
        model=ModelConfig.from_dict(values.pop("model")),
        augmentation=AugmentationConfig.from_dict(values.pop("augmentation")),
        **{k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(PretrainConfig)}},
    )


def pretrain(
    config: PretrainConfig,
    images: torch.Tensor,
    out_dir: str,
    validate: Optional[ValidationFn] = None,
    log: Callable[[str], None] = print,
    resume: bool = False,
    run_budget_seconds: Optional[float] = None,
    run_steps: Optional[int] = None,
    state_every: Optional[int] = None,
    max_state_bytes: int = MAX_STATE_BYTES,
) -> Dict[str, object]:
    """images: uint8 (N, 3, H, W), no labels. Writes out_dir/pretrained.pt once the schedule is complete (the last
    step: with no labels there is nothing to select on; `validate`, if given, only reports how grade-aware the
    features already are), out_dir/state.pt to resume, and pretraining.json (finished true/false).

    Resumable as training.train: with `resume` and an out_dir/state.pt, the run continues from it (weights, AdamW's
    moments, step and so the warm-up/cosine schedule, every RNG state including the augmentation generator and the
    batch-choosing Generator, the loss's running average, validation history, each call's steps and wall time)
    with the state's config (only PER_CALL_FIELDS from this call's); a state made on other images is refused.
    `run_budget_seconds` stops this call in time and `run_steps` after that many steps, leaving state.pt; it is
    also written every `state_every` steps (default: at every validation) and at the end of every call."""
    os.makedirs(out_dir, exist_ok=True)
    state_path, saved = state_to_resume(out_dir, resume, "pretraining")
    if saved is not None:
        config = config_to_resume(saved["config"], config, pretrain_config_from_dict, log)
    torch.set_num_threads(config.threads)
    generator = seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    device = prepare_device(config.device)
    fingerprint = image_set_fingerprint(images)
    model = FundusEmbedder(config.model).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    images = images.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    batch_size = min(config.batch_size, images.shape[0])
    history: list = []
    runs: list = []
    running, step, trained_seconds = 0.0, 0, 0.0
    if saved is not None:
        if saved["data"] != fingerprint:
            raise ValueError(f"{state_path} was made on other images ({saved['data']}, this call has {fingerprint})")
        model.load_state_dict(saved["model_state"])
        optimizer.load_state_dict(saved["optimizer_state"])
        restore_rng_states(saved["rng"], generator, {"batches": rng}, device)
        step, running = saved["step"], saved["running_loss"]
        history, runs, trained_seconds = saved["history"], saved["runs"], saved["trained_seconds"]
        log(f"resumed from {state_path} at step {step}/{config.steps}" +
            (f" (compacted: {', '.join(saved['compacted'])})" if saved.get("compacted") else ""))
    clock = CallClock(step, run_budget_seconds, run_steps)
    first_step = step
    budget = StepBudget(config.time_budget_seconds if saved is None else None, config.calibration_steps)
    state_every = state_every or config.eval_every

    def learning_rate(at: int) -> float:
        return warmup_cosine(at, config.learning_rate, config.warmup_steps, config.steps)

    def save_state() -> float:
        began = time.time()
        save_training_state(state_path, {
            "kind": "pretraining",
            "config": dataclasses.asdict(config),
            "data": fingerprint,
            "step": step,
            "running_loss": running,
            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer_state": optimizer_state_on_cpu(optimizer),
            "rng": rng_states(generator, {"batches": rng}, device),
            "history": history,
            "runs": runs + [clock.record(step, config.device)],
            "trained_seconds": trained_seconds + clock.elapsed(),
        }, max_state_bytes)
        return time.time() - began

    stopped_early = False
    while step < config.steps:
        if clock.must_stop(step, validate is not None and (step + 1) % config.eval_every == 0):
            stopped_early = True
            break
        fixed = budget.steps_at(step - first_step, config.steps)
        if fixed is not None:
            config = dataclasses.replace(config, steps=first_step + fixed[0])
            log(f"time budget {config.time_budget_seconds:.0f}s at {fixed[1]:.3f}s/step: {config.steps} steps")
        step_began = time.time()
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        chosen = images[torch.from_numpy(rng.choice(images.shape[0], size=batch_size, replace=False)).to(device)]
        views = [augment_batch(chosen, generator, config.augmentation).contiguous(memory_format=memory_format)
                 for _ in range(2)]
        loss = nt_xent_loss(model(views[0]).embedding, model(views[1]).embedding, config.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running = loss.item() if step == 0 else 0.9 * running + 0.1 * loss.item()
        step += 1
        clock.stepped(time.time() - step_began)
        if step % config.log_every == 0 or step == config.steps:
            elapsed = clock.elapsed()
            log(f"step {step}/{config.steps} nt-xent {running:.4f} lr {learning_rate(step - 1):.2e} "
                f"{elapsed / (step - first_step):.3f}s/step elapsed {elapsed / 60:.1f}min")
        if validate is not None and (step % config.eval_every == 0 or step == config.steps):
            validation_began = time.time()
            summary = validate(model)
            clock.validation_seconds = time.time() - validation_began
            history.append({"step": step, **summary})
            log(f"validation step {step} (features only, no selection): macro_p@10={summary['macro_p@10']:.3f} "
                f"knn_qwk={summary['knn_qwk']:.3f}")
        if step % state_every == 0 and step < config.steps:
            clock.save_seconds = save_state()
    save_state()
    finished = step >= config.steps
    if stopped_early:
        log(f"{clock.stopped_by}: stopped at step {step}/{config.steps}, state in {state_path}")
    if finished:
        save_checkpoint(os.path.join(out_dir, "pretrained.pt"), model, {"step": config.steps, "self_supervised": True})
    result = {"steps": config.steps, "step": step, "finished": finished, "final_loss": running,
              "wall_seconds": clock.elapsed(), "trained_seconds": trained_seconds + clock.elapsed(),
              "runs": runs + [clock.record(step, config.device)], "history": history,
              "config": dataclasses.asdict(config)}
    with open(os.path.join(out_dir, "pretraining.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    return result
