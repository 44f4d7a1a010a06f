import numpy as np
import pytest

from fundus_cbr.data import CacheRecord
from fundus_cbr.evaluation import bootstrap_mean, lesion_ratios, score_group, score_trivial_baselines


def test_lesion_ratio_of_a_map_concentrated_on_the_box():
    record = CacheRecord("images/l.png", "lesions", "images/l.jpg", "lesions-l", "", -1, 256, 256, 0, 0, 256)
    heat_map = np.zeros((8, 8), dtype=np.float32)
    heat_map[0:2, 0:2] = 0.25  # top-left quarter-of-a-quarter, 64x64 px after upsampling
    boxes = {"images/l.jpg": [(0.125, 0.125, 0.25, 0.25)]}  # exactly that 64x64 px square
    (ratio,) = lesion_ratios(heat_map[None], [record], boxes, 256)
    assert 8.0 < ratio <= 16.0  # 16 if no mass leaked in upsampling; bilinear spreads a little outside
    (uniform,) = lesion_ratios(np.full((1, 8, 8), 1 / 64, np.float32), [record], boxes, 256)
    assert uniform == pytest.approx(1.0)


def test_perfect_embeddings_score_one_and_random_ranking_scores_near_the_grade_share():
    grades = np.repeat(np.arange(5), 8)
    patients = np.array([f"p{i}" for i in range(40)])
    embeddings = np.eye(5)[grades]
    result = score_group(embeddings, grades, patients, bootstrap=50)
    assert result["summary"]["macro_p@10"] == pytest.approx(0.7)  # 7 same-grade others fill 7 of 10 places
    assert result["summary"]["p@5"] == pytest.approx(1.0)
    assert result["summary"]["knn_qwk"] == pytest.approx(1.0)
    trivial = score_trivial_baselines(grades, patients, majority_grade=0, bootstrap=0)
    majority = trivial["always_majority"]["summary"]
    assert majority["p@10_grade0"] == pytest.approx(0.7)  # 7 other grade-0 images, then the rest at random
    assert majority["macro_p@10"] < 0.3
    assert trivial["always_majority"]["summary"]["knn_qwk"] == pytest.approx(0.0)


def test_a_map_without_mass_is_skipped_or_kept_as_nan_to_stay_aligned():
    record = CacheRecord("images/l.png", "lesions", "images/l.jpg", "lesions-l", "", -1, 256, 256, 0, 0, 256)
    boxes = {"images/l.jpg": [(0.5, 0.5, 0.25, 0.25)]}
    maps = np.stack([np.zeros((8, 8), np.float32), np.full((8, 8), 1 / 64, np.float32)])
    assert lesion_ratios(maps, [record, record], boxes, 256) == pytest.approx([1.0])
    kept = lesion_ratios(maps, [record, record], boxes, 256, keep_unscored=True)
    assert np.isnan(kept[0]) and kept[1] == pytest.approx(1.0)


def test_bootstrap_mean_brackets_the_mean():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    mean, (low, high) = bootstrap_mean(values, resamples=200)
    assert mean == 2.5 and low <= mean <= high


def test_evaluate_models_reports_groups_baselines_lesions_and_paired_differences():
    import torch

    from fundus_cbr.config import ModelConfig
    from fundus_cbr.data import LoadedSplit, make_synthetic_fundus
    from fundus_cbr.evaluation import evaluate_models
    from fundus_cbr.model import FundusEmbedder

    images, grades = make_synthetic_fundus(20, 32, seed=0)
    sets = ["srahim", "eyepacs-raw", "eyepacs-processed", "srahim"] * 5
    records = [CacheRecord(f"{i}.png", sets[i], f"{i}.jpg", f"p{i // 2}", "L", int(grades[i]), 32, 32, 0, 0, 32) for i in range(20)]
    split = LoadedSplit(records, images, grades, np.array([r.patient_id for r in records]))
    lesion = [CacheRecord("l.png", "lesions", "images/l.jpg", "lesions-l", "", -1, 32, 32, 0, 0, 32)]
    torch.manual_seed(0)
    models = {name: FundusEmbedder(ModelConfig(input_size=32, attention=kind)) for name, kind in (("a", "mirror"), ("b", "none"))}
    results = evaluate_models(models, split, lesion, images[:1], {"images/l.jpg": [(0.5, 0.5, 0.5, 0.5)]}, 0, "a", bootstrap=20,
                              log=lambda line: None)
    assert set(results["groups"]["as_taken"]) == {"a", "b", "random_ranking", "always_majority"}
    assert results["lesions"]["a"]["images"] == 1
    assert results["lesions"]["uniform-over-fundus"]["mean_ratio"] >= 1.0
    assert "macro_p@10" in results["paired_differences"]["a - b"]["as_taken"]
    control = results["lesions"]["uniform-over-fundus"]["mean_ratio"]
    against_control = results["lesion_paired"]["a"]["minus uniform-over-fundus"]["difference"]
    assert against_control == pytest.approx(results["lesions"]["a"]["mean_ratio"] - control)
    assert "a minus this" not in results["lesion_paired"]["a"]
    # b's untrained activation map has no mass on this image: no finite ratio, so no pair either (not a zero).
    assert results["lesions"]["b"]["images"] == 0
    assert np.isnan(results["lesion_paired"]["b"]["a minus this"]["difference"])


