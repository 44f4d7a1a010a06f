import dataclasses
import os

import numpy as np
import pytest
import torch
from PIL import Image

from fundus_cbr.config import AugmentationConfig
from fundus_cbr.data import (
    CacheRecord,
    GradeBalancedBatchSampler,
    augment_batch,
    box_mask,
    boxes_in_crop_frame,
    load_images,
    load_split,
    make_synthetic_fundus,
    read_cache_index,
    read_lesion_boxes,
    select_records,
    split_of_patient,
)

HEADER = "cache_path,source_set,image,patient_id,eye,grade,orig_width,orig_height,crop_x,crop_y,crop_side\n"


def test_split_depends_only_on_patient_and_has_the_requested_proportions():
    splits = [split_of_patient(f"eyepacs-{i}", 0.2, 0.15) for i in range(5000)]
    assert abs(splits.count("test") / 5000 - 0.2) < 0.03
    assert abs(splits.count("validation") / 5000 - 0.15) < 0.03
    assert split_of_patient("eyepacs-42", 0.2, 0.15) == split_of_patient("eyepacs-42", 0.2, 0.15)


def _record(patient, source_set, grade=0):
    return CacheRecord(f"images/{patient}.png", source_set, f"images/{patient}.jpg", patient, "L", grade, 1000, 600, 200, -100, 800)


def test_same_eyepacs_patient_lands_on_the_same_side_in_raw_and_processed():
    records = [_record(f"eyepacs-{i}", s) for i in range(300) for s in ("eyepacs-raw", "eyepacs-processed")]
    for split in ("train", "validation", "test"):
        chosen = select_records(records, split, ["eyepacs-raw", "eyepacs-processed"], 0.2, 0.15)
        raw = {r.patient_id for r in chosen if r.source_set == "eyepacs-raw"}
        processed = {r.patient_id for r in chosen if r.source_set == "eyepacs-processed"}
        assert raw == processed


def test_boxes_are_mapped_into_the_crop_frame_by_hand():
    record = _record("lesions-1", "lesions")
    # box centre (0.5, 0.5), size (0.1, 0.1) of a 1000x600 image: x 450..550, y 270..330 original pixels;
    # crop starts at (200, -100) with side 800 -> 256 px: scale 0.32 -> x 80..112, y 118.4..137.6
    (box,) = boxes_in_crop_frame([(0.5, 0.5, 0.1, 0.1)], record, 256)
    assert box == pytest.approx((80.0, 118.4, 112.0, 137.6))
    assert boxes_in_crop_frame([(0.01, 0.5, 0.01, 0.1)], record, 256) == []  # entirely left of the crop


def test_box_mask_marks_pixels_whose_centres_are_inside():
    mask = box_mask([(1.0, 0.0, 3.0, 2.0)], 4)
    assert mask.sum() == 4 and mask[0, 1] and mask[1, 2] and not mask[0, 3]


def test_cache_index_and_images_round_trip(tmp_path):
    images, grades = make_synthetic_fundus(4, 32, seed=0)
    os.makedirs(tmp_path / "images")
    lines = [HEADER]
    for i in range(4):
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(tmp_path / "images" / f"{i}.png")
        lines.append(f"images/{i}.png,srahim,images/{i}.jpg,srahim-{i},L,{grades[i]},800,535,49,-46,628\n")
    lines.append("images/0.png,lesions,images/0002.jpg,lesions-0002,,,1024,680,68,-67,814\n")
    (tmp_path / "index.csv").write_text("".join(lines))
    records = read_cache_index(str(tmp_path))
    assert records[-1].grade == -1 and records[0].crop_side == 628
    loaded = load_images(records[:4], str(tmp_path))
    assert torch.equal(loaded, images)
    split = load_split(str(tmp_path), "train", ["srahim"], 0.0, 0.0, 32)
    assert len(split.records) == 4  # the ungraded lesion row is never a training image


def test_read_lesion_boxes_keeps_only_lesion_labels(tmp_path):
    (tmp_path / "boxes.csv").write_text(
        "image,label,x_center,y_center,width,height\n"
        "images/a.jpg,optic_disc,0.2,0.4,0.1,0.1\nimages/a.jpg,haemorrhage,0.5,0.5,0.1,0.2\n"
        "images/b.jpg,hard_exudates,0.3,0.3,0.05,0.05\n"
    )
    boxes = read_lesion_boxes(str(tmp_path / "boxes.csv"))
    assert boxes == {"images/a.jpg": [(0.5, 0.5, 0.1, 0.2)], "images/b.jpg": [(0.3, 0.3, 0.05, 0.05)]}


