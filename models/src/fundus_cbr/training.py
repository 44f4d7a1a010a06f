"""Training loop: grade-balanced batches, one of three losses, model selection on validation patients only."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch.nn import functional as F

from .checkpoint import MAX_STATE_BYTES, load_training_state, save_checkpoint, save_training_state
from .config import TrainConfig
from .data import GradeBalancedBatchSampler, augment_batch
from .losses import batch_hard_triplet_loss, fine_triplet_loss, relevance_degree
from .model import FundusEmbedder, load_init_checkpoint, load_whole_checkpoint

ValidationFn = Callable[[FundusEmbedder], Dict[str, float]]


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def prepare_device(name: str) -> torch.device:
    """torch.device(name); on CUDA also cuDNN autotuning and TF32 matmuls/convolutions (fp32 weights)."""
    device = torch.device(name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def warmup_cosine(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to `peak` over `warmup_steps`, then cosine decay to zero at `total_steps` (step is 0-based)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def learning_rate_at(step: int, config: TrainConfig) -> float:
    return warmup_cosine(step, config.learning_rate, config.warmup_steps, config.steps)


def steps_within_budget(step: int, seconds_per_step: float, elapsed: float, budget: float) -> int:
    """The total step count that ends a run inside its wall-clock budget: the steps done, plus as many more as the
    time left affords at the measured speed with 10% kept for the validation passes to come; always at least one
    more, so a run whose calibration already spent the budget still ends on a scheduled step."""
    remaining = max(budget - elapsed, 0.0)
    return step + max(int(remaining / (seconds_per_step * 1.10)), 1)


class StepBudget:
    """Fixes a run's step count once from its measured speed, so that a cosine schedule still ends inside a
    wall-clock budget. The first min(20, calibration_steps) steps are not timed (cuDNN autotuning, other processes
    still loading); the next calibration_steps are."""

    def __init__(self, budget_seconds: Optional[float], calibration_steps: int) -> None:
        self.budget_seconds = budget_seconds
        self.calibration_steps = calibration_steps
        self.calibration_from = min(20, calibration_steps)
        self.started = self.calibration_started = time.time()

    def steps_at(self, step: int, steps: int) -> Optional[Tuple[int, float]]:
        """Call before every step. Returns (new total step count, seconds per step) at the one step where the count
        is fixed, else None."""
        if self.budget_seconds is None:
            return None
        if step == self.calibration_from:
            self.calibration_started = time.time()
        if step != self.calibration_from + self.calibration_steps:
            return None
        per_step = (time.time() - self.calibration_started) / self.calibration_steps
        affordable = steps_within_budget(step, per_step, time.time() - self.started, self.budget_seconds)
        return min(steps, affordable), per_step


def ema_decay_at(step: int, decay: float) -> float:
    """The averaging weight after `step` optimizer steps (0-based): ramps up so early averages forget the random
    initialisation (as TensorFlow's ExponentialMovingAverage with num_updates)."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model for floating parameters and buffers (BatchNorm running
    statistics included); integer buffers (num_batches_tracked) are copied."""
    averaged = average.state_dict()
    for name, value in model.state_dict().items():
        target = averaged[name]
        if target.dtype.is_floating_point:
            target.mul_(decay).add_(value.detach(), alpha=1.0 - decay)
        else:
            target.copy_(value)


def make_grade_regressor(config: TrainConfig) -> Optional[torch.nn.Linear]:
    """The auxiliary read-out of LossConfig.grade_regression_weight, or None when the weight is 0 or the loss is
    cross-entropy (which already has a grade head)."""
    if config.loss.grade_regression_weight <= 0 or config.loss.kind == "cross_entropy":
        return None
    return torch.nn.Linear(config.model.embedding_dim, 1)


def compute_loss(
    model: FundusEmbedder,
    images: torch.Tensor,
    grades: torch.Tensor,
    config: TrainConfig,
    grade_regressor: Optional[torch.nn.Module] = None,
):
    output = model(images)
    loss_config = config.loss
    if loss_config.kind == "fine_triplet":
        relevance = None
        if output.horizontal_descriptor is not None:
            relevance = relevance_degree(output.horizontal_descriptor, output.vertical_descriptor)
        loss = fine_triplet_loss(
            output.embedding, grades, relevance, loss_config.margin, loss_config.gamma, loss_config.relevance_floor
        )
    elif loss_config.kind == "triplet":
        loss = batch_hard_triplet_loss(output.embedding, grades, loss_config.triplet_margin)
    elif loss_config.kind == "cross_entropy":
        loss = F.cross_entropy(output.logits, grades)
    else:
        raise ValueError(f"unknown loss {loss_config.kind!r}")
    if grade_regressor is not None:
        predicted = grade_regressor(output.embedding).squeeze(1)
        loss = loss + loss_config.grade_regression_weight * F.smooth_l1_loss(predicted, grades.float())
    return loss, output


def rng_states(generator: torch.Generator, numpy_generators: Dict[str, np.random.Generator],
               device: torch.device) -> Dict[str, object]:
    """Every RNG state a resumed run needs to draw what an unbroken run would: Python's, NumPy's and torch's global
    ones, the augmentation generator, and the run's own NumPy Generators by name (training: the grade-balanced
    sampler's "sampler"; pretraining: the batch choice's "batches"), plus CUDA's on a GPU."""
    states: Dict[str, object] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "augmentation": generator.get_state(),
    }
    for name, numpy_generator in numpy_generators.items():
        states[name] = numpy_generator.bit_generator.state
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: Dict[str, object], generator: torch.Generator,
                       numpy_generators: Dict[str, np.random.Generator], device: torch.device) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    generator.set_state(states["augmentation"])
    for name, numpy_generator in numpy_generators.items():
        numpy_generator.bit_generator.state = states[name]
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def data_fingerprint(grades: np.ndarray, sample_weights: np.ndarray) -> str:
    """Identifies the training set a state belongs to (the sampler's draws depend on it): a resumed run on other
    data would continue another run's schedule on a different sampler."""
    import hashlib

    digest = hashlib.sha256(np.asarray(grades, dtype=np.int64).tobytes())
    digest.update(np.asarray(sample_weights, dtype=np.float64).tobytes())
    return f"{len(grades)}:{digest.hexdigest()[:16]}"


