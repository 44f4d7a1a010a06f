import math

import numpy as np
import pytest

from fundus_cbr import metrics


def test_precision_at_k_counts_hits_in_the_first_k():
    relevant = np.array([True, False, True, True, False])
    assert metrics.precision_at_k(relevant, 1) == 1.0
    assert metrics.precision_at_k(relevant, 2) == 0.5
    assert metrics.precision_at_k(relevant, 4) == 0.75


def test_average_precision_at_r_hand_computed():
    # R = 3 relevant items at ranks 1, 3, 5: only ranks 1..3 count: (1/3) * (1/1 + 2/3) = 0.5556
    relevant = np.array([True, False, True, False, True])
    assert metrics.average_precision_at_r(relevant, 3) == pytest.approx((1 + 2 / 3) / 3)
    assert math.isnan(metrics.average_precision_at_r(np.array([False, False]), 0))


def test_authors_average_precision_averages_over_all_k_positions_with_zero_at_misses():
    relevant = np.array([False, True, True] + [False] * 7)
    assert metrics.authors_average_precision_at_k(relevant, 10) == pytest.approx((1 / 2 + 2 / 3) / 10)
    assert metrics.authors_average_precision_at_k(np.ones(10, dtype=bool), 10) == pytest.approx(1.0)
    assert metrics.authors_average_precision_at_k(np.zeros(10, dtype=bool), 10) == 0.0


def test_knn_vote_majority_and_tie_goes_to_the_higher_ranked_grade():
    assert metrics.knn_vote(np.array([2, 2, 0, 1, 2])) == 2
    assert metrics.knn_vote(np.array([3, 1, 1, 3])) == 3


def qwk_by_loop(truth, predicted, n=5):
    observed = [[0.0] * n for _ in range(n)]
    for t, p in zip(truth, predicted):
        observed[t][p] += 1
    total = len(truth)
    rows = [sum(observed[i]) for i in range(n)]
    cols = [sum(observed[i][j] for i in range(n)) for j in range(n)]
    numerator = sum((i - j) ** 2 / (n - 1) ** 2 * observed[i][j] for i in range(n) for j in range(n))
    denominator = sum((i - j) ** 2 / (n - 1) ** 2 * rows[i] * cols[j] / total for i in range(n) for j in range(n))
    return 1 - numerator / denominator


def test_quadratic_weighted_kappa_matches_loop_and_edge_cases():
    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    assert metrics.quadratic_weighted_kappa(truth, predicted) == pytest.approx(qwk_by_loop(truth, predicted))
    assert metrics.quadratic_weighted_kappa(truth, truth) == pytest.approx(1.0)
    assert metrics.quadratic_weighted_kappa(truth, np.zeros(40, dtype=int)) == pytest.approx(0.0)


def test_hand_computed_two_class_kappa():
    # truth 0,0,1,1 vs predicted 0,1,1,1 with 5 grades: observed disagreement weight 1/16 (one 0->1 error);
    # expected = sum w_ij row_i col_j / N = (2*3*(1/16) + 2*1*(1/16)) / 4 = 0.125 -> kappa = 1 - (1/16)/0.125 = 0.5
    assert metrics.quadratic_weighted_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == pytest.approx(0.5)


def test_own_patient_is_never_retrieved():
    similarity = np.array([[1.0, 0.99, 0.1, 0.2]])
    gallery_patients = np.array(["a", "a", "b", "c"])
    order = metrics.rank_without_patient(similarity[0], gallery_patients, "a")
    assert list(order) == [3, 2]
    per_query = metrics.per_query_retrieval(
        similarity, np.array([1]), np.array(["a"]), np.array([1, 1, 0, 1]), gallery_patients, ks=(1,), knn_k=1
    )
    assert per_query["p@1"][0] == 1.0  # gallery item 3 (patient c, grade 1), not the query's own other eye


def test_summary_matches_plain_loop_on_random_embeddings():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(30, 4))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    grades = rng.integers(0, 5, 30)
    patients = np.array([f"p{i // 2}" for i in range(30)])
    similarity = embeddings @ embeddings.T
    per_query = metrics.per_query_retrieval(similarity, grades, patients, grades, patients)
    summary = metrics.summarise_retrieval(per_query, grades)
    per_grade = {}
    hits_at_10 = []
    for q in range(30):
        candidates = [g for g in range(30) if patients[g] != patients[q]]
        candidates.sort(key=lambda g: -similarity[q, g])
        hits = sum(grades[g] == grades[q] for g in candidates[:10]) / 10
        hits_at_10.append(hits)
        per_grade.setdefault(grades[q], []).append(hits)
    assert summary["p@10"] == pytest.approx(np.mean(hits_at_10))
    assert summary["macro_p@10"] == pytest.approx(np.mean([np.mean(v) for v in per_grade.values()]))


def test_bootstrap_interval_contains_the_point_estimate_and_is_seeded():
    rng = np.random.default_rng(2)
    grades = rng.integers(0, 5, 60)
    patients = np.array([f"p{i // 2}" for i in range(60)])
    similarity = rng.random((60, 60))
    per_query = metrics.per_query_retrieval(similarity, grades, patients, grades, patients)
    point = metrics.summarise_retrieval(per_query, grades)
    first = metrics.bootstrap_over_patients(per_query, grades, patients, resamples=200, seed=3)
    second = metrics.bootstrap_over_patients(per_query, grades, patients, resamples=200, seed=3)
    assert first == second
    low, high = first["p@10"]
    assert low <= point["p@10"] <= high


def test_majority_baseline_puts_majority_grade_first():
    similarity = metrics.majority_similarity(2, np.array([1, 0, 0, 2]), 0, seed=0)
    assert set(np.argsort(-similarity[0])[:2]) == {1, 2}


def test_lesion_mass_ratio_is_one_for_a_uniform_map_and_inverse_area_when_all_mass_is_inside():
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    assert metrics.lesion_mass_ratio(np.ones((4, 4)), mask) == pytest.approx(1.0)
    concentrated = np.zeros((4, 4))
    concentrated[0, 0] = 1.0
    assert metrics.lesion_mass_ratio(concentrated, mask) == pytest.approx(4.0)
    assert math.isnan(metrics.lesion_mass_ratio(np.ones((4, 4)), np.zeros((4, 4), dtype=bool)))


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    rng = np.random.default_rng(4)
    grades = rng.integers(0, 5, 40)
    patients = np.array([f"p{i // 2}" for i in range(40)])
    per_query = metrics.per_query_retrieval(rng.random((40, 40)), grades, patients, grades, patients)
    result = metrics.paired_bootstrap_difference(per_query, per_query, grades, patients, ["macro_p@10", "knn_qwk"], 50)
    assert result["macro_p@10"] == (0.0, (0.0, 0.0))