def test_paired_bootstrap_mean_difference_cancels_what_the_pair_shares():
    from fundus_cbr.evaluation import paired_bootstrap_mean_difference

    shared = np.random.default_rng(1).normal(0, 5, 200)  # large per-item spread common to both
    point, (low, high) = paired_bootstrap_mean_difference(shared + 0.5, shared, resamples=200)
    assert point == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    _, (unpaired_low, unpaired_high) = bootstrap_mean(shared + 0.5, resamples=200)
    assert unpaired_high - unpaired_low > 1.0  # unpaired, the shared spread swamps the 0.5
    with pytest.raises(ValueError):
        paired_bootstrap_mean_difference(np.zeros(3), np.zeros(4))


def test_a_separate_gallery_is_searched_without_the_query_patients_own_images():
    from fundus_cbr.evaluation import retrieval_against

    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    query_grades, query_patients = np.array([1, 0]), np.array(["q1", "q2"])
    # The gallery's best match for each query is its own patient's other eye, with the WRONG grade: only excluding
    # it makes P@1 come out 1.
    gallery = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    gallery_grades = np.array([4, 1, 1, 2, 0, 0])
    gallery_patients = np.array(["q1", "a", "b", "q2", "c", "d"])
    per_query = retrieval_against(queries, query_grades, query_patients, gallery, gallery_grades, gallery_patients)
    assert per_query["p@1"].tolist() == [1.0, 1.0]
    assert per_query["knn_grade"].tolist() == [1, 0]
    assert per_query["p@5"].tolist() == pytest.approx([2 / 5, 2 / 5])  # 5 others in the gallery, 2 of them relevant

    trivial = score_trivial_baselines(query_grades, query_patients, 0, 0, 0, gallery_grades, gallery_patients)
    # Majority grade (0) first: the grade-0 query finds its 2 grade-0 cases at the top, the grade-1 query none.
    assert trivial["always_majority"]["summary"]["p@10_grade0"] == pytest.approx(2 / 10)
    assert trivial["always_majority"]["summary"]["p@10_grade1"] == pytest.approx(2 / 10)  # the 2 others of 5, /10


def _srahim_test_and_case_base():
    """30 synthetic srahim photographs of 15 patients: the first 10 as test photographs, the rest as the case base."""
    from fundus_cbr.data import LoadedSplit, make_synthetic_fundus

    images, grades = make_synthetic_fundus(30, 32, seed=0)
    records = [CacheRecord(f"{i}.png", "srahim", f"{i}.jpg", f"p{i // 2}", "L", int(grades[i]), 32, 32, 0, 0, 32)
               for i in range(30)]
    patients = np.array([r.patient_id for r in records])
    test = LoadedSplit(records[:10], images[:10], grades[:10], patients[:10])
    case_base = LoadedSplit(records[10:], images[10:], grades[10:], patients[10:])
    return images, test, case_base


def test_evaluate_models_scores_test_photographs_against_the_whole_case_base():
    import torch

    from fundus_cbr.config import ModelConfig
    from fundus_cbr.evaluation import CASE_BASE_GROUP, evaluate_models
    from fundus_cbr.model import FundusEmbedder

    images, test, case_base = _srahim_test_and_case_base()
    torch.manual_seed(0)
    models = {name: FundusEmbedder(ModelConfig(input_size=32, attention=kind)) for name, kind in (("a", "mirror"), ("b", "none"))}
    results = evaluate_models(models, test, [], None, {}, 0, "a", bootstrap=20, log=lambda line: None, case_base=case_base)
    entry = results["groups"][CASE_BASE_GROUP]["a"]
    assert entry["queries"] == 10 and entry["gallery_images"] == 30
    assert set(results["groups"][CASE_BASE_GROUP]) == {"a", "b", "random_ranking", "always_majority"}
    assert "knn_qwk" in results["paired_differences"]["a - b"][CASE_BASE_GROUP]
    with pytest.raises(ValueError, match="must not hold test patients"):
        evaluate_models(models, test, [], None, {}, 0, None, bootstrap=0, log=lambda line: None, case_base=test)


