"""Embedding a set of images and scoring retrieval, with the query's own patient always out of the gallery."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from . import metrics
from .data import CacheRecord, box_mask, boxes_in_crop_frame
from .model import FundusEmbedder


@torch.no_grad()
def embed_images(model: FundusEmbedder, images: torch.Tensor, batch_size: int = 32):
    """uint8 (N, 3, H, W) -> embeddings (N, D) and heat maps (N, h, w) as numpy; the model is put in eval mode."""
    model.eval()
    embeddings, maps = [], []
    for start in range(0, images.shape[0], batch_size):
        output = model(images[start : start + batch_size].float())
        embeddings.append(output.embedding.numpy())
        maps.append(output.attention.numpy())
    if not embeddings:
        return np.zeros((0, model.config.embedding_dim), np.float32), np.zeros((0, 1, 1), np.float32)
    return np.concatenate(embeddings), np.concatenate(maps)


def retrieval_within(embeddings: np.ndarray, grades: np.ndarray, patients: np.ndarray) -> Dict[str, np.ndarray]:
    """Every image queries all others of the same group (its own patient excluded)."""
    similarity = embeddings @ embeddings.T
    return metrics.per_query_retrieval(similarity, grades, patients, grades, patients)


def score_group(
    embeddings: np.ndarray, grades: np.ndarray, patients: np.ndarray, bootstrap: int = 0, seed: int = 0
) -> Dict[str, object]:
    per_query = retrieval_within(embeddings, grades, patients)
    result: Dict[str, object] = {"summary": metrics.summarise_retrieval(per_query, grades)}
    result["queries"] = int(len(grades))
    result["patients"] = int(len(np.unique(patients)))
    if bootstrap:
        result["ci95"] = metrics.bootstrap_over_patients(per_query, grades, patients, bootstrap, seed)
    return result


def score_trivial_baselines(grades: np.ndarray, patients: np.ndarray, majority_grade: int, bootstrap: int, seed: int = 0):
    out = {}
    for name, similarity in (
        ("random_ranking", metrics.random_similarity(len(grades), len(grades), seed)),
        ("always_majority", metrics.majority_similarity(len(grades), grades, majority_grade, seed)),
    ):
        per_query = metrics.per_query_retrieval(similarity, grades, patients, grades, patients)
        if name == "always_majority":
            per_query["knn_grade"] = np.full(len(grades), majority_grade)
        entry = {"summary": metrics.summarise_retrieval(per_query, grades)}
        if bootstrap:
            entry["ci95"] = metrics.bootstrap_over_patients(per_query, grades, patients, bootstrap, seed)
        out[name] = entry
    return out


def lesion_ratios(
    heat_maps: np.ndarray,
    records: Sequence[CacheRecord],
    boxes_by_image: Dict[str, List[tuple]],
    size: int,
) -> np.ndarray:
    """Per lesion image: heat-map mass inside haemorrhage/exudate boxes / the boxes' area share (1.0 = uniform).
    Maps are bilinearly upsampled from feature resolution to the crop size; images without boxes are skipped."""
    ratios = []
    for heat_map, record in zip(heat_maps, records):
        boxes = boxes_in_crop_frame(boxes_by_image.get(record.image, []), record, size)
        if not boxes:
            continue
        upsampled = F.interpolate(torch.from_numpy(heat_map)[None, None].float(), size=(size, size), mode="bilinear", align_corners=False)
        ratio = metrics.lesion_mass_ratio(upsampled[0, 0].clamp(min=0).numpy(), box_mask(boxes, size))
        if np.isfinite(ratio):
            ratios.append(ratio)
    return np.asarray(ratios)


def bootstrap_mean(values: np.ndarray, resamples: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(resamples)]
    return float(values.mean()), (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def make_validator(images: torch.Tensor, grades: np.ndarray, patients: np.ndarray):
    """Validation for model selection: retrieval among validation patients' photographs (no bootstrap)."""

    def validate(model: FundusEmbedder) -> Dict[str, float]:
        embeddings, _ = embed_images(model, images)
        return metrics.summarise_retrieval(retrieval_within(embeddings, grades, patients), grades)

    return validate
