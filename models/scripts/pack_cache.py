"""Write a compact copy of the training cache for a remote GPU machine: TRAIN and VALIDATION patients only.

The held-out test patients never leave this machine (they are only scored here, after training). Images are
re-encoded as WebP (quality --quality) because the lossless PNG cache (~180 KB an image at 256 px) is far larger
than the 64 MiB that travels to a lent GPU per call (q85: ~11 KB an image at 256 px; JPEG q85 is ~35% larger);
the cost is a small train/serve pixel difference, stated in the model card.

With --max-mib the copy is cut into parts `part-1/`, `part-2/`, ... of at most that many MiB each (images and
index), one part per call to the GPU machine; `models/scripts/gpu_stage.sh` gathers them there into one cache
(the machine keeps files only while it stays warm, so the calls must follow one another). Without it, one
folder as before. The index gains a `split_key` column (data.link_lesion_copies), so the GPU side splits
exactly as this one without the lesion set. With --with-lesions the lesion set's copies of TRAINING patients'
IDRiD photographs travel too (ungraded: only self-supervised pretraining reads them,
data.select_pretraining_records); the held-out lesion images never do.

  /usr/bin/python3 models/scripts/pack_cache.py --cache models/cache/256 --out .gpu/cache256 --quality 85
  /usr/bin/python3 models/scripts/pack_cache.py --cache models/cache/384 --out .gpu/pack384 --max-mib 60
"""
from __future__ import annotations

import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from fundus_cbr.config import TrainConfig  # noqa: E402
from fundus_cbr.data import GRADED_SETS, LESION_SET, read_cache_index, select_pretraining_records, split_of_record  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--max-mib", type=float, default=None, help="cut into part-N folders of at most this size")
    parser.add_argument("--with-lesions", action="store_true",
                        help="also the lesion images that pretrain_ssl.py may use (copies of training patients' photographs)")
    args = parser.parse_args()
    from PIL import Image

    config = TrainConfig()
    with open(os.path.join(args.cache, "index.csv"), newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [f for f in (reader.fieldnames or []) if f != "split_key"] + ["split_key"]
        rows = list(reader)
    records = read_cache_index(args.cache)
    limit = None if args.max_mib is None else args.max_mib * 2**20
    parts: list = [[]]
    part_bytes, total_bytes, kept = 0, 0, 0

    def folder(number: int) -> str:
        return args.out if limit is None else os.path.join(args.out, f"part-{number}")

    os.makedirs(os.path.join(folder(1), "images"), exist_ok=True)
    for row, record in zip(rows, records):
        lesion_for_pretraining = (args.with_lesions and record.source_set == LESION_SET and
                                  select_pretraining_records([record], config.test_fraction, config.validation_fraction))
        if not lesion_for_pretraining and (row["source_set"] not in GRADED_SETS or row["grade"] in ("", None)):
            continue
        if split_of_record(record, config.test_fraction, config.validation_fraction) == "test":
            continue
        name = f"images/{kept:05d}.webp"  # numbered across parts, so parts merge without clashes
        target = os.path.join(folder(len(parts)), name)
        with Image.open(os.path.join(args.cache, row["cache_path"])) as image:
            image.convert("RGB").save(target, "WEBP", quality=args.quality, method=4)
        size = os.path.getsize(target) + 200  # and its index row
        if limit is not None and part_bytes + size > limit and parts[-1]:
            parts.append([])
            os.makedirs(os.path.join(folder(len(parts)), "images"), exist_ok=True)
            os.replace(target, os.path.join(folder(len(parts)), name))
            part_bytes = 0
        part_bytes += size
        total_bytes += size
        kept += 1
        parts[-1].append({**row, "cache_path": name, "split_key": record.split_key})
    for number, part in enumerate(parts, start=1):
        with open(os.path.join(folder(number), "index.csv"), "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(part)
    lesions = sum(row["source_set"] == LESION_SET for part in parts for row in part)
    print(f"{kept} train/validation images of {len(rows)}" + (f" ({lesions} lesion copies of training patients')"
                                                             if args.with_lesions else "")
          + f", {total_bytes / 2**20:.1f} MiB"
          + (f" in {len(parts)} parts of at most {args.max_mib:g} MiB" if limit is not None else ""))


if __name__ == "__main__":
    main()