def test_sampler_gives_p_grades_by_k_images():
    grades = np.array([0] * 20 + [1] * 3 + [2] * 10 + [3] * 5 + [4] * 4)
    sampler = GradeBalancedBatchSampler(grades, np.ones(len(grades)), 5, 4, seed=0)
    batch = sampler.next_batch()
    assert len(batch) == 20
    assert sorted(np.bincount(grades[batch], minlength=5)) == [4, 4, 4, 4, 4]


def test_augmentation_is_seeded_keeps_range_and_black_padding():
    images, _ = make_synthetic_fundus(3, 32, seed=1)
    settings = AugmentationConfig(10.0, (0.95, 1.08), 0.03, 0.2, 0.2, 0.15)
    first = augment_batch(images, torch.Generator().manual_seed(5), settings)
    second = augment_batch(images, torch.Generator().manual_seed(5), settings)
    assert torch.equal(first, second)
    assert first.dtype == torch.float32 and first.min() >= 0 and first.max() <= 255
    assert first[:, :, 0, 0].abs().max() == 0  # corners stay black


def test_augmentation_never_mirrors_so_a_left_eye_stays_a_left_eye():
    # A bright blob (an optic disc) on the right of a dim disc, top-bottom asymmetric too: after many augmented
    # draws at full-strength settings, the blob's centre of mass must stay on its side, never mirrored.
    size = 64
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    image = np.zeros((size, size, 3), dtype=np.float64)
    image[(xx - 32) ** 2 + (yy - 32) ** 2 < 28**2] = (120, 50, 20)
    image[(xx - 48) ** 2 + (yy - 24) ** 2 < 6**2] = (250, 230, 160)
    images = torch.as_tensor(image.transpose(2, 0, 1)[None].repeat(64, axis=0).astype(np.uint8))
    out = augment_batch(images, torch.Generator().manual_seed(0), AugmentationConfig(10.0, (0.95, 1.08), 0.03, 0.2, 0.2, 0.15))
    brightness = out.mean(dim=1)
    blob = (brightness > 0.6 * brightness.amax(dim=(1, 2), keepdim=True)).float()  # the blob is ~3x the disc
    mass = blob.sum(dim=(1, 2))
    assert (mass > 20).all()
    centre_x = (blob * torch.as_tensor(xx, dtype=torch.float32)).sum(dim=(1, 2)) / mass
    centre_y = (blob * torch.as_tensor(yy, dtype=torch.float32)).sum(dim=(1, 2)) / mass
    assert (centre_x > 40).all() and (centre_y < 32).all()


def _write_cache(root, rows, images):
    """rows: (cache_path, source_set, patient_id, eye, grade); images: cache_path -> uint8 HxWx3 array."""
    os.makedirs(root / "images", exist_ok=True)
    for path, array in images.items():
        Image.fromarray(array).save(root / path)
    lines = [f"{p},{s},{p},{pid},{eye},{grade},800,600,0,0,800\n" for p, s, pid, eye, grade in rows]
    (root / "index.csv").write_text(HEADER + "".join(lines))


def test_new_sets_are_graded_and_the_benchmark_sets_are_the_photographs_as_taken():
    from fundus_cbr.data import AS_TAKEN_SETS, GRADED_SETS, sampling_weights

    assert {"aptos", "idrid", "mexico"} <= set(GRADED_SETS)
    assert {"aptos", "idrid"} <= set(AS_TAKEN_SETS) and "mexico" not in AS_TAKEN_SETS
    weights = sampling_weights([_record("imo-1", "mexico"), _record("eyepacs-1", "eyepacs-processed")], 2.0)
    assert list(weights) == [2.0, 1.0]


