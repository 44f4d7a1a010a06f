"""Write the held-out TEST patients' labels as test-<set>.csv (image,patient_id,eye,grade), so the TypeScript
evaluate CLI scores exactly the patients the model card reports. Image paths are ABSOLUTE (a reader resolves a
relative path against the CSV's folder only when it is not absolute). The split is the same hash of patient_id
that training uses (fundus_cbr.data.split_of_patient), so no split file is needed.

  /usr/bin/python3 models/scripts/write_split_labels.py --data ../shared/data --out /tmp/fundus-test-labels
"""
from __future__ import annotations

import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from fundus_cbr.config import TrainConfig  # noqa: E402
from fundus_cbr.data import GRADED_SETS, split_of_patient  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="shared data dir with <set>/labels.csv")
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    args = parser.parse_args()
    config = TrainConfig()
    os.makedirs(args.out, exist_ok=True)
    for source_set in GRADED_SETS:
        labels = os.path.join(args.data, source_set, "labels.csv")
        if not os.path.exists(labels):
            print(f"skip {source_set}: {labels} missing")
            continue
        rows, patients = [], set()
        with open(labels, newline="") as handle:
            for row in csv.DictReader(handle):
                if split_of_patient(row["patient_id"], config.test_fraction, config.validation_fraction) == args.split:
                    image = os.path.abspath(os.path.join(args.data, source_set, row["image"]))
                    rows.append([image, row["patient_id"], row["eye"], row["grade"]])
                    patients.add(row["patient_id"])
        path = os.path.join(args.out, f"{args.split}-{source_set}.csv")
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "patient_id", "eye", "grade"])
            writer.writerows(rows)
        print(f"{path}: {len(rows)} images, {len(patients)} patients")


if __name__ == "__main__":
    main()
