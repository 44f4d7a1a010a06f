import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from fundus_cbr.checkpoint import load_checkpoint
from fundus_cbr.config import LossConfig, ModelConfig, TrainConfig
from fundus_cbr.data import make_synthetic_fundus
from fundus_cbr.evaluation import make_validator
from fundus_cbr.model import FundusEmbedder
from fundus_cbr.training import (
    compute_loss,
    ema_decay_at,
    learning_rate_at,
    make_grade_regressor,
    seed_everything,
    steps_within_budget,
    train,
    update_ema,
)


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


def test_the_moving_average_blends_floating_weights_and_copies_integer_buffers():
    model = torch.nn.BatchNorm1d(2)
    average = torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([3.0, 5.0]))
        average.weight.copy_(torch.tensor([1.0, 1.0]))
        model.running_mean.copy_(torch.tensor([10.0, -10.0]))
        model.num_batches_tracked.fill_(7)
    update_ema(average, model, 0.75)
    assert torch.allclose(average.weight, torch.tensor([0.75 * 1 + 0.25 * 3, 0.75 * 1 + 0.25 * 5]))
    assert torch.allclose(average.running_mean, torch.tensor([2.5, -2.5]))  # 0.75 * 0 + 0.25 * 10
    assert int(average.num_batches_tracked) == 7
    assert torch.equal(model.weight, torch.tensor([3.0, 5.0]))  # the trained weights are left alone


def test_the_averaging_weight_ramps_up_from_the_first_step_to_the_configured_decay():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)  # the first average is mostly the trained weights
    assert ema_decay_at(90, 0.999) == pytest.approx(91 / 100)
    assert ema_decay_at(100_000, 0.999) == 0.999


def test_the_grade_read_out_adds_its_weighted_smooth_l1_to_the_metric_loss():
    torch.manual_seed(0)
    images, grades = make_synthetic_fundus(10, 32, seed=0)
    labels = torch.from_numpy(grades).long()
    config = TrainConfig(model=ModelConfig(input_size=32, attention="none"),
                         loss=LossConfig(kind="triplet", grade_regression_weight=0.5))
    model = FundusEmbedder(config.model).eval()
    regressor = make_grade_regressor(config)
    with torch.no_grad():
        plain, output = compute_loss(model, images.float(), labels, config)
        combined, _ = compute_loss(model, images.float(), labels, config, regressor)
        predicted = regressor(output.embedding).squeeze(1)
    by_hand = sum(
        0.5 * (p - g) ** 2 if abs(p - g) < 1 else abs(p - g) - 0.5 for p, g in zip(predicted.tolist(), grades.tolist())
    ) / len(grades)
    assert float(combined - plain) == pytest.approx(0.5 * by_hand, rel=1e-5)
    assert make_grade_regressor(TrainConfig()) is None  # off by default: the paper's loss alone
    assert make_grade_regressor(TrainConfig(loss=LossConfig(kind="cross_entropy", grade_regression_weight=1.0))) is None


def test_a_run_with_the_moving_average_and_the_grade_read_out_saves_the_averaged_weights(tmp_path):
    images, grades = make_synthetic_fundus(20, 32, seed=0)
    patients = np.array([f"synthetic-{i // 2}" for i in range(20)])
    config = TrainConfig(
        model=ModelConfig(input_size=32, attention="mirror"),
        loss=LossConfig(kind="fine_triplet", grade_regression_weight=1.0),
        steps=4, eval_every=4, warmup_steps=1, grades_per_batch=5, images_per_grade=2, threads=1, log_every=1,
        learning_rate=0.05, ema_decay=0.999,
    )
    result = train(config, images, grades, np.ones(20), str(tmp_path), make_validator(images, grades, patients),
                   log=lambda line: None)
    assert result["best_step"] == 4
    saved = torch.load(tmp_path / "best.pt", map_location="cpu")
    assert not any(name.startswith("grade") for name in saved["model_state"])  # the read-out is not shipped
    seed_everything(config.seed)  # the initialisation both runs started from
    fresh = FundusEmbedder(config.model).state_dict()
    # Averaged weights after 4 steps are a blend: they moved away from the initialisation, but less than a plain
    # run with the same seed does.
    plain_dir = tmp_path / "plain"
    train(dataclasses.replace(config, ema_decay=None), images, grades, np.ones(20), str(plain_dir),
          make_validator(images, grades, patients), log=lambda line: None)
    plain = torch.load(plain_dir / "best.pt", map_location="cpu")["model_state"]
    name = "projection.weight"
    moved_average = (saved["model_state"][name] - fresh[name]).norm()
    moved_plain = (plain[name] - fresh[name]).norm()
    assert 0 < moved_average < moved_plain


def _resume_config(steps, **overrides):
    values = dict(
        model=ModelConfig(input_size=32, attention="mirror"),
        loss=LossConfig(kind="fine_triplet", grade_regression_weight=1.0),
        steps=steps,
        eval_every=3,
        warmup_steps=2,
        grades_per_batch=5,
        images_per_grade=2,
        threads=1,
        log_every=100,
        ema_decay=0.9,
    )
    values.update(overrides)
    return TrainConfig(**values)



