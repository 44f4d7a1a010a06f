"""Attention blocks: mirror attention (Fang et al. 2023) and CBAM (Woo et al. 2018) as the other-attention baseline.

Mirror attention after the authors' code (fjssharpsword/FundusDR, nets/MANet.py), with two of its mistakes fixed:
each mirrored branch has its OWN query/key/value/output projections (the authors' horizontal branch reused the
vertical branch's), and the views are fixed flips, never random ones, so an image always gets the same embedding.
The paper reports gains over plain triplet baselines on its own private split; no independent replication exists.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class MirrorBranch(nn.Module):
    """Cross attention from one mirrored view (queries) to the anchor view (keys, values).

    A = softmax(Q^T K / sqrt(C/2)) over the anchor's N positions; Z = V A^T; Y = W(Z) + F_anchor. W starts at zero,
    so at initialisation Y equals the anchor features and the block can only add what training finds useful.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 2, 1)
        self.inner_channels = inner
        self.query = _conv_bn_relu(channels, inner)
        self.key = _conv_bn_relu(channels, inner)
        self.value = nn.Conv2d(channels, inner, kernel_size=1)
        self.output = nn.Conv2d(inner, channels, kernel_size=1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, mirrored: torch.Tensor, anchor: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        batch, channels, height, width = anchor.shape
        query = self.query(mirrored).flatten(2)  # (B, C/2, N) mirrored-view positions
        key = self.key(anchor).flatten(2)  # (B, C/2, N) anchor positions
        value = self.value(anchor).flatten(2)  # (B, C/2, N)
        logits = torch.bmm(query.transpose(1, 2), key) / math.sqrt(self.inner_channels)  # (B, Nq, Nk)
        attention = torch.softmax(logits, dim=-1)
        mixed = torch.bmm(value, attention.transpose(1, 2))  # (B, C/2, Nq)
        mixed = mixed.reshape(batch, self.inner_channels, height, width)
        return self.output(mixed) + anchor, attention


def flip_horizontal(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=[3])


def flip_vertical(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=[2])


class MirrorAttention(nn.Module):
    """Two branches (horizontal and vertical mirror), each attending from its mirrored view to the anchor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.horizontal = MirrorBranch(channels)
        self.vertical = MirrorBranch(channels)

    def forward(
        self, anchor: torch.Tensor, horizontal: torch.Tensor, vertical: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """anchor/horizontal/vertical: backbone features (B, C, H, W) of x, hflip(x), vflip(x).

        Returns Y_h, Y_v (B, C, H, W) and the two attention matrices (B, Nq, Nk).
        """
        y_h, a_h = self.horizontal(horizontal, anchor)
        y_v, a_v = self.vertical(vertical, anchor)
        return y_h, y_v, a_h, a_v


def received_attention_map(attentions: Tuple[torch.Tensor, ...], height: int, width: int) -> torch.Tensor:
    """Heat map of the attention mass each ANCHOR position receives, averaged over branches.

    Each (B, Nq, Nk) matrix is summed over queries (each row sums to 1, so the column sums add up to Nq), averaged
    over branches and divided by Nq: a (B, H, W) map at feature resolution that sums to 1 per image.
    """
    received = torch.stack([a.sum(dim=1) for a in attentions], dim=0).mean(dim=0)  # (B, Nk)
    received = received / received.sum(dim=1, keepdim=True)
    return received.reshape(received.shape[0], height, width)


class ChannelGate(nn.Module):
    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        average = self.mlp(features.mean(dim=(2, 3)))
        maximum = self.mlp(features.amax(dim=(2, 3)))
        return features * torch.sigmoid(average + maximum)[:, :, None, None]


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018): channel gate, then a 7x7 spatial gate.

    Returns the gated features and the spatial gate (B, H, W) in (0, 1), which serves as its heat map.
    """

    def __init__(self, channels: int, reduction: int = 8, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, reduction)
        self.spatial = nn.Sequential(
            nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm2d(1)
        )

    def forward(self, features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        gated = self.channel(features)
        pooled = torch.cat([gated.mean(dim=1, keepdim=True), gated.amax(dim=1, keepdim=True)], dim=1)
        gate = torch.sigmoid(self.spatial(pooled))  # (B, 1, H, W)
        return gated * gate, gate[:, 0]