STATE_FILE = "state.pt"
# Fields a resumed run may take from its own call rather than from the state: where and how fast it runs.
PER_CALL_FIELDS = ("device", "threads", "log_every")


def state_to_resume(out_dir: str, resume: bool, kind: str) -> Tuple[str, Optional[Dict[str, object]]]:
    """out_dir's state path, and the state in it when resuming and there is one. `kind` is "training" or
    "pretraining": a state of the other kind is refused (states written before kinds existed are training ones)."""
    state_path = os.path.join(out_dir, STATE_FILE)
    saved = load_training_state(state_path) if resume and os.path.exists(state_path) else None
    if saved is not None and saved.get("kind", "training") != kind:
        raise ValueError(f"{state_path} is a {saved.get('kind', 'training')} state, not a {kind} one")
    return state_path, saved


def config_to_resume(saved_values: Dict[str, object], config, rebuild: Callable[[Dict[str, object]], object],
                     log: Callable[[str], None]):
    """The state's config (rebuilt by `rebuild` from its dict) with this call's PER_CALL_FIELDS; logs the fields in
    which this call asked for something else (they are ignored: the schedule is the state's)."""
    own = dataclasses.asdict(config)
    resumed = rebuild({**saved_values, **{k: own[k] for k in PER_CALL_FIELDS}})
    differing = sorted(k for k, v in dataclasses.asdict(resumed).items() if own.get(k) != v)
    if differing:
        log(f"resume: the state's config is used; this call's differs in {', '.join(differing)}")
    return resumed


class CallClock:
    """One call of a resumable run: whether it must stop before the next step (`run_steps` done, or too little of
    `run_budget_seconds` left for one more step, a validation that is due and two state writes, at the speeds seen
    so far in this call), and the record of what it did (the state's "runs")."""

    def __init__(self, first_step: int, run_budget_seconds: Optional[float], run_steps: Optional[int]) -> None:
        self.first_step = first_step
        self.run_budget_seconds = run_budget_seconds
        self.run_steps = run_steps
        self.started = time.time()
        self.step_seconds, self.validation_seconds, self.save_seconds = 0.0, 0.0, 0.0
        self.stopped_by = ""

    def elapsed(self) -> float:
        return time.time() - self.started

    def must_stop(self, step: int, validation_due: bool) -> bool:
        """True when this call must stop before `step`; `stopped_by` then says why."""
        if self.run_steps is not None and step - self.first_step >= self.run_steps:
            self.stopped_by = f"run steps {self.run_steps}"
            return True
        if self.run_budget_seconds is not None and step > self.first_step:
            left = self.run_budget_seconds - self.elapsed()
            upcoming_validation = self.validation_seconds if validation_due else 0.0
            if left < 1.5 * self.step_seconds + upcoming_validation + 2 * self.save_seconds + 1.0:
                self.stopped_by = f"run budget {self.run_budget_seconds:.0f}s"
                return True
        return False

    def stepped(self, seconds: float) -> None:
        self.step_seconds = seconds if self.step_seconds == 0.0 else 0.8 * self.step_seconds + 0.2 * seconds

    def record(self, step: int, device: str) -> Dict[str, object]:
        return {"from_step": self.first_step, "to_step": step, "wall_seconds": round(self.elapsed(), 1), "device": device}


