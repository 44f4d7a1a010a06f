import json
import os

import numpy as np
import pytest
import torch

from fundus_cbr.checkpoint import load_checkpoint
from fundus_cbr.config import LossConfig, ModelConfig, TrainConfig
from fundus_cbr.data import make_synthetic_fundus
from fundus_cbr.evaluation import make_validator
from fundus_cbr.training import learning_rate_at, steps_within_budget, train


@pytest.mark.parametrize(
    "attention,loss", [("mirror", "fine_triplet"), ("none", "triplet"), ("none", "cross_entropy"), ("cbam", "fine_triplet")]
)
def test_a_few_training_steps_on_tiny_synthetic_images_write_a_loadable_best_checkpoint(tmp_path, attention, loss):
    images, grades = make_synthetic_fundus(20, 32, seed=0)
    patients = np.array([f"synthetic-{i // 2}" for i in range(20)])
    config = TrainConfig(
        model=ModelConfig(input_size=32, attention=attention),
        loss=LossConfig(kind=loss),
        steps=3,
        eval_every=2,
        warmup_steps=1,
        grades_per_batch=5,
        images_per_grade=2,
        threads=1,
        log_every=1,
    )
    lines = []
    result = train(config, images, grades, np.ones(20), str(tmp_path), make_validator(images, grades, patients), log=lines.append)
    assert result["best_step"] in (2, 3)
    assert any(line.startswith("step 3/3 loss") for line in lines)
    assert all(np.isfinite(entry["macro_p@10"]) for entry in result["history"])
    model = load_checkpoint(os.path.join(tmp_path, "best.pt"))
    with torch.no_grad():
        assert model(images[:2].float()).embedding.shape == (2, 128)
    with open(tmp_path / "training.json") as handle:
        assert json.load(handle)["best_step"] == result["best_step"]


def test_learning_rate_warms_up_then_decays_to_zero():
    config = TrainConfig(steps=100, warmup_steps=10, learning_rate=1.0)
    assert learning_rate_at(0, config) == pytest.approx(0.1)
    assert learning_rate_at(9, config) == pytest.approx(1.0)
    assert learning_rate_at(99, config) < 0.01


def test_a_time_budget_fixes_the_step_count_once_from_the_measured_speed_and_records_it(tmp_path):
    images, grades = make_synthetic_fundus(20, 32, seed=0)
    config = TrainConfig(
        model=ModelConfig(input_size=32, attention="none"),
        loss=LossConfig(kind="triplet"),
        steps=10_000,
        eval_every=10_000,
        warmup_steps=1,
        grades_per_batch=5,
        images_per_grade=2,
        threads=1,
        log_every=1_000,
        time_budget_seconds=0.0,  # no time at all: the run must stop right after calibration, not run 10k steps
        calibration_steps=3,
    )
    lines = []
    result = train(config, images, grades, np.ones(20), str(tmp_path), log=lines.append)
    # 3 warm-up steps (untimed) + 3 timed steps + 1: always at least one scheduled step after calibrating.
    assert result["steps"] == 7
    assert any(line.startswith("time budget 0s") and line.endswith(": 7 steps") for line in lines)
    with open(tmp_path / "config.json") as handle:
        assert json.load(handle)["steps"] == 7  # the count a rerun with --steps needs


def test_the_step_count_counts_the_time_already_spent_against_the_budget():
    # 60 steps done in 30 s of a 100 s budget at 0.1 s/step: 70 s left afford 636 more (10% kept for validation).
    assert steps_within_budget(60, 0.1, 30.0, 100.0) == 60 + 636
    assert steps_within_budget(60, 0.1, 0.0, 100.0) == 60 + 909
    assert steps_within_budget(60, 0.1, 150.0, 100.0) == 61  # over budget already: one more step, never fewer
