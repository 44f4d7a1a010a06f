"""Write a compact copy of the training cache for a remote GPU machine: TRAIN and VALIDATION patients only.

The held-out test patients never leave this machine (they are only scored here, after training). Images are
re-encoded as WebP (quality --quality) because the lossless PNG cache (~180 KB an image) is far larger than the
64 MiB that travels to a lent GPU (q85: ~11 KB an image, ~40 MiB for 3.8k images; JPEG q85 is ~35% larger); the
cost is a small train/serve pixel difference, stated in the model card.

  /usr/bin/python3 models/scripts/pack_cache.py --cache models/cache/256 --out .gpu/cache256 --quality 85
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
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quality", type=int, default=85)
    args = parser.parse_args()
    from PIL import Image

    config = TrainConfig()
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    with open(os.path.join(args.cache, "index.csv"), newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames
        rows = list(reader)
    kept, total_bytes = [], 0
    for row in rows:
        if row["source_set"] not in GRADED_SETS or row["grade"] in ("", None):
            continue
        if split_of_patient(row["patient_id"], config.test_fraction, config.validation_fraction) == "test":
            continue
        name = f"images/{len(kept):05d}.webp"
        target = os.path.join(args.out, name)
        with Image.open(os.path.join(args.cache, row["cache_path"])) as image:
            image.convert("RGB").save(target, "WEBP", quality=args.quality, method=4)
        total_bytes += os.path.getsize(target)
        kept.append({**row, "cache_path": name})
    with open(os.path.join(args.out, "index.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    print(f"{len(kept)} train/validation images of {len(rows)}, {total_bytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
