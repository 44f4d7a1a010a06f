import math

import pytest
import torch
from torch.nn import functional as F

from fundus_cbr.config import ModelConfig
from fundus_cbr.data import make_synthetic_fundus
from fundus_cbr.model import FundusEmbedder, load_init_checkpoint
from fundus_cbr.pretraining import PretrainConfig, nt_xent_loss, pretrain


def nt_xent_by_hand(first, second, temperature):
    views = torch.cat([first, second]).tolist()
    count = len(first)
    total = 0.0
    for i in range(2 * count):
        positive = (i + count) % (2 * count)
        sims = {j: sum(a * b for a, b in zip(views[i], views[j])) / temperature for j in range(2 * count) if j != i}
        total += -sims[positive] + math.log(sum(math.exp(v) for v in sims.values()))
    return total / (2 * count)


def test_nt_xent_matches_a_plain_loop_on_hand_made_views():
    torch.manual_seed(0)
    first = F.normalize(torch.randn(4, 3), dim=1)
    second = F.normalize(first + 0.3 * torch.randn(4, 3), dim=1)
    assert float(nt_xent_loss(first, second, 0.5)) == pytest.approx(nt_xent_by_hand(first, second, 0.5), rel=1e-5)


def test_nt_xent_is_lower_when_each_view_is_nearest_to_its_own_pair():
    matched = torch.eye(4)
    shuffled = torch.eye(4)[[1, 2, 3, 0]]
    assert nt_xent_loss(matched, matched, 0.2) < nt_xent_loss(matched, shuffled, 0.2)


def test_a_short_pretraining_writes_a_backbone_that_a_supervised_run_can_start_from(tmp_path):
    images, _ = make_synthetic_fundus(12, 32, seed=0)
    config = PretrainConfig(model=ModelConfig(input_size=32, attention="none"), batch_size=6, steps=3, warmup_steps=1,
                            threads=1, log_every=1, learning_rate=0.05)
    lines = []
    result = pretrain(config, images, str(tmp_path), log=lines.append)
    assert result["steps"] == 3 and math.isfinite(result["final_loss"])
    assert any(line.startswith("step 3/3 nt-xent") for line in lines)
    # The supervised mirror model takes the pretrained backbone: every backbone tensor loads, and it is the
    # pretrained one, not a fresh initialisation.
    target = FundusEmbedder(ModelConfig(input_size=32, attention="mirror"))
    counts = load_init_checkpoint(target, str(tmp_path / "pretrained.pt"))
    assert counts["loaded"] == counts["backbone_tensors"] > 0
    saved = torch.load(tmp_path / "pretrained.pt", map_location="cpu")["model_state"]
    name = next(k for k in saved if k.startswith("backbone.") and k.endswith("weight"))
    assert torch.equal(target.backbone.state_dict()[name[len("backbone."):]], saved[name])


def test_a_time_budget_fixes_the_pretraining_step_count_once(tmp_path):
    images, _ = make_synthetic_fundus(8, 32, seed=0)
    config = PretrainConfig(model=ModelConfig(input_size=32, attention="none"), batch_size=4, steps=10_000,
                            warmup_steps=1, threads=1, log_every=1_000, time_budget_seconds=0.0, calibration_steps=2)
    lines = []
    result = pretrain(config, images, str(tmp_path), log=lines.append)
    # 2 untimed + 2 timed steps, then one more scheduled step: no time at all was left.
    assert result["steps"] == 5
    assert any(line.startswith("time budget 0s") and line.endswith(": 5 steps") for line in lines)
