"""Checkpoint files: the model's config travels with its weights, so evaluation and export rebuild it exactly."""
from __future__ import annotations

import dataclasses
import os
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


# Training state: everything a run needs to continue where the last one stopped (weights, optimiser, weight
# average, grade read-out, step, schedule, sampler and RNG states, validation history), in one file that stays
# under MAX_STATE_BYTES (a lent GPU machine sends back 64 MiB per call; the issue caps a committed checkpoint at
# 16 MiB). Floating tensors are stored in fp32 while that fits; otherwise they are compacted in a fixed order, each
# step only when still needed: the weight average and the weights to fp16, then Adam's moments to bfloat16 (its
# second moment, ~1e-8 for small gradients, underflows fp16 but not bfloat16's fp32 exponent range). A compacted
# state resumes closely, not bit for bit. Nothing that can be rebuilt is stored (the model is rebuilt from its
# config; integer BatchNorm counters are kept, they are tiny).
MAX_STATE_BYTES = 16 * 2**20
STATE_FORMAT = 1


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _cast(state: Dict[str, Any], dtype: torch.dtype) -> Dict[str, Any]:
    return {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.dtype.is_floating_point else v for k, v in state.items()}


def _cast_moments(optimizer_state: Dict[str, Any], key: str, dtype: torch.dtype) -> Dict[str, Any]:
    per_parameter = {
        index: {k: (v.to(dtype) if k == key and isinstance(v, torch.Tensor) else v) for k, v in entry.items()}
        for index, entry in optimizer_state["state"].items()
    }
    return {**optimizer_state, "state": per_parameter}


def compact_training_state(payload: Dict[str, Any], max_bytes: int = MAX_STATE_BYTES) -> Dict[str, Any]:
    """The payload with floating tensors narrowed, step by step, until the tensors fit in max_bytes (less a 256 KiB
    allowance for the pickled rest). Records what was narrowed under "compacted". ValueError if even the last step
    does not fit: the model is then too large for one state file, which must be said, not silently truncated."""
    budget = max_bytes - 256 * 1024
    steps = [
        ("averaged_state", lambda p: {**p, "averaged_state": _cast(p["averaged_state"], torch.float16)}),
        ("model_state", lambda p: {**p, "model_state": _cast(p["model_state"], torch.float16)}),
        ("optimizer.exp_avg", lambda p: {**p, "optimizer_state": _cast_moments(p["optimizer_state"], "exp_avg", torch.bfloat16)}),
        ("optimizer.exp_avg_sq", lambda p: {**p, "optimizer_state": _cast_moments(p["optimizer_state"], "exp_avg_sq", torch.bfloat16)}),
    ]
    compacted = []
    for name, narrow in steps:
        if _tensor_bytes(payload) <= budget:
            break
        if name == "averaged_state" and payload.get("averaged_state") is None:
            continue
        payload = narrow(payload)
        compacted.append(name)
    if _tensor_bytes(payload) > budget:
        raise ValueError(f"training state is {_tensor_bytes(payload) / 2**20:.1f} MiB of tensors even compacted; "
                         f"the limit is {max_bytes / 2**20:.0f} MiB")
    return {**payload, "compacted": compacted}


def save_training_state(path: str, payload: Dict[str, Any], max_bytes: int = MAX_STATE_BYTES) -> Dict[str, Any]:
    """Writes the state atomically (a crash mid-write leaves the previous state) and returns what was written."""
    payload = compact_training_state({**payload, "format": STATE_FORMAT}, max_bytes)
    temporary = path + ".tmp"
    torch.save(payload, temporary)
    os.replace(temporary, path)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ValueError(f"{path} is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB limit")
    return payload


def load_training_state(path: str) -> Dict[str, Any]:
    payload = torch.load(path, map_location="cpu")
    if payload.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a training state of format {STATE_FORMAT}")
    return payload
