"""Metric-learning losses on L2-normalised embeddings; labels are DR grades (same grade = positive pair).

fine_triplet_loss: Fang et al. 2023's "fine triplet loss", i.e. Circle loss (Sun et al., CVPR 2020) over all
in-batch pairs whose positive terms are re-weighted by the relevance degree of the mirror branches.
batch_hard_triplet_loss: Hermans et al. 2017, the plain triplet baseline.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F


def relevance_degree(horizontal: torch.Tensor, vertical: torch.Tensor) -> torch.Tensor:
    """r_i = cos(f_i^h, f_i^v): how much the two mirror branches agree about image i. (B, C), (B, C) -> (B,)."""
    return F.cosine_similarity(horizontal, vertical, dim=1)


def relevance_weights(relevance: torch.Tensor, floor: float) -> torch.Tensor:
    """w_ij = r_j / r_i with r clamped to [floor, 1]: bounded in [floor, 1/floor], never a division by ~0 or a
    sign flip (cosine can be <= 0 when the branches disagree). (B,) -> (B, B)."""
    clamped = relevance.clamp(min=floor, max=1.0)
    return clamped[None, :] / clamped[:, None]


def _pair_masks(labels: torch.Tensor):
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def fine_triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    relevance: Optional[torch.Tensor] = None,
    margin: float = 0.25,
    gamma: float = 1.0,
    relevance_floor: float = 0.1,
) -> torch.Tensor:
    """L_i = log(1 + sum_pos exp(-gamma w_ij a_p (s_ij - (1 - m))) * sum_neg exp(gamma a_n (s_ij - m))), mean over
    anchors that have at least one positive and one negative.

    a_p = [1 + m - s]_+, a_n = [s + m]_+ and w_ij are DETACHED, as in Circle loss: they set how hard each pair is
    pushed, they are not themselves optimised (otherwise the loss could fall by changing the branch agreement
    instead of the similarities). Without relevance (models without mirror branches) w_ij = 1 and this is Circle
    loss. embeddings (B, D) L2-normalised, labels (B,), relevance (B,) or None.
    """
    similarity = embeddings @ embeddings.t()  # (B, B) cosine
    positive, negative = _pair_masks(labels)
    alpha_p = (1.0 + margin - similarity).clamp(min=0).detach()
    alpha_n = (similarity + margin).clamp(min=0).detach()
    if relevance is None:
        weights = torch.ones_like(similarity)
    else:
        weights = relevance_weights(relevance, relevance_floor).detach()
    positive_logits = -gamma * weights * alpha_p * (similarity - (1.0 - margin))
    negative_logits = gamma * alpha_n * (similarity - margin)
    minus_inf = torch.finfo(similarity.dtype).min
    positive_lse = torch.logsumexp(positive_logits.masked_fill(~positive, minus_inf), dim=1)
    negative_lse = torch.logsumexp(negative_logits.masked_fill(~negative, minus_inf), dim=1)
    valid = positive.any(dim=1) & negative.any(dim=1)
    if not bool(valid.any()):
        return similarity.sum() * 0.0
    return F.softplus(positive_lse + negative_lse)[valid].mean()


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Hardest positive and hardest negative per anchor on cosine distance d = 1 - s: mean [d_ap - d_an + m]_+."""
    distance = 1.0 - embeddings @ embeddings.t()
    positive, negative = _pair_masks(labels)
    hardest_positive = distance.masked_fill(~positive, float("-inf")).amax(dim=1)
    hardest_negative = distance.masked_fill(~negative, float("inf")).amin(dim=1)
    valid = positive.any(dim=1) & negative.any(dim=1)
    if not bool(valid.any()):
        return distance.sum() * 0.0
    return (hardest_positive - hardest_negative + margin).clamp(min=0)[valid].mean()