def train(
    config: TrainConfig,
    images: torch.Tensor,
    grades: np.ndarray,
    sample_weights: np.ndarray,
    out_dir: str,
    validate: Optional[ValidationFn] = None,
    selection_metric: str = "macro_p@10",
    init_checkpoint: Optional[str] = None,
    log: Callable[[str], None] = print,
    resume: bool = False,
    init_whole: Optional[str] = None,
    run_budget_seconds: Optional[float] = None,
    run_steps: Optional[int] = None,
    state_every: Optional[int] = None,
    max_state_bytes: int = MAX_STATE_BYTES,
) -> Dict[str, object]:
    """images uint8 (N, 3, H, W) of the training patients. Writes best.pt (by validation), state.pt (to resume) and,
    once the schedule is complete, last.pt to out_dir.

    Resumable training: with `resume` and an out_dir/state.pt, the run continues from it (weights, optimiser,
    weight average, grade read-out, step, learning-rate schedule, sampler and every RNG state, validation history
    and best score) with the state's config (only PER_CALL_FIELDS come from this call's config). With
    `run_budget_seconds`, this call stops before that much wall-clock time is spent, leaving state.pt for the next
    call; the schedule (config.steps) spans all calls. `run_steps` stops this call after that many steps instead. state.pt is also written every `state_every` steps (default:
    at every validation). Without a validation function, best.pt is the last step (only for smoke tests)."""
    os.makedirs(out_dir, exist_ok=True)
    state_path, saved = state_to_resume(out_dir, resume, "training")
    if saved is not None:
        config = config_to_resume(saved["config"], config, train_config_from_dict, log)
    torch.set_num_threads(config.threads)
    generator = seed_everything(config.seed)
    device = prepare_device(config.device)
    if device.type == "cuda":
        log(f"device {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    model = FundusEmbedder(config.model, with_classifier=config.loss.kind == "cross_entropy")
    if init_checkpoint and saved is None:
        log(f"init checkpoint {init_checkpoint}: {load_init_checkpoint(model, init_checkpoint)}")
    if init_whole and saved is None:
        log(f"fine-tuning the whole model from {init_whole}: {load_whole_checkpoint(model, init_whole)}")
    model.to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    grade_regressor = make_grade_regressor(config)
    parameters = list(model.parameters())
    if grade_regressor is not None:
        grade_regressor.to(device)
        parameters += list(grade_regressor.parameters())
    # The weights that are validated and saved: the moving average when ema_decay is set, else the model itself.
    averaged = copy.deepcopy(model).eval() if config.ema_decay is not None else None
    kept = averaged if averaged is not None else model
    images = images.to(device)  # uint8; the whole training set, ~200 KB per 256-px image
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    sampler = GradeBalancedBatchSampler(grades, sample_weights, config.grades_per_batch, config.images_per_grade, config.seed)
    fingerprint = data_fingerprint(grades, sample_weights)

    history: list = []
    runs: list = []
    best_score, best_step = -float("inf"), -1
    running = 0.0
    step = 0
    trained_seconds = 0.0
    if saved is not None:
        if saved["data"] != fingerprint:
            raise ValueError(f"{state_path} was trained on other data ({saved['data']}, this call has {fingerprint})")
        model.load_state_dict(saved["model_state"])
        if averaged is not None:
            averaged.load_state_dict(saved["averaged_state"])
        if grade_regressor is not None:
            grade_regressor.load_state_dict(saved["regressor_state"])
        optimizer.load_state_dict(saved["optimizer_state"])  # casts the moments back to the parameters' dtype
        restore_rng_states(saved["rng"], generator, {"sampler": sampler.rng}, device)
        step, running = saved["step"], saved["running_loss"]
        history, runs = saved["history"], saved["runs"]
        best_score, best_step = saved["best_score"], saved["best_step"]
        trained_seconds = saved["trained_seconds"]
        log(f"resumed from {state_path} at step {step}/{config.steps}" +
            (f" (compacted: {', '.join(saved['compacted'])})" if saved.get("compacted") else ""))

    def write_config() -> None:
        with open(os.path.join(out_dir, "config.json"), "w") as handle:
            json.dump(dataclasses.asdict(config), handle, indent=2)

    write_config()
    clock = CallClock(step, run_budget_seconds, run_steps)
    first_step = step
    budget = StepBudget(config.time_budget_seconds if saved is None else None, config.calibration_steps)
    state_every = state_every or config.eval_every

    def save_state() -> float:
        began = time.time()
        payload = {
            "kind": "training",
            "config": dataclasses.asdict(config),
            "data": fingerprint,
            "step": step,
            "running_loss": running,
            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "averaged_state": None if averaged is None else {k: v.detach().cpu() for k, v in averaged.state_dict().items()},
            "regressor_state": None if grade_regressor is None else {k: v.detach().cpu() for k, v in grade_regressor.state_dict().items()},
            "optimizer_state": optimizer_state_on_cpu(optimizer),
            "rng": rng_states(generator, {"sampler": sampler.rng}, device),
            "history": history,
            "runs": runs + [clock.record(step, config.device)],
            "best_score": best_score,
            "best_step": best_step,
            "trained_seconds": trained_seconds + clock.elapsed(),
        }
        save_training_state(state_path, payload, max_state_bytes)
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
            write_config()
        step_began = time.time()
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, config)
        indices = sampler.next_batch()
        batch = augment_batch(images[torch.from_numpy(indices).to(device)], generator, config.augmentation)
        batch = batch.contiguous(memory_format=memory_format)
        loss, _ = compute_loss(model, batch, torch.from_numpy(grades[indices]).long().to(device), config, grade_regressor)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if averaged is not None:
            update_ema(averaged, model, ema_decay_at(step, config.ema_decay))
        running = loss.item() if step == 0 else 0.9 * running + 0.1 * loss.item()
        step += 1
        done = step
        clock.stepped(time.time() - step_began)
        if done % config.log_every == 0 or done == config.steps:
            elapsed = clock.elapsed()
            per_step = elapsed / (done - first_step)
            eta = per_step * (config.steps - done)
            log(f"step {done}/{config.steps} loss {running:.4f} lr {learning_rate_at(done - 1, config):.2e} "
                f"{per_step:.2f}s/step elapsed {elapsed / 60:.1f}min eta {eta / 60:.1f}min")
        if validate is not None and (done % config.eval_every == 0 or done == config.steps):
            validation_began = time.time()
            summary = validate(kept)
            clock.validation_seconds = time.time() - validation_began
            score = summary[selection_metric]
            history.append({"step": done, **summary})
            improved = score > best_score
            if improved:
                best_score, best_step = score, done
                save_checkpoint(os.path.join(out_dir, "best.pt"), kept, {"step": done, "validation": summary})
            log(f"validation step {done}: " + " ".join(f"{k}={v:.3f}" for k, v in summary.items() if not k.startswith("p@10_grade"))
                + (" (best)" if improved else ""))
        if done % state_every == 0 and done < config.steps:
            clock.save_seconds = save_state()
    save_state()
    finished = step >= config.steps
    if stopped_early:
        log(f"{clock.stopped_by}: stopped at step {step}/{config.steps}, state in {state_path}")
    if finished:
        save_checkpoint(os.path.join(out_dir, "last.pt"), kept, {"step": config.steps})
        if validate is None:
            save_checkpoint(os.path.join(out_dir, "best.pt"), kept, {"step": config.steps})
            best_step = config.steps
    result = {
        "steps": config.steps,
        "step": step,
        "finished": finished,
        "device": config.device,
        "best_step": best_step,
        "best_validation": best_score,
        "wall_seconds": clock.elapsed(),
        "trained_seconds": trained_seconds + clock.elapsed(),
        "runs": runs + [clock.record(step, config.device)],
        "history": history,
    }
    with open(os.path.join(out_dir, "training.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    return result


def optimizer_state_on_cpu(optimizer: torch.optim.Optimizer) -> Dict[str, object]:
    state = optimizer.state_dict()
    return {
        "state": {i: {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in entry.items()}
                  for i, entry in state["state"].items()},
        "param_groups": state["param_groups"],
    }


def train_config_from_dict(values: Dict[str, object]) -> TrainConfig:
    """The TrainConfig a state or config.json was written from (nested dataclasses rebuilt, tuples restored)."""
    from .config import AugmentationConfig, LossConfig, ModelConfig

    values = dict(values)
    return TrainConfig(
        model=ModelConfig.from_dict(values.pop("model")),
        loss=LossConfig(**values.pop("loss")),
        augmentation=AugmentationConfig.from_dict(values.pop("augmentation")),
        **{k: v for k, v in values.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}},
    )
