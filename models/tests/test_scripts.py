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
