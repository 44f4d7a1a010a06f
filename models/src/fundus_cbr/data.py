"""Data: the product's preprocessed PNG cache, patient-level splits, grade-balanced batches, augmentation,
lesion boxes in the crop frame, and tiny synthetic fundus images for tests.

The cache is written by the TypeScript preprocessing (`npm run build-cache`): `<cache>/index.csv` with
cache_path,source_set,image,patient_id,eye,grade,orig_width,orig_height,crop_x,crop_y,crop_side. crop_* is the
square in ORIGINAL pixels that was resized to the cache size (it may extend beyond the image: black padding).
`eye` is blank for sets that do not publish laterality (aptos, idrid): training never needs an eye. A packed
cache (models/scripts/pack_cache.py) adds a `split_key` column (see `link_lesion_copies`).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional as F

from .config import AugmentationConfig

# Graded photographs as a camera produced them (aptos was resized to 224 px without keeping the aspect ratio, but
# not colour-processed): validation, the case base and the reported groups. Each is reported separately.
AS_TAKEN_SETS = ("srahim", "eyepacs-raw", "aptos", "idrid")
# Photographs as taken, used for training only: the Mexican set has grades 0 and 4 alone (unstaged NPDR was left
# out), so it would make a lopsided benchmark (../shared/data/README.md: "training material more than a benchmark").
TRAINING_ONLY_SETS = ("mexico",)
GRADED_SETS = AS_TAKEN_SETS + ("eyepacs-processed",) + TRAINING_ONLY_SETS
LESION_SET = "lesions"
# The set whose photographs reappear in LESION_SET (most IDRiD photographs are also there, with boxes).
LESION_TWIN_SET = "idrid"
LESION_LABELS = ("haemorrhage", "hard_exudates")


@dataclass(frozen=True)
class CacheRecord:
    cache_path: str
    source_set: str
    image: str
    patient_id: str
    eye: str
    grade: int  # -1 for the ungraded lesion set
    orig_width: int
    orig_height: int
    crop_x: float
    crop_y: float
    crop_side: float
    # The id the split is drawn from: the patient id, except for a lesion-set image that is a copy of an IDRiD
    # photograph, which takes that photograph's patient id so that both copies land on the same side.
    split_key: str = ""

    @property
    def split_id(self) -> str:
        return self.split_key or self.patient_id


def read_cache_index(cache_dir: str, link_copies: bool = True) -> List[CacheRecord]:
    """The cache's index. With `link_copies`, lesion-set images that are copies of IDRiD photographs get that
    photograph's patient id as split key (from the index's `split_key` column when it has one, e.g. a packed cache,
    else by matching the cached crops, `link_lesion_copies`)."""
    records = []
    has_split_key = False
    with open(os.path.join(cache_dir, "index.csv"), newline="") as handle:
        reader = csv.DictReader(handle)
        has_split_key = "split_key" in (reader.fieldnames or [])
        for row in reader:
            records.append(
                CacheRecord(
                    cache_path=row["cache_path"],
                    source_set=row["source_set"],
                    image=row["image"],
                    patient_id=row["patient_id"],
                    eye=row["eye"],
                    grade=int(row["grade"]) if row["grade"] not in ("", None) else -1,
                    orig_width=int(float(row["orig_width"])),
                    orig_height=int(float(row["orig_height"])),
                    crop_x=float(row["crop_x"]),
                    crop_y=float(row["crop_y"]),
                    crop_side=float(row["crop_side"]),
                    split_key=row.get("split_key") or "",
                )
            )
    if link_copies and not has_split_key:
        links = link_lesion_copies(records, cache_dir)
        records = [dataclasses.replace(r, split_key=links[r.patient_id]) if r.patient_id in links else r for r in records]
    return records


def crop_fingerprint(path: str, side: int = 32) -> np.ndarray:
    """A cached crop as a small high-passed thumbnail of its centre (green channel, the inner 60% of the crop, minus
    a Gaussian blur), zero mean and unit norm. The centre leaves out the round rim and black border that every
    fundus crop shares; the high pass leaves the vessels, disc and lesions. Two copies of one photograph (IDRiD at
    800 px and the lesion set at 1024 px, each cropped by the same preprocessing) correlate at >= 0.97 on the real
    cache, two different eyes at <= 0.9 (measured on the 256-px cache: 129 of the 150 lesion images at >= 0.97,
    no runner-up above 0.90)."""
    from PIL import Image, ImageFilter

    with Image.open(path) as image:
        green = image.convert("RGB").split()[1]
        margin = int(green.size[0] * 0.2)
        green = green.crop((margin, margin, green.size[0] - margin, green.size[1] - margin)).resize((side, side), Image.BILINEAR)
    values = np.asarray(green, dtype=np.float64)
    blurred = np.asarray(green.filter(ImageFilter.GaussianBlur(side / 8)), dtype=np.float64)
    detail = (values - blurred).ravel()
    detail = detail - detail.mean()
    norm = np.linalg.norm(detail)
    return detail / norm if norm > 0 else detail


def link_lesion_copies(
    records: Sequence[CacheRecord], cache_dir: str, min_correlation: float = 0.95, min_margin: float = 0.05
) -> Dict[str, str]:
    """lesion-set patient id -> IDRiD patient id, for each lesion image whose crop is a copy of an IDRiD
    photograph's crop: the best-correlated IDRiD crop, when the correlation is at least `min_correlation` and
    beats the runner-up by `min_margin` (DIARETDB1 images in the lesion set match nothing). Empty when the cache
    lacks either set."""
    lesions = [r for r in records if r.source_set == LESION_SET]
    twins = [r for r in records if r.source_set == LESION_TWIN_SET]
    if not lesions or not twins:
        return {}
    twin_prints = np.stack([crop_fingerprint(os.path.join(cache_dir, r.cache_path)) for r in twins])
    links: Dict[str, str] = {}
    for record in lesions:
        correlation = twin_prints @ crop_fingerprint(os.path.join(cache_dir, record.cache_path))
        order = np.argsort(-correlation)
        best = correlation[order[0]]
        runner_up = correlation[order[1]] if len(order) > 1 else -1.0
        if best >= min_correlation and best - runner_up >= min_margin:
            links[record.patient_id] = twins[order[0]].patient_id
    return links


def split_of_patient(patient_id: str, test_fraction: float, validation_fraction: float) -> str:
    """Deterministic split from a hash of the patient id alone: the same EyePACS patient (eyepacs-raw and
    eyepacs-processed share `eyepacs-<n>`) always lands on the same side, in every set and on every machine."""
    digest = hashlib.sha256(patient_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64  # uniform in [0, 1)
    if position < test_fraction:
        return "test"
    if position < test_fraction + validation_fraction:
        return "validation"
    return "train"


def split_of_record(record: CacheRecord, test_fraction: float, validation_fraction: float) -> str:
    """The split of a cached image: its patient's, or for a lesion-set copy of an IDRiD photograph, that photograph's."""
    return split_of_patient(record.split_id, test_fraction, validation_fraction)


def select_records(
    records: Sequence[CacheRecord], split: str, sets: Sequence[str], test_fraction: float, validation_fraction: float
) -> List[CacheRecord]:
    return [
        r
        for r in records
        if r.source_set in sets and r.grade >= 0 and split_of_record(r, test_fraction, validation_fraction) == split
    ]


def select_pretraining_records(
    records: Sequence[CacheRecord], test_fraction: float, validation_fraction: float
) -> List[CacheRecord]:
    """Every fundus image self-supervised pretraining may see, grades unused: each graded set's images of TRAINING
    patients (eyepacs-processed included), and the lesion-set images that are copies of a training patient's IDRiD
    photograph (their split key, link_lesion_copies). Never a validation or test patient's image, and never a
    lesion image without an IDRiD twin (DIARETDB1): those and the copies of test patients' photographs are the
    held-out lesion images that score the heat maps (evaluate.py --lesion-split held-out)."""
    chosen = []
    for record in records:
        if record.source_set in GRADED_SETS:
            split = split_of_record(record, test_fraction, validation_fraction)
        elif record.source_set == LESION_SET and record.split_key:
            split = split_of_patient(record.split_key, test_fraction, validation_fraction)
        else:
            continue
        if split == "train":
            chosen.append(record)
    return chosen


def load_images(records: Sequence[CacheRecord], cache_dir: str, size: Optional[int] = None) -> torch.Tensor:
    """All images as one uint8 tensor (N, 3, H, W); ~200 KB per 256 px image, so the whole cache fits in memory."""
    from PIL import Image

    arrays = []
    for record in records:
        with Image.open(os.path.join(cache_dir, record.cache_path)) as image:
            image = image.convert("RGB")
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            arrays.append(np.asarray(image, dtype=np.uint8))
    if not arrays:
        return torch.zeros((0, 3, size or 0, size or 0), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class GradeBalancedBatchSampler:
    """Batches of P grades x K images. Within a grade, image i is drawn with probability proportional to
    weights[i] (with replacement across batches, without replacement inside one batch where possible)."""

    def __init__(self, grades: np.ndarray, weights: np.ndarray, grades_per_batch: int, images_per_grade: int, seed: int):
        self.grades = np.asarray(grades)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.grades_per_batch = grades_per_batch
        self.images_per_grade = images_per_grade
        self.rng = np.random.default_rng(seed)
        self.by_grade = {g: np.flatnonzero(self.grades == g) for g in np.unique(self.grades)}
        if len(self.by_grade) < 2:
            raise ValueError("need at least two grades for metric learning")

    def next_batch(self) -> np.ndarray:
        available = sorted(self.by_grade)
        chosen = self.rng.choice(available, size=min(self.grades_per_batch, len(available)), replace=False)
        batch = []
        for grade in chosen:
            members = self.by_grade[grade]
            probabilities = self.weights[members] / self.weights[members].sum()
            replace = len(members) < self.images_per_grade
            batch.append(self.rng.choice(members, size=self.images_per_grade, replace=replace, p=probabilities))
        return np.concatenate(batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield self.next_batch()


def augment_batch(images: torch.Tensor, generator: torch.Generator, augmentation: AugmentationConfig) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 RGB 0-255. Batched affine warp (rotation, scale, shift) and colour jitter.

    No flips: a horizontal flip turns a left eye into a right eye, and the mirror views are the model's own job.
    """
    batch = images.shape[0]
    device = images.device
    x = images.float()

    def uniform(*shape: int) -> torch.Tensor:
        # Random parameters come from the CPU generator whatever the device, so a seed gives the same augmentation
        # on CPU and GPU (a few numbers per image; copying them to the GPU costs nothing).
        return torch.rand(*shape, generator=generator).to(device)

    angle = (uniform(batch) * 2 - 1) * math.radians(augmentation.rotation_degrees)
    smallest, largest = augmentation.scale_range
    scale = smallest + uniform(batch) * (largest - smallest)
    shift = (uniform(batch, 2) * 2 - 1) * augmentation.translate_fraction * 2  # grid units span 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    fundus = (x.mean(dim=1, keepdim=True) > 8.0).float()
    gain = 1 + (uniform(batch, 1, 1, 1) * 2 - 1) * augmentation.brightness
    x = x * gain
    contrast_factor = 1 + (uniform(batch, 1, 1, 1) * 2 - 1) * augmentation.contrast
    mean = (x * fundus).sum(dim=(1, 2, 3), keepdim=True) / (3 * fundus.sum(dim=(1, 2, 3), keepdim=True)).clamp(min=1)
    x = (x - mean) * contrast_factor + mean
    saturation_factor = 1 + (uniform(batch, 1, 1, 1) * 2 - 1) * augmentation.saturation
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * saturation_factor + grey
    # Keep the padding exactly black so the in-model fundus mask still finds it.
    return (x * fundus).clamp(0, 255)


