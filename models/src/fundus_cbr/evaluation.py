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
    device = next(model.parameters()).device
    embeddings, maps = [], []
    for start in range(0, images.shape[0], batch_size):
        output = model(images[start : start + batch_size].to(device).float())
        embeddings.append(output.embedding.float().cpu().numpy())
        maps.append(output.attention.float().cpu().numpy())
    if not embeddings:
        return np.zeros((0, model.config.embedding_dim), np.float32), np.zeros((0, 1, 1), np.float32)
    return np.concatenate(embeddings), np.concatenate(maps)


def retrieval_within(embeddings: np.ndarray, grades: np.ndarray, patients: np.ndarray) -> Dict[str, np.ndarray]:
    """Every image queries all others of the same group (its own patient excluded)."""
    similarity = embeddings @ embeddings.T
    return metrics.per_query_retrieval(similarity, grades, patients, grades, patients)


def retrieval_against(
    query_embeddings: np.ndarray,
    query_grades: np.ndarray,
    query_patients: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_grades: np.ndarray,
    gallery_patients: np.ndarray,
) -> Dict[str, np.ndarray]:
    """Every query searches a separate gallery (its own patient's images there excluded)."""
    similarity = query_embeddings @ gallery_embeddings.T
    return metrics.per_query_retrieval(similarity, query_grades, query_patients, gallery_grades, gallery_patients)


def expand_with_neighbours(
    embeddings: np.ndarray, patients: np.ndarray, gallery: np.ndarray, gallery_patients: np.ndarray, k: int, alpha: float
) -> np.ndarray:
    """Query expansion / database-side augmentation (Radenovic et al. 2018): each row plus its k most similar
    gallery rows of OTHER patients, weighted by max(s, 0)^alpha, L2-normalised."""
    similarity = embeddings @ gallery.T
    similarity[patients[:, None] == gallery_patients[None, :]] = -np.inf
    neighbours = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    weights = np.clip(np.take_along_axis(similarity, neighbours, axis=1), 0, None) ** alpha
    expanded = embeddings + (weights[:, :, None] * gallery[neighbours]).sum(axis=1)
    return expanded / np.linalg.norm(expanded, axis=1, keepdims=True)


def score_per_query(
    per_query: Dict[str, np.ndarray], grades: np.ndarray, patients: np.ndarray, bootstrap: int = 0, seed: int = 0
) -> Dict[str, object]:
    """Summary of per-query figures, query and patient counts, and (bootstrap > 0) patient-bootstrap intervals."""
    result: Dict[str, object] = {"summary": metrics.summarise_retrieval(per_query, grades)}
    result["queries"] = int(len(grades))
    result["patients"] = int(len(np.unique(patients)))
    if bootstrap:
        result["ci95"] = metrics.bootstrap_over_patients(per_query, grades, patients, bootstrap, seed)
    return result


def score_group(
    embeddings: np.ndarray, grades: np.ndarray, patients: np.ndarray, bootstrap: int = 0, seed: int = 0
) -> Dict[str, object]:
    return score_per_query(retrieval_within(embeddings, grades, patients), grades, patients, bootstrap, seed)


