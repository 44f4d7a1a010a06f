"""Embedding network: in-model input normalisation, a torchvision ResNet backbone, attention, GeM, 128-d embedding.

The model knows nothing about training: forward() returns everything a loss or an exporter may need.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, conv1x1

from .attention import CBAM, MirrorAttention, flip_horizontal, flip_vertical, received_attention_map
from .config import ModelConfig


class LocalContrastNormalisation(nn.Module):
    """Graham's preprocessing as a fixed layer: (x - local mean) * 4 inside the fundus, 0 outside.

    The local mean is a normalised convolution, blur(x * mask) / blur(mask), so the black border around the fundus
    does not darken the rim. Input (B, 3, H, W) RGB 0-255, output roughly in [-1, 1].
    """

    def __init__(self, image_size: int, sigma_fraction: float) -> None:
        super().__init__()
        sigma = max(image_size * sigma_fraction, 0.5)
        radius = int(math.ceil(3 * sigma))
        positions = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(positions**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        self.radius = radius
        # Depthwise separable Gaussian over 4 channels (RGB and the fundus mask).
        self.register_buffer("kernel_x", kernel.view(1, 1, 1, -1).repeat(4, 1, 1, 1), persistent=False)
        self.register_buffer("kernel_y", kernel.view(1, 1, -1, 1).repeat(4, 1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Fundus pixels: anything brighter than near-black padding (the cache pads with exact 0).
        mask = (images.mean(dim=1, keepdim=True) > 8.0).to(images.dtype)
        stacked = torch.cat([images * mask, mask], dim=1)
        blurred = F.conv2d(stacked, self.kernel_x, padding=(0, self.radius), groups=4)
        blurred = F.conv2d(blurred, self.kernel_y, padding=(self.radius, 0), groups=4)
        local_mean = blurred[:, :3] / blurred[:, 3:].clamp(min=1e-3)
        return (images - local_mean) * mask * (4.0 / 255.0)


class ImageNetNormalisation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class ResNetBackbone(nn.Module):
    """torchvision's ResNet-18 topology (BasicBlock, [2, 2, 2, 2]) with a width multiplier and optional truncation.

    Parameter names match torchvision.models.resnet18, so width 1.0 with 4 stages loads its state dict.
    """

    def __init__(self, width: float = 1.0, stages: int = 4) -> None:
        super().__init__()
        if not 1 <= stages <= 4:
            raise ValueError("backbone_stages must be 1..4")
        widths = [max(int(round(64 * width * multiple)), 8) for multiple in (1, 2, 4, 8)][:stages]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = widths[0]
        for index, channels in enumerate(widths):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or in_channels != channels:
                downsample = nn.Sequential(conv1x1(in_channels, channels, stride), nn.BatchNorm2d(channels))
            layer = nn.Sequential(BasicBlock(in_channels, channels, stride, downsample), BasicBlock(channels, channels))
            self.add_module(f"layer{index + 1}", layer)
            in_channels = channels
        self.out_channels = in_channels
        self.stride = 4 * 2 ** (stages - 1)
        self.stages = stages
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each residual branch (Goyal et al. 2017): each block starts as identity.
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        for index in range(self.stages):
            features = getattr(self, f"layer{index + 1}")(features)
        return features


class GeM(nn.Module):
    """Generalised-mean pooling (Radenovic et al., TPAMI 2018) with a learnable exponent p."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return features.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)  # (B, C)


@dataclass
class EmbedderOutput:
    embedding: torch.Tensor  # (B, D) L2-normalised
    attention: torch.Tensor  # (B, h, w) heat map at feature resolution, sums to 1 per image
    logits: Optional[torch.Tensor] = None  # (B, num_classes) only with a classifier head
    horizontal_descriptor: Optional[torch.Tensor] = None  # (B, C) GeM(Y_h), mirror attention only
    vertical_descriptor: Optional[torch.Tensor] = None  # (B, C) GeM(Y_v)
    branch_attention: Optional[List[torch.Tensor]] = None  # [(B, N, N)] per mirror branch
    feature_map: Optional[torch.Tensor] = None  # (B, C, h, w) what GeM pools (mirror: [Y_h, Y_v] on channels)


def activation_norm_map(features: torch.Tensor) -> torch.Tensor:
    """Grad-CAM-free heat map for models without attention: per-position L2 norm of the features, sums to 1."""
    norms = features.pow(2).sum(dim=1).sqrt()  # (B, H, W)
    return norms / norms.flatten(1).sum(dim=1).clamp(min=1e-12)[:, None, None]


