"""Retrieval and grading metrics. Pure functions of numpy arrays; the gallery never contains the query's own patient.

A patient's other eye usually has the same grade, so leaving it in the gallery would inflate every figure; all
functions here receive rankings from which the query's patient has already been removed (see rank_without_patient).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

NUM_GRADES = 5


def rank_without_patient(similarity_row: np.ndarray, gallery_patients: np.ndarray, query_patient: str) -> np.ndarray:
    """Gallery indices by decreasing similarity, the query's own patient left out. Ties keep gallery order."""
    keep = np.flatnonzero(gallery_patients != query_patient)
    order = np.argsort(-similarity_row[keep], kind="stable")
    return keep[order]


def precision_at_k(relevant: np.ndarray, k: int) -> float:
    """relevant: 1-D bool in rank order. Hits among the first k divided by k."""
    return float(np.count_nonzero(relevant[:k])) / k


def average_precision_at_r(relevant: np.ndarray, total_relevant: int) -> float:
    """MAP@R for one query (Musgrave et al., ECCV 2020): R = number of relevant gallery items,
    (1/R) * sum_{i<=R} rel_i * P@i. NaN when nothing in the gallery is relevant."""
    if total_relevant == 0:
        return float("nan")
    top = relevant[:total_relevant].astype(np.float64)
    precision = np.cumsum(top) / np.arange(1, len(top) + 1)
    return float((precision * top).sum() / total_relevant)


def authors_average_precision_at_k(relevant: np.ndarray, k: int = 10) -> float:
    """The "mAP@10" of Fang et al.'s code (FundusDR, SANet/MANet Test()): over the top k positions, P@i at each hit
    and 0 at each miss, averaged over the k positions, i.e. (1/k) sum_{i<=k} rel_i * P@i. Not a standard AP (it is
    normalised by k, neither by R nor by the hits); reported only for comparison with the paper. Their gallery was
    the training set; ours is the other held-out test patients."""
    top = relevant[:k].astype(np.float64)
    precision = np.cumsum(top) / np.arange(1, len(top) + 1)
    return float((precision * top).sum() / k)


def knn_vote(neighbour_grades: np.ndarray, num_grades: int = NUM_GRADES) -> int:
    """Majority grade among the neighbours (rank order); a tie goes to the tied grade ranked highest."""
    counts = np.bincount(neighbour_grades, minlength=num_grades)
    tied = np.flatnonzero(counts == counts.max())
    if len(tied) == 1:
        return int(tied[0])
    for grade in neighbour_grades:
        if grade in tied:
            return int(grade)
    return int(tied[0])


def quadratic_weighted_kappa(truth: np.ndarray, predicted: np.ndarray, num_grades: int = NUM_GRADES) -> float:
    """Cohen's kappa with quadratic weights (w_ij = (i - j)^2 / (n - 1)^2). 0 when expected disagreement is 0."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    observed = np.zeros((num_grades, num_grades))
    np.add.at(observed, (truth, predicted), 1.0)
    grades = np.arange(num_grades)
    weights = (grades[:, None] - grades[None, :]) ** 2 / float((num_grades - 1) ** 2)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / max(observed.sum(), 1.0)
    denominator = (weights * expected).sum()
    if denominator == 0:
        return 0.0
    return float(1.0 - (weights * observed).sum() / denominator)


def per_query_retrieval(
    similarity: np.ndarray,
    query_grades: np.ndarray,
    query_patients: np.ndarray,
    gallery_grades: np.ndarray,
    gallery_patients: np.ndarray,
    ks: Sequence[int] = (1, 5, 10, 20),
    knn_k: int = 10,
) -> Dict[str, np.ndarray]:
    """Per-query figures from a (Q, G) similarity matrix: P@k for each k, AP@R, the authors' AP@10, kNN grade."""
    out: Dict[str, List[float]] = {f"p@{k}": [] for k in ks}
    out.update({"ap@r": [], "authors_ap@10": [], "knn_grade": []})
    for q in range(similarity.shape[0]):
        order = rank_without_patient(similarity[q], gallery_patients, query_patients[q])
        ranked_grades = gallery_grades[order]
        relevant = ranked_grades == query_grades[q]
        for k in ks:
            out[f"p@{k}"].append(precision_at_k(relevant, k))
        out["ap@r"].append(average_precision_at_r(relevant, int(relevant.sum())))
        out["authors_ap@10"].append(authors_average_precision_at_k(relevant, 10))
        out["knn_grade"].append(knn_vote(ranked_grades[:knn_k]))
    return {name: np.asarray(values) for name, values in out.items()}