def score_trivial_baselines(
    grades: np.ndarray,
    patients: np.ndarray,
    majority_grade: int,
    bootstrap: int,
    seed: int = 0,
    gallery_grades: Optional[np.ndarray] = None,
    gallery_patients: Optional[np.ndarray] = None,
):
    """Random ranking and majority-grade-first ranking; the queries are their own gallery unless one is given."""
    if gallery_grades is None:
        gallery_grades, gallery_patients = grades, patients
    out = {}
    for name, similarity in (
        ("random_ranking", metrics.random_similarity(len(grades), len(gallery_grades), seed)),
        ("always_majority", metrics.majority_similarity(len(grades), gallery_grades, majority_grade, seed)),
    ):
        per_query = metrics.per_query_retrieval(similarity, grades, patients, gallery_grades, gallery_patients)
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
    keep_unscored: bool = False,
) -> np.ndarray:
    """Per lesion image: heat-map mass inside haemorrhage/exudate boxes / the boxes' area share (1.0 = uniform).
    Maps are bilinearly upsampled from feature resolution to the crop size; images without boxes are skipped, and
    so are maps without mass (no finite ratio) unless `keep_unscored`, which keeps them as NaN so that two models'
    ratios stay aligned image by image."""
    ratios = []
    for heat_map, record in zip(heat_maps, records):
        boxes = boxes_in_crop_frame(boxes_by_image.get(record.image, []), record, size)
        if not boxes:
            continue
        upsampled = F.interpolate(torch.from_numpy(heat_map)[None, None].float(), size=(size, size), mode="bilinear", align_corners=False)
        ratio = metrics.lesion_mass_ratio(upsampled[0, 0].clamp(min=0).numpy(), box_mask(boxes, size))
        if keep_unscored or np.isfinite(ratio):
            ratios.append(ratio if np.isfinite(ratio) else np.nan)
    return np.asarray(ratios, dtype=np.float64)