def test_expand_with_neighbours_adds_weighted_neighbours_of_other_patients_only():
    from fundus_cbr.evaluation import expand_with_neighbours

    query = np.array([[1.0, 0.0]])
    gallery = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    gallery_patients = np.array(["a", "b", "c", "d"])
    # The query's own patient "a" holds the identical photograph; it must not count as a neighbour.
    expanded = expand_with_neighbours(query, np.array(["a"]), gallery, gallery_patients, k=2, alpha=2.0)
    # Neighbours: b (s = 0.6, weight 0.36) and c (s = 0, weight 0); d (s = -1) is third.
    by_hand = np.array([1.0 + 0.36 * 0.6, 0.36 * 0.8])
    np.testing.assert_allclose(expanded[0], by_hand / np.linalg.norm(by_hand), atol=1e-12)
    assert np.isclose(np.linalg.norm(expanded[0]), 1.0)


def test_each_source_is_its_own_group_and_searches_the_same_whole_case_base():
    import torch

    from fundus_cbr.config import ModelConfig
    from fundus_cbr.data import LoadedSplit, make_synthetic_fundus
    from fundus_cbr.evaluation import CASE_BASE_GROUP, case_base_group, evaluate_models
    from fundus_cbr.model import FundusEmbedder

    images, grades = make_synthetic_fundus(30, 32, seed=1)
    sources = ["srahim"] * 4 + ["aptos"] * 4 + ["mexico"] * 2 + ["srahim"] * 20
    records = [CacheRecord(f"{i}.png", sources[i], f"{i}.jpg", f"p{i}", "", int(grades[i]), 32, 32, 0, 0, 32)
               for i in range(30)]
    patients = np.array([r.patient_id for r in records])
    test = LoadedSplit(records[:10], images[:10], grades[:10], patients[:10])
    case_base = LoadedSplit(records[10:], images[10:], grades[10:], patients[10:])
    torch.manual_seed(0)
    models = {name: FundusEmbedder(ModelConfig(input_size=32, attention=kind)) for name, kind in (("a", "mirror"), ("b", "none"))}
    results = evaluate_models(models, test, [], None, {}, 0, "a", bootstrap=10, log=lambda line: None, case_base=case_base)
    groups = results["groups"]
    assert groups["as_taken"]["a"]["queries"] == 4 and groups["aptos"]["a"]["queries"] == 4
    assert groups["mexico"]["a"]["queries"] == 2
    # The case base holds the test photographs as taken (srahim and aptos, not mexico: training material) + 20.
    assert groups[case_base_group("aptos")]["a"]["queries"] == 4
    assert groups[case_base_group("aptos")]["a"]["gallery_images"] == 28
    assert groups[CASE_BASE_GROUP]["a"]["queries"] == 4
    assert case_base_group("mexico") not in groups and case_base_group("idrid") not in groups
    # A slice of the whole search is scored exactly as that source's queries alone would be: same per-query P@10.
    assert groups[case_base_group("srahim")]["a"]["summary"] == groups[CASE_BASE_GROUP]["a"]["summary"]
    assert {"aptos", "mexico", case_base_group("aptos")} <= set(results["paired_differences"]["a - b"])


def test_a_model_of_another_input_size_is_scored_on_its_own_images_of_the_same_photographs():
    import torch

    from fundus_cbr.config import ModelConfig
    from fundus_cbr.evaluation import CASE_BASE_GROUP, evaluate_models
    from fundus_cbr.model import FundusEmbedder

    images, test, case_base = _srahim_test_and_case_base()
    large = torch.nn.functional.interpolate(images.float(), size=48, mode="bilinear", align_corners=False).round().to(torch.uint8)
    torch.manual_seed(0)
    small_model = FundusEmbedder(ModelConfig(input_size=32, attention="mirror"))
    large_model = FundusEmbedder(ModelConfig(input_size=48, attention="mirror"))
    large_model.load_state_dict(small_model.state_dict())
    own = {"large": (large[:10], large[10:], None)}
    results = evaluate_models({"small": small_model, "large": large_model}, test, [], None, {}, 0, "small", bootstrap=10,
                              log=lambda line: None, case_base=case_base, images_by_model=own)
    assert results["groups"][CASE_BASE_GROUP]["large"]["queries"] == 10
    # Same weights, other pixels: the 48-px model saw the 48-px images, not the 32-px ones it was not built for.
    seen = []
    original = large_model.forward
    large_model.forward = lambda batch, *args, **kwargs: (seen.append(batch.shape[-1]), original(batch, *args, **kwargs))[1]
    evaluate_models({"small": small_model, "large": large_model}, test, [], None, {}, 0, None, bootstrap=0,
                    log=lambda line: None, case_base=case_base, images_by_model=own)
    assert seen and set(seen) == {48}
