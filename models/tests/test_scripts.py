import csv
import os
import subprocess
import sys

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")


def test_write_split_labels_writes_absolute_paths_of_test_patients_only(tmp_path):
    data = tmp_path / "data"
    for source_set in ("srahim", "eyepacs-raw", "eyepacs-processed"):
        os.makedirs(data / source_set)
        rows = ["image,patient_id,eye,grade\n"] + [f"images/{i}.jpg,{source_set}-{i},L,{i % 5}\n" for i in range(200)]
        (data / source_set / "labels.csv").write_text("".join(rows))
    out = tmp_path / "out"
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "write_split_labels.py"), "--data", str(data), "--out", str(out)],
                   check=True, capture_output=True)
    with open(out / "test-srahim.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 20 <= len(rows) <= 60  # ~20% of 200 patients
    assert all(os.path.isabs(r["image"]) and r["image"].startswith(str(data / "srahim")) for r in rows)
    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.data import split_of_patient

    assert all(split_of_patient(r["patient_id"], 0.2, 0.15) == "test" for r in rows)


def test_pack_cache_ships_train_and_validation_patients_only_and_every_image_it_lists(tmp_path):
    from PIL import Image

    sys.path.insert(0, os.path.join(SCRIPTS, "..", "src"))
    from fundus_cbr.data import read_cache_index, split_of_patient

    cache = tmp_path / "cache"
    os.makedirs(cache / "crops")
    header = "cache_path,source_set,image,patient_id,eye,grade,orig_width,orig_height,crop_x,crop_y,crop_side\n"
    rows = []
    for i in range(60):
        source_set = ("srahim", "eyepacs-raw", "eyepacs-processed", "lesions")[i % 4]
        grade = "" if source_set == "lesions" else str(i % 5)
        Image.new("RGB", (16, 16), (i * 4, 80, 40)).save(cache / "crops" / f"{i}.png")
        rows.append(f"crops/{i}.png,{source_set},images/{i}.jpg,{source_set}-{i},L,{grade},16,16,0,0,16\n")
    (cache / "index.csv").write_text(header + "".join(rows))
    out = tmp_path / "packed"
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "pack_cache.py"), "--cache", str(cache), "--out", str(out)],
                   check=True, capture_output=True)
    packed = read_cache_index(str(out))
    expected = [r for r in read_cache_index(str(cache))
                if r.source_set != "lesions" and split_of_patient(r.patient_id, 0.2, 0.15) != "test"]
    assert [r.patient_id for r in packed] == [r.patient_id for r in expected]
    assert 0 < len(packed) < 45  # some graded patients are test patients and stayed behind
    for record in packed:
        with Image.open(out / record.cache_path) as image:
            assert image.format == "WEBP" and image.size == (16, 16)