def bootstrap_mean(values: np.ndarray, resamples: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(resamples)]
    return float(values.mean()), (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def paired_bootstrap_mean_difference(a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0):
    """Mean of a - b over paired items (the same images scored two ways; items where either is NaN are left out),
    with a 95% interval from resampling the items: each resample draws one set of item indices for both, so what
    the two share cancels."""
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    differences = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if len(differences) == 0:
        return float("nan"), (float("nan"), float("nan"))
    means = [differences[rng.integers(0, len(differences), len(differences))].mean() for _ in range(resamples)]
    return float(differences.mean()), (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def make_validator(images: torch.Tensor, grades: np.ndarray, patients: np.ndarray):
    """Validation for model selection: retrieval among validation patients' photographs (no bootstrap)."""

    def validate(model: FundusEmbedder) -> Dict[str, float]:
        embeddings, _ = embed_images(model, images)
        return metrics.summarise_retrieval(retrieval_within(embeddings, grades, patients), grades)

    return validate


# "as_taken" stays srahim + eyepacs-raw (the per-patient sources the earlier models were reported on); every other
# source is its own group and is never pooled with them (aptos and idrid have no patient ids: data.py).
TEST_GROUPS = {
    "as_taken": ("srahim", "eyepacs-raw"),
    "srahim": ("srahim",),
    "eyepacs-raw": ("eyepacs-raw",),
    "aptos": ("aptos",),
    "idrid": ("idrid",),
    "eyepacs-processed": ("eyepacs-processed",),
    "mexico": ("mexico",),
}
# The product's own situation: a new patient's photograph searches every stored case. Queries are the test patients'
# photographs as taken; the gallery is every photograph as taken of every patient, training and validation patients
# included (the case base a deployment starts from), the query's own patient excluded as always.
CASE_BASE_GROUP = "as_taken_vs_case_base"
# The same search, one source's test photographs as the queries (the gallery is the same whole case base).
CASE_BASE_SOURCES = ("srahim", "eyepacs-raw", "aptos", "idrid")


def case_base_group(source: str) -> str:
    return f"{source}_vs_case_base"


def evaluate_models(
    models: Dict[str, FundusEmbedder],
    test_split,
    lesion_records: Sequence[CacheRecord],
    lesion_images: Optional[torch.Tensor],
    lesion_boxes: Dict[str, List[tuple]],
    majority_grade: int,
    reference: Optional[str] = None,
    bootstrap: int = 1000,
    seed: int = 0,
    log=print,
    case_base=None,
    images_by_model: Optional[Dict[str, tuple]] = None,
) -> Dict[str, object]:
    """Held-out test patients: every group's retrieval figures with patient-bootstrap intervals for every model,
    trivial baselines, paired differences against `reference`, and lesion mass ratios. With `case_base` (a
    LoadedSplit of the other patients' photographs as taken), also CASE_BASE_GROUP. `images_by_model` gives a
    model its own (test, case base, lesion) images, the same photographs in the same order at its input size;
    models not in it take the splits' own images."""
    results: Dict[str, object] = {"groups": {}, "lesions": {}, "paired_differences": {}, "lesion_paired": {}}
    ratios_by_model: Dict[str, np.ndarray] = {}
    group_members = {
        name: np.flatnonzero(np.isin([r.source_set for r in test_split.records], sets)) for name, sets in TEST_GROUPS.items()
    }
    per_query_by_model: Dict[str, Dict[str, Dict[str, np.ndarray]]] = {}
    # Case-base protocol: every test photograph as taken searches them all plus the case base; each case-base group
    # is a slice of those queries (positions into case_queries).
    sources = np.asarray([r.source_set for r in test_split.records])
    case_queries = np.flatnonzero(np.isin(sources, CASE_BASE_SOURCES))
    case_groups = {CASE_BASE_GROUP: np.flatnonzero(np.isin(sources[case_queries], TEST_GROUPS["as_taken"]))}
    for source in CASE_BASE_SOURCES:
        case_groups[case_base_group(source)] = np.flatnonzero(sources[case_queries] == source)
    case_groups = {name: positions for name, positions in case_groups.items() if len(positions)}
    if case_base is not None and len(case_queries):
        gallery_grades = np.concatenate([test_split.grades[case_queries], case_base.grades])
        gallery_patients = np.concatenate([test_split.patients[case_queries], case_base.patients])
        if set(test_split.patients[case_queries]) & set(case_base.patients):
            raise ValueError("the case base must not hold test patients: they are already in the gallery")
    for model_name, model in models.items():
        test_images, case_images, model_lesion_images = (images_by_model or {}).get(
            model_name, (test_split.images, case_base.images if case_base is not None else None, lesion_images))
        embeddings, _ = embed_images(model, test_images)
        per_query_by_model[model_name] = {}
        if case_base is not None and len(case_queries):
            case_embeddings, _ = embed_images(model, case_images)
            grades, patients = test_split.grades[case_queries], test_split.patients[case_queries]
            per_query = retrieval_against(embeddings[case_queries], grades, patients,
                                          np.concatenate([embeddings[case_queries], case_embeddings]),
                                          gallery_grades, gallery_patients)
            for group, positions in case_groups.items():
                sliced = {name: values[positions] for name, values in per_query.items()}
                per_query_by_model[model_name][group] = sliced
                results["groups"].setdefault(group, {})[model_name] = {
                    **score_per_query(sliced, grades[positions], patients[positions], bootstrap, seed),
                    "gallery_images": int(len(gallery_grades)),
                }
        for group, members in group_members.items():
            if len(members) == 0:
                continue
            grades, patients = test_split.grades[members], test_split.patients[members]
            per_query = retrieval_within(embeddings[members], grades, patients)
            per_query_by_model[model_name][group] = per_query
            results["groups"].setdefault(group, {})[model_name] = score_per_query(per_query, grades, patients, bootstrap, seed)
        log(f"{model_name}: as-taken macro P@10 {results['groups']['as_taken'][model_name]['summary']['macro_p@10']:.3f}")
        if lesion_images is not None and len(lesion_records):
            _, heat_maps = embed_images(model, model_lesion_images)
            ratios_by_model[model_name] = lesion_ratios(heat_maps, lesion_records, lesion_boxes, model.config.input_size,
                                                        keep_unscored=True)
            ratios = ratios_by_model[model_name][np.isfinite(ratios_by_model[model_name])]
            mean, interval = bootstrap_mean(ratios, bootstrap, seed)
            results["lesions"][model_name] = {
                "mean_ratio": mean,
                "ci95": interval,
                "median_ratio": float(np.median(ratios)),
                "images": int(len(ratios)),
                "map": model.config.attention,
            }
    if lesion_images is not None and len(lesion_records):
        # Control: a map spread evenly over the fundus (not the black border). Boxes lie inside the fundus, so this
        # already scores above 1; a model's map is only "on lesions" if it beats this, not just 1.0.
        fundus_maps = (lesion_images.float().mean(dim=1) > 8.0).float().numpy()
        control = lesion_ratios(fundus_maps, lesion_records, lesion_boxes, lesion_images.shape[-1], keep_unscored=True)
        ratios = control[np.isfinite(control)]
        mean, interval = bootstrap_mean(ratios, bootstrap, seed)
        results["lesions"]["uniform-over-fundus"] = {
            "mean_ratio": mean, "ci95": interval, "median_ratio": float(np.median(ratios)), "images": int(len(ratios)),
            "map": "uniform_fundus",
        }
        # Paired over the same lesion images: each model's map against the uniform control, and against the
        # reference model's map.
        for model_name, model_ratios in ratios_by_model.items():
            paired = {"minus uniform-over-fundus": paired_bootstrap_mean_difference(model_ratios, control, bootstrap, seed)}
            if reference in ratios_by_model and model_name != reference:
                paired[f"{reference} minus this"] = paired_bootstrap_mean_difference(
                    ratios_by_model[reference], model_ratios, bootstrap, seed)
            results["lesion_paired"][model_name] = {
                name: {"difference": point, "ci95": interval} for name, (point, interval) in paired.items()}
    for group, members in group_members.items():
        if len(members) == 0:
            continue
        grades, patients = test_split.grades[members], test_split.patients[members]
        for name, entry in score_trivial_baselines(grades, patients, majority_grade, bootstrap, seed).items():
            results["groups"][group][name] = entry
    for group, positions in case_groups.items():
        if group not in results["groups"]:
            continue
        members = case_queries[positions]
        grades, patients = test_split.grades[members], test_split.patients[members]
        for name, entry in score_trivial_baselines(grades, patients, majority_grade, bootstrap, seed,
                                                   gallery_grades, gallery_patients).items():
            results["groups"][group][name] = entry
    if reference is not None and reference in per_query_by_model:
        for model_name in per_query_by_model:
            if model_name == reference:
                continue
            for group in per_query_by_model[reference]:
                members = case_queries[case_groups[group]] if group in case_groups else group_members[group]
                grades, patients = test_split.grades[members], test_split.patients[members]
                paired = metrics.paired_bootstrap_difference(
                    per_query_by_model[reference][group], per_query_by_model[model_name][group], grades, patients,
                    ("macro_p@10", "knn_qwk", "map@r", "p@10"), bootstrap, seed,
                )
                results["paired_differences"].setdefault(f"{reference} - {model_name}", {})[group] = {
                    metric: {"difference": point, "ci95": interval} for metric, (point, interval) in paired.items()
                }
    return results


def results_to_markdown(results: Dict[str, object], group: str) -> str:
    columns = ["p@1", "p@5", "p@10", "p@20", "macro_p@10", "map@r", "authors_ap@10", "knn_accuracy", "knn_qwk"]
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, entry in results["groups"][group].items():
        cells = []
        for column in columns:
            value = entry["summary"].get(column, float("nan"))
            interval = entry.get("ci95", {}).get(column)
            cells.append(f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_grade_markdown(results: Dict[str, object], group: str) -> str:
    lines = ["| model | " + " | ".join(f"P@10 grade {g}" for g in range(5)) + " |", "|---" * 6 + "|"]
    for name, entry in results["groups"][group].items():
        cells = []
        for grade in range(5):
            key = f"p@10_grade{grade}"
            value = entry["summary"].get(key)
            interval = entry.get("ci95", {}).get(key)
            cells.append("n/a" if value is None else f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