def summarise_retrieval(per_query: Dict[str, np.ndarray], query_grades: np.ndarray) -> Dict[str, float]:
    """Means over queries; per-grade and macro (mean over grades present) P@10; kNN accuracy and QWK."""
    summary: Dict[str, float] = {}
    for name, values in per_query.items():
        if name.startswith("p@") or name.startswith("authors"):
            summary[name] = float(np.mean(values))
    summary["map@r"] = float(np.nanmean(per_query["ap@r"])) if np.isfinite(per_query["ap@r"]).any() else float("nan")
    per_grade = []
    for grade in range(NUM_GRADES):
        chosen = query_grades == grade
        if chosen.any():
            value = float(np.mean(per_query["p@10"][chosen]))
            summary[f"p@10_grade{grade}"] = value
            per_grade.append(value)
    summary["macro_p@10"] = float(np.mean(per_grade))
    summary["knn_accuracy"] = float(np.mean(per_query["knn_grade"] == query_grades))
    summary["knn_qwk"] = quadratic_weighted_kappa(query_grades, per_query["knn_grade"])
    return summary


def bootstrap_over_patients(
    per_query: Dict[str, np.ndarray],
    query_grades: np.ndarray,
    query_patients: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
) -> Dict[str, tuple]:
    """95% percentile intervals from resampling PATIENTS with replacement (a patient's images stay together)."""
    rng = np.random.default_rng(seed)
    patients, inverse = np.unique(query_patients, return_inverse=True)
    members = [np.flatnonzero(inverse == index) for index in range(len(patients))]
    draws: Dict[str, List[float]] = {}
    for _ in range(resamples):
        chosen = rng.integers(0, len(patients), size=len(patients))
        indices = np.concatenate([members[c] for c in chosen])
        summary = summarise_retrieval({k: v[indices] for k, v in per_query.items()}, query_grades[indices])
        for name, value in summary.items():
            draws.setdefault(name, []).append(value)
    return {name: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for name, v in draws.items()}


def random_similarity(num_queries: int, num_gallery: int, seed: int = 0) -> np.ndarray:
    """Trivial baseline: a random ranking."""
    return np.random.default_rng(seed).random((num_queries, num_gallery))


def majority_similarity(num_queries: int, gallery_grades: np.ndarray, majority_grade: int, seed: int = 0) -> np.ndarray:
    """Trivial baseline: every query gets cases of the majority grade first (random order within)."""
    noise = np.random.default_rng(seed).random((num_queries, len(gallery_grades)))
    return noise + (gallery_grades == majority_grade)[None, :].astype(np.float64)


def lesion_mass_ratio(heat_map: np.ndarray, lesion_mask: np.ndarray) -> float:
    """Share of heat-map mass inside the lesion mask divided by the mask's share of the area (1.0 = uniform map).
    heat_map (H, W) non-negative, lesion_mask (H, W) bool at the same resolution. NaN for an empty mask."""
    area_share = float(lesion_mask.mean())
    if area_share == 0:
        return float("nan")
    total = float(heat_map.sum())
    if total <= 0:
        return float("nan")
    return float(heat_map[lesion_mask].sum() / total) / area_share


def paired_bootstrap_difference(
    per_query_a: Dict[str, np.ndarray],
    per_query_b: Dict[str, np.ndarray],
    query_grades: np.ndarray,
    query_patients: np.ndarray,
    metric_names: Sequence[str],
    resamples: int = 1000,
    seed: int = 0,
) -> Dict[str, tuple]:
    """(a - b) on the same queries with the same patient resamples: point difference and 95% interval for each
    metric. Tighter than comparing two separate intervals, because both models face the same patients."""
    rng = np.random.default_rng(seed)
    patients, inverse = np.unique(query_patients, return_inverse=True)
    members = [np.flatnonzero(inverse == index) for index in range(len(patients))]
    differences: Dict[str, List[float]] = {name: [] for name in metric_names}
    for _ in range(resamples):
        indices = np.concatenate([members[c] for c in rng.integers(0, len(patients), size=len(patients))])
        grades = query_grades[indices]
        a = summarise_retrieval({k: v[indices] for k, v in per_query_a.items()}, grades)
        b = summarise_retrieval({k: v[indices] for k, v in per_query_b.items()}, grades)
        for name in metric_names:
            differences[name].append(a[name] - b[name])
    point_a = summarise_retrieval(per_query_a, query_grades)
    point_b = summarise_retrieval(per_query_b, query_grades)
    return {
        name: (float(point_a[name] - point_b[name]),
               (float(np.percentile(differences[name], 2.5)), float(np.percentile(differences[name], 97.5))))
        for name in metric_names
    }