class FundusEmbedder(nn.Module):
    def __init__(self, config: ModelConfig, with_classifier: bool = False) -> None:
        super().__init__()
        self.config = config
        if config.input_normalisation == "local_contrast":
            self.normalise = LocalContrastNormalisation(config.input_size, config.local_contrast_sigma)
        else:
            self.normalise = ImageNetNormalisation()
        self.backbone = ResNetBackbone(config.backbone_width, config.backbone_stages)
        channels = self.backbone.out_channels
        self.mirror: Optional[MirrorAttention] = None
        self.cbam: Optional[CBAM] = None
        if config.attention == "mirror":
            self.mirror = MirrorAttention(channels)
            descriptor_channels = 2 * channels  # concatenation of GeM(Y_h) and GeM(Y_v)
        elif config.attention == "cbam":
            self.cbam = CBAM(channels)
            descriptor_channels = channels
        elif config.attention == "none":
            descriptor_channels = channels
        else:
            raise ValueError(f"unknown attention {config.attention!r}")
        self.pool = GeM(config.gem_p)
        self.projection = nn.Linear(descriptor_channels, config.embedding_dim)
        self.classifier = nn.Linear(config.embedding_dim, config.num_classes) if with_classifier else None

    def forward(self, images: torch.Tensor) -> EmbedderOutput:
        """images: (B, 3, H, W) float RGB 0-255."""
        normalised = self.normalise(images)
        extras: Dict[str, object] = {}
        if self.mirror is not None:
            batch = normalised.shape[0]
            # One backbone call over the three fixed views: x, horizontal mirror, vertical mirror.
            views = torch.cat([normalised, flip_horizontal(normalised), flip_vertical(normalised)], dim=0)
            features = self.backbone(views)
            anchor, horizontal, vertical = features[:batch], features[batch : 2 * batch], features[2 * batch :]
            y_h, y_v, a_h, a_v = self.mirror(anchor, horizontal, vertical)
            descriptor_h, descriptor_v = self.pool(y_h), self.pool(y_v)
            descriptor = torch.cat([descriptor_h, descriptor_v], dim=1)
            heat_map = received_attention_map((a_h, a_v), anchor.shape[2], anchor.shape[3])
            extras = dict(horizontal_descriptor=descriptor_h, vertical_descriptor=descriptor_v, branch_attention=[a_h, a_v],
                          feature_map=torch.cat([y_h, y_v], dim=1))
        else:
            features = self.backbone(normalised)
            if self.cbam is not None:
                features, gate = self.cbam(features)
                heat_map = gate / gate.flatten(1).sum(dim=1).clamp(min=1e-12)[:, None, None]
            else:
                heat_map = activation_norm_map(features)
            descriptor = self.pool(features)
            extras = dict(feature_map=features)
        projected = self.projection(descriptor)
        embedding = F.normalize(projected, dim=1)
        logits = self.classifier(projected) if self.classifier is not None else None
        return EmbedderOutput(embedding=embedding, attention=heat_map, logits=logits, **extras)


def load_init_checkpoint(model: FundusEmbedder, path: str) -> Dict[str, int]:
    """Load a torchvision ResNet .pth (or a checkpoint saved by this project) into the backbone.

    Every backbone tensor must be found with its shape, or ValueError: a checkpoint of another width or depth
    would otherwise load only its shape-free counters and leave a random network that looks initialised.
    Tensors the backbone lacks (torchvision's fc) are skipped. Returns counts of loaded and skipped tensors so
    the caller can report them; no weights are downloaded.
    """
    state = torch.load(path, map_location="cpu")
    if isinstance(state, dict) and "model_state" in state:
        state = {k[len("backbone."):]: v for k, v in state["model_state"].items() if k.startswith("backbone.")}
    own = model.backbone.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in matched]
    if missing:
        mismatched = next((k for k in missing if k in state), None)
        detail = (f"{mismatched} is {tuple(state[mismatched].shape)} there, {tuple(own[mismatched].shape)} here"
                  if mismatched else f"{missing[0]} is not in it")
        raise ValueError(
            f"{path} fits {len(own) - len(missing)} of the backbone's {len(own)} tensors ({detail}). A torchvision "
            "resnet18 file needs --width 1 --stages 4 (and usually --input-normalisation imagenet); a pretrain_ssl.py "
            "checkpoint needs the width and stages it was pretrained with."
        )
    model.backbone.load_state_dict(matched, strict=True)
    return {"loaded": len(matched), "skipped": len(state) - len(matched), "backbone_tensors": len(own)}


def load_whole_checkpoint(model: FundusEmbedder, path: str) -> Dict[str, int]:
    """Load every tensor of a checkpoint of this project into a model of the same architecture (to fine-tune a
    trained model, e.g. the shipped one rebuilt by scripts/onnx_to_checkpoint.py). Strict: a checkpoint of another
    architecture or input size is refused, never partly loaded."""
    payload = torch.load(path, map_location="cpu")
    if not (isinstance(payload, dict) and "model_state" in payload):
        raise ValueError(f"{path} is not a checkpoint of this project (no model_state)")
    state = {k: v for k, v in payload["model_state"].items() if not k.startswith("classifier.")}
    own = model.state_dict()
    wrong = [k for k in own if not k.startswith("classifier.") and (k not in state or state[k].shape != own[k].shape)]
    extra = [k for k in state if k not in own]
    if wrong or extra:
        raise ValueError(f"{path} does not fit this model: {(wrong or extra)[0]} "
                         f"({len(wrong)} tensors missing or of another shape, {len(extra)} unknown)")
    model.load_state_dict(state, strict=model.classifier is None)
    return {"loaded": len(state)}
