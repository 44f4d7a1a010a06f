"""Checkpoint files: the model's config travels with its weights, so evaluation and export rebuild it exactly."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

import torch

from .config import ModelConfig
from .model import FundusEmbedder


def save_checkpoint(path: str, model: FundusEmbedder, extra: Optional[Dict[str, Any]] = None) -> None:
    torch.save(
        {
            "model_config": dataclasses.asdict(model.config),
            "with_classifier": model.classifier is not None,
            # CPU copies: a checkpoint written on a GPU loads anywhere, including torch 1.13 on a CPU-only machine.
            "model_state": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
            "extra": extra or {},
        },
        path,
    )


def load_checkpoint(path: str) -> FundusEmbedder:
    payload = torch.load(path, map_location="cpu")
    model = FundusEmbedder(ModelConfig.from_dict(payload["model_config"]), with_classifier=payload["with_classifier"])
    model.load_state_dict(payload["model_state"])
    model.eval()
    return model


def read_checkpoint_extra(path: str) -> Dict[str, Any]:
    return torch.load(path, map_location="cpu").get("extra", {})
