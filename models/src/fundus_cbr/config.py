"""Configuration dataclasses. Every default says why it is what it is; scripts only override them from argparse."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal, Optional, Tuple

AttentionKind = Literal["mirror", "cbam", "none"]
LossKind = Literal["fine_triplet", "triplet", "cross_entropy"]


@dataclass
class ModelConfig:
    # Input side length in pixels. The product's preprocessing (npm run build-cache) writes 256x256 crops of the
    # fundus disc; lesions are already only a few pixels wide here, so going lower loses them.
    input_size: int = 256
    # 128 dims: a pgvector HNSW index over 1M cases is ~0.5 GB of float32 at 128 dims (2 GB at 512) and cosine
    # search cost grows linearly with the dimension, while the label space is 5 ordinal grades plus appearance;
    # 128 leaves ample room for within-grade similarity. Fixed by models/contract.json.
    embedding_dim: int = 128
    # ResNet-18 topology from torchvision's BasicBlock. width 1.0 + 4 stages is exactly torchvision's resnet18
    # (state-dict compatible, so --init-checkpoint can load a pretrained file). The CPU default is a quarter-width
    # network: three views per image must embed in <= 30 ms on one core, and it must train in ~30 min on 2 cores.
    backbone_width: float = 0.25
    backbone_stages: int = 4
    # "mirror": Fang et al.'s mirror attention (three views through one shared backbone); "cbam": CBAM
    # (Woo et al. 2018) on the anchor view only; "none": GeM pooling of the backbone features only.
    attention: AttentionKind = "mirror"
    # Graham's local-contrast normalisation (Kaggle DR 2015 winner): subtract a Gaussian-blurred local mean inside
    # the fundus. It makes camera photographs and the colour-enhanced eyepacs-processed set look alike; done inside
    # the model so the ONNX input stays raw 0-255 RGB (contract). "imagenet" = mean/std normalisation instead.
    input_normalisation: Literal["local_contrast", "imagenet"] = "local_contrast"
    # Blur sigma as a fraction of the image side (Graham used radius/30, i.e. side/60).
    local_contrast_sigma: float = 1.0 / 60.0
    # GeM exponent start value (Radenovic et al. 2018): 3 sits between average (1) and max pooling, learnable.
    gem_p: float = 3.0
    # Number of grades for the cross-entropy baseline's classifier head.
    num_classes: int = 5

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_dict(values: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(ModelConfig)}
        return ModelConfig(**{k: v for k, v in values.items() if k in names})


@dataclass
class AugmentationConfig:
    """data.augment_batch's random warp and colour jitter; the defaults are supervised training's. No flip ever:
    a horizontal flip turns a left eye into a right one (optic disc on the other side), and the mirror views are
    the model's own job. Small rotations (the camera is roughly level), mild scale/shift, and colour jitter
    (cameras and flash vary)."""

    rotation_degrees: float = 10.0
    scale_range: Tuple[float, float] = (0.95, 1.08)
    translate_fraction: float = 0.03
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.15

    @staticmethod
    def from_dict(values: dict) -> "AugmentationConfig":
        """As written to a state or config.json (JSON turns the scale range into a list)."""
        return AugmentationConfig(**{**values, "scale_range": tuple(values["scale_range"])})


@dataclass
class LossConfig:
    kind: LossKind = "fine_triplet"
    # Circle-loss margin m and scale gamma as given for the fine triplet loss (Fang et al. 2023: m = 0.25, gamma = 1).
    margin: float = 0.25
    gamma: float = 1.0
    # Relevance degrees r = cos(f_h, f_v) are clamped to [relevance_floor, 1] before w_ij = r_j / r_i, so a weight
    # is bounded by 1/relevance_floor and never divides by ~0 or flips sign when the two branches disagree.
    relevance_floor: float = 0.1
    # Batch-hard triplet baseline (Hermans et al. 2017): margin on cosine distance 1 - s.
    triplet_margin: float = 0.2
    # Not in the paper: an auxiliary ordinal term for the metric losses. A linear read-out of the embedding regresses
    # the grade (smooth L1, grades as numbers 0-4), added with this weight. Pair losses treat grade 1 vs 4 like
    # grade 1 vs 2; the read-out gives the embedding a direction along which grades are ordered, which is what a
    # k-NN vote scored by quadratic weighted kappa rewards. The read-out is a training device only: it is not part
    # of the checkpoint or the ONNX model. 0 = the paper's loss alone.
    grade_regression_weight: float = 0.0


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    seed: int = 0
    # Grade-balanced batches: P grades x K images. All 5 grades in every batch, so every anchor has positives and
    # negatives and the rare grades 3/4 (about 6% of images) are seen as often as grade 0.
    grades_per_batch: int = 5
    images_per_grade: int = 6
    # Within a grade, photographs as taken (srahim, eyepacs-raw) are drawn this many times more often than
    # eyepacs-processed images: the product sees camera photographs, and the processed set is 3x larger.
    as_taken_weight: float = 2.0
    # 300 steps x 30 images (~3 epochs): what finished in ~45 min on 2 CPU cores shared with other builds for the
    # shipped model. Far too short to learn DR grading (see MODEL_CARD.md); a GPU run should use tens of epochs.
    steps: int = 300
    # AdamW with a short warm-up and cosine decay: from-scratch training on a fixed step budget.
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    # Validation (for model selection only) every this many steps; the best validation score is kept.
    eval_every: int = 60
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    # Intra-op threads: the machine has 2 cores shared with other builds.
    threads: int = 2
    # "cpu" or "cuda" (or "cuda:N"). On CUDA the whole training set lives on the GPU as uint8 and augmentation runs
    # there too, so the data path never starves the GPU; TF32 matmuls/convolutions are allowed (fp32 weights).
    device: str = "cpu"
    # Optional wall-clock budget in seconds. After `calibration_steps` steps the measured speed fixes the step count
    # (at most `steps`) once, so the cosine schedule still decays to zero inside the budget; the step count actually
    # used is written to config.json/training.json, so a run can be repeated exactly with --steps.
    time_budget_seconds: Optional[float] = None
    calibration_steps: int = 40
    # Split by hashed patient id: fractions of patients. Test patients are only used for the published figures.
    test_fraction: float = 0.2
    validation_fraction: float = 0.15
    log_every: int = 10
    # Exponential moving average of the weights (Polyak averaging), e.g. 0.999. Validation, best.pt and last.pt then
    # use the averaged weights: a from-scratch run on ~3000 images is noisy from step to step, and the validation
    # set (86 patients) picks among noisy checkpoints. The effective decay ramps up as min(d, (1+t)/(10+t)), so the
    # average does not remember the random initialisation. None = plain weights.
    ema_decay: Optional[float] = None
    # NHWC memory format for the model and each batch. On this CPU (torch 1.13, oneDNN) it cut the CPU work of a
    # 384-px step of the shipped recipe by 1.46x (1.05x at 256 px; models/results/cpu-training-speed.md). Not
    # measured on a GPU yet, so off by default. It changes no result beyond float rounding.
    channels_last: bool = False