def boxes_in_crop_frame(
    boxes: Sequence[Tuple[float, float, float, float]], record: CacheRecord, size: int
) -> List[Tuple[float, float, float, float]]:
    """YOLO boxes (x_center, y_center, width, height as fractions of the ORIGINAL image) -> (x0, y0, x1, y1) pixels
    of the size x size crop, clipped to it. Uses the crop square recorded by the preprocessing."""
    out = []
    factor = size / record.crop_side
    for x_center, y_center, width, height in boxes:
        x0 = ((x_center - width / 2) * record.orig_width - record.crop_x) * factor
        x1 = ((x_center + width / 2) * record.orig_width - record.crop_x) * factor
        y0 = ((y_center - height / 2) * record.orig_height - record.crop_y) * factor
        y1 = ((y_center + height / 2) * record.orig_height - record.crop_y) * factor
        x0, x1 = max(0.0, min(size, x0)), max(0.0, min(size, x1))
        y0, y1 = max(0.0, min(size, y0)), max(0.0, min(size, y1))
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1, y1))
    return out


def box_mask(boxes: Sequence[Tuple[float, float, float, float]], size: int) -> np.ndarray:
    """Union of pixel boxes as a (size, size) bool mask; a pixel is inside when its centre is."""
    centres = np.arange(size) + 0.5
    mask = np.zeros((size, size), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        rows = (centres >= y0) & (centres < y1)
        cols = (centres >= x0) & (centres < x1)
        mask |= rows[:, None] & cols[None, :]
    return mask


def read_lesion_boxes(boxes_csv: str, labels: Sequence[str] = LESION_LABELS) -> Dict[str, List[Tuple[float, float, float, float]]]:
    """image (relative to the lesion set) -> list of YOLO boxes with one of the given labels."""
    boxes: Dict[str, List[Tuple[float, float, float, float]]] = {}
    with open(boxes_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["label"] in labels:
                boxes.setdefault(row["image"], []).append(
                    (float(row["x_center"]), float(row["y_center"]), float(row["width"]), float(row["height"]))
                )
    return boxes


def make_synthetic_fundus(count: int, size: int, seed: int) -> Tuple[torch.Tensor, np.ndarray]:
    """Tiny stand-ins for tests: an orange disc on black with a bright optic disc and grade-many dark dots.
    Returns uint8 (N, 3, size, size) and grades (N,)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    centre = size / 2
    disc = (xx - centre) ** 2 + (yy - centre) ** 2 < (0.45 * size) ** 2
    images, grades = [], []
    for index in range(count):
        grade = index % 5
        image = np.zeros((size, size, 3), dtype=np.float64)
        image[disc] = (170 + rng.normal(0, 5), 90 + rng.normal(0, 5), 40)
        ox, oy = centre + size * 0.2, centre + rng.normal(0, size * 0.03)
        image[(xx - ox) ** 2 + (yy - oy) ** 2 < (0.07 * size) ** 2] = (240, 220, 150)
        for _ in range(grade * 3):
            px, py = rng.uniform(0.25, 0.75, size=2) * size
            image[((xx - px) ** 2 + (yy - py) ** 2 < (0.03 * size) ** 2) & disc] = (90, 20, 10)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        grades.append(grade)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), np.asarray(grades)


@dataclass
class LoadedSplit:
    records: List[CacheRecord]
    images: torch.Tensor  # uint8 (N, 3, H, W)
    grades: np.ndarray  # (N,) int
    patients: np.ndarray  # (N,) str

    def subset(self, sets: Sequence[str]) -> "LoadedSplit":
        keep = [i for i, r in enumerate(self.records) if r.source_set in sets]
        index = torch.as_tensor(keep, dtype=torch.long)
        return LoadedSplit([self.records[i] for i in keep], self.images[index], self.grades[keep], self.patients[keep])


def load_split(
    cache_dir: str, split: str, sets: Sequence[str], test_fraction: float, validation_fraction: float, size: int
) -> LoadedSplit:
    records = select_records(read_cache_index(cache_dir), split, sets, test_fraction, validation_fraction)
    return LoadedSplit(
        records,
        load_images(records, cache_dir, size),
        np.asarray([r.grade for r in records], dtype=np.int64),
        np.asarray([r.patient_id for r in records]),
    )


def sampling_weights(records: Sequence[CacheRecord], as_taken_weight: float) -> np.ndarray:
    photographs = AS_TAKEN_SETS + TRAINING_ONLY_SETS
    return np.asarray([as_taken_weight if r.source_set in photographs else 1.0 for r in records])