def _run_calls(out, calls, total, **extra):
    """`calls` calls of the same resumable command over one schedule of `total` steps, each doing its share."""
    images, grades = make_synthetic_fundus(20, 32, seed=0)
    patients = np.array([f"synthetic-{i // 2}" for i in range(20)])
    result = None
    for _ in range(calls):
        result = train(_resume_config(total), images, grades, np.ones(20), str(out),
                       make_validator(images, grades, patients), log=lambda _: None, resume=True,
                       run_steps=total // calls, **extra)
    return result


def _weights(state):
    return {k: v.float() for k, v in state.items() if v.dtype.is_floating_point}


def test_two_resumed_calls_of_n_steps_equal_one_call_of_2n_steps(tmp_path):
    one = _run_calls(tmp_path / "one", 1, 12)
    two = _run_calls(tmp_path / "two", 2, 12)
    assert one["finished"] and two["finished"] and two["step"] == 12
    assert [(r["from_step"], r["to_step"]) for r in two["runs"]] == [(0, 6), (6, 12)]
    state_one, state_two = torch.load(tmp_path / "one" / "state.pt"), torch.load(tmp_path / "two" / "state.pt")
    for part in ("model_state", "averaged_state", "regressor_state"):
        a, b = _weights(state_one[part]), _weights(state_two[part])
        assert a.keys() == b.keys()
        for name in a:
            assert torch.allclose(a[name], b[name], atol=1e-6), (part, name)
    moments_one = state_one["optimizer_state"]["state"]
    moments_two = state_two["optimizer_state"]["state"]
    assert all(torch.allclose(moments_one[i]["exp_avg_sq"], moments_two[i]["exp_avg_sq"], atol=1e-9) for i in moments_one)
    assert [h["step"] for h in one["history"]] == [h["step"] for h in two["history"]] == [3, 6, 9, 12]
    assert [h["macro_p@10"] for h in one["history"]] == pytest.approx([h["macro_p@10"] for h in two["history"]])
    assert one["best_step"] == two["best_step"]
    # A stopped call leaves no last.pt; the finished one does.
    assert os.path.exists(tmp_path / "two" / "last.pt")


def test_a_resume_that_loses_the_sampler_state_does_not_match(tmp_path):
    """The equality above must be able to fail: the same two calls, with the sampler's state in the saved file
    replaced by a fresh generator's, end elsewhere."""
    one = _run_calls(tmp_path / "one", 1, 12)
    images, grades = make_synthetic_fundus(20, 32, seed=0)
    patients = np.array([f"synthetic-{i // 2}" for i in range(20)])
    out = tmp_path / "broken"
    train(_resume_config(12), images, grades, np.ones(20), str(out), log=lambda _: None, run_steps=6)
    state = torch.load(out / "state.pt")
    state["rng"]["sampler"] = np.random.default_rng(12345).bit_generator.state
    torch.save(state, out / "state.pt")
    train(_resume_config(12), images, grades, np.ones(20), str(out), make_validator(images, grades, patients),
          log=lambda _: None, resume=True)
    a = _weights(torch.load(tmp_path / "one" / "state.pt")["model_state"])
    b = _weights(torch.load(out / "state.pt")["model_state"])
    assert one["finished"]
    assert any(not torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_compacted_state_stays_under_its_limit_and_resumes_closely(tmp_path):
    one = _run_calls(tmp_path / "one", 1, 12)
    limit = 8 * 2**20  # the fp32 state of the width-0.25 model (~12.3 MiB) does not fit: weights fp16, exp_avg bf16
    two = _run_calls(tmp_path / "two", 2, 12, max_state_bytes=limit)
    state = torch.load(tmp_path / "two" / "state.pt")
    assert os.path.getsize(tmp_path / "two" / "state.pt") <= limit
    assert "model_state" in state["compacted"]
    assert two["finished"]
    a = _weights(torch.load(tmp_path / "one" / "state.pt")["model_state"])
    b = _weights(state["model_state"])
    # Not bit for bit (fp16 weights carried over the break), but close: the weights as a whole move by under 1%
    # of their norm, where a lost state (the test above) moves them far more.
    difference = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)).item()
    norm = torch.sqrt(sum((a[k] ** 2).sum() for k in a)).item()
    assert 0 < difference / norm < 0.01


def test_a_run_budget_stops_the_call_and_leaves_a_state_to_resume(tmp_path):
    images, grades = make_synthetic_fundus(20, 32, seed=0)
    lines = []
    result = train(_resume_config(50), images, grades, np.ones(20), str(tmp_path), log=lines.append,
                   run_budget_seconds=0.0)
    assert result["step"] == 1 and not result["finished"]  # one step, then the budget is spent
    assert any("run budget" in line for line in lines)
    assert not os.path.exists(tmp_path / "last.pt")
    result = train(_resume_config(50), images, grades, np.ones(20), str(tmp_path), log=lines.append, resume=True,
                   run_steps=4)
    assert result["step"] == 5 and any(line.startswith("resumed from") for line in lines)
    with pytest.raises(ValueError, match="other data"):
        train(_resume_config(50), images[:15], grades[:15], np.ones(15), str(tmp_path), log=lines.append, resume=True)


def test_channels_last_trains_to_the_same_weights_up_to_rounding(tmp_path):
    images, grades = make_synthetic_fundus(20, 32, seed=0)
    plain = train(_resume_config(4), images, grades, np.ones(20), str(tmp_path / "plain"), log=lambda _: None)
    nhwc = train(dataclasses.replace(_resume_config(4), channels_last=True), images, grades, np.ones(20),
                 str(tmp_path / "nhwc"), log=lambda _: None)
    assert plain["finished"] and nhwc["finished"]
    a = _weights(torch.load(tmp_path / "plain" / "state.pt")["model_state"])
    b = _weights(torch.load(tmp_path / "nhwc" / "state.pt")["model_state"])
    difference = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)).item()
    norm = torch.sqrt(sum((a[k] ** 2).sum() for k in a)).item()
    # Rounding only: on this project's machines the two layouts end 1.04e-3 of the weights' norm apart (oneDNN's
    # kernels sum in another order, and AdamW's first steps amplify that), where one training step more ends
    # 0.038 apart and another seed 1.04 (measured 2026-12-02). CI once failed at the old bound of 1e-3.
    assert difference / norm < 5e-3