def test_lesion_copies_of_idrid_photographs_take_their_split_and_other_lesion_images_keep_their_own(tmp_path):
    rng = np.random.default_rng(0)
    # Distinct photographs: a random coarse pattern (vessels, lesions and illumination differ between eyes).
    arrays = np.kron(rng.integers(0, 256, (12, 8, 8, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8)
    rows, files = [], {}
    for i in range(8):  # eight IDRiD photographs with blank eye, the first five also in the lesion set
        files[f"images/idrid-{i}.png"] = arrays[i]
        rows.append((f"images/idrid-{i}.png", "idrid", f"idrid-tr{i:03d}", "", i % 5))
    for i in range(5):  # the lesion copy: the same photograph, resized and re-encoded (a little noise)
        noisy = np.clip(arrays[i].astype(int) + rng.integers(-3, 4, arrays[i].shape), 0, 255).astype(np.uint8)
        files[f"images/lesion-{i}.png"] = noisy
        rows.append((f"images/lesion-{i}.png", "lesions", f"lesions-{i:04d}", "", ""))
    for i in range(8, 12):  # DIARETDB1 stand-ins: no IDRiD twin (a different random fundus)
        files[f"images/lesion-{i}.png"] = arrays[i][::-1].copy()
        rows.append((f"images/lesion-{i}.png", "lesions", f"lesions-{i:04d}", "", ""))
    _write_cache(tmp_path, rows, files)

    records = read_cache_index(str(tmp_path))
    by_patient = {r.patient_id: r for r in records}
    for i in range(5):
        assert by_patient[f"lesions-{i:04d}"].split_id == f"idrid-tr{i:03d}"
    for i in range(8, 12):
        assert by_patient[f"lesions-{i:04d}"].split_id == f"lesions-{i:04d}"
    from fundus_cbr.data import split_of_record

    for i in range(5):
        assert split_of_record(by_patient[f"lesions-{i:04d}"], 0.2, 0.15) == split_of_record(by_patient[f"idrid-tr{i:03d}"], 0.2, 0.15)
    assert all(r.eye == "" for r in records)
    # Without linking every image keeps its own patient id.
    assert all(r.split_id == r.patient_id for r in read_cache_index(str(tmp_path), link_copies=False))


def test_a_split_key_column_in_the_index_is_used_as_it_is(tmp_path):
    images, _ = make_synthetic_fundus(2, 32, seed=1)
    arrays = images.permute(0, 2, 3, 1).numpy()
    os.makedirs(tmp_path / "images")
    for i in range(2):
        Image.fromarray(arrays[i]).save(tmp_path / f"images/{i}.png")
    (tmp_path / "index.csv").write_text(
        HEADER.strip() + ",split_key\n"
        + "images/0.png,idrid,images/0.png,idrid-tr001,,2,800,600,0,0,800,\n"
        + "images/1.png,lesions,images/1.png,lesions-0001,,,800,600,0,0,800,idrid-te777\n")
    records = read_cache_index(str(tmp_path))
    assert [r.split_id for r in records] == ["idrid-tr001", "idrid-te777"]


def test_pretraining_takes_training_patients_of_every_set_and_only_the_lesion_copies_of_their_photographs():
    from fundus_cbr.data import GRADED_SETS, select_pretraining_records, split_of_record

    graded = [_record(f"{s}-{i}", s) for s in GRADED_SETS for i in range(40)]
    # Lesion images: copies linked to an IDRiD patient (split key) and DIARETDB1 images without one.
    linked = [dataclasses.replace(_record(f"lesions-{i:04d}", "lesions", grade=-1), split_key=f"idrid-{i}")
              for i in range(60)]
    unlinked = [_record(f"lesions-{i:04d}", "lesions", grade=-1) for i in range(60, 120)]
    chosen = select_pretraining_records(graded + linked + unlinked, 0.2, 0.15)
    assert {r.patient_id for r in chosen if r.source_set != "lesions"} == {
        r.patient_id for r in graded if split_of_record(r, 0.2, 0.15) == "train"}
    lesions = [r for r in chosen if r.source_set == "lesions"]
    assert lesions and all(split_of_patient(r.split_key, 0.2, 0.15) == "train" for r in lesions)
    assert len(lesions) == sum(split_of_patient(r.split_key, 0.2, 0.15) == "train" for r in linked)
    # DIARETDB1 images are held out even where their own id hashes to "train".
    assert any(split_of_patient(r.patient_id, 0.2, 0.15) == "train" for r in unlinked)
    assert not any(r.split_key == "" for r in lesions)
    assert {split_of_record(r, 0.2, 0.15) for r in chosen} == {"train"}
