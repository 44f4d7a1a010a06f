"""Score trained checkpoints on the held-out TEST patients (never used for training or selection).

  /usr/bin/python3 models/scripts/evaluate.py --cache models/cache/256 --data ../shared/data \
      --model mirror-ftl=models/runs/mirror-ftl/best.pt --model gem-triplet=models/runs/gem-triplet/best.pt \
      --reference mirror-ftl --out models/results/test-metrics.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from fundus_cbr.checkpoint import load_checkpoint, read_checkpoint_extra  # noqa: E402
from fundus_cbr.config import TrainConfig  # noqa: E402
from fundus_cbr.data import (  # noqa: E402
    AS_TAKEN_SETS,
    GRADED_SETS,
    LESION_SET,
    LoadedSplit,
    load_images,
    load_split,
    read_cache_index,
    read_lesion_boxes,
    split_of_patient,
)
from fundus_cbr.evaluation import evaluate_models, per_grade_markdown, results_to_markdown  # noqa: E402


def cache_size(cache_dir: str) -> Optional[int]:
    """The side of a cache's images (they are all one size), read from its first image."""
    records = read_cache_index(cache_dir)
    if not records:
        return None
    with Image.open(os.path.join(cache_dir, records[0].cache_path)) as image:
        return image.size[0]


def cache_for(caches: List[str], sizes: Dict[str, Optional[int]], size: int) -> str:
    """The cache whose images are `size` px (the product's preprocessing at that size), else the first (resized)."""
    return next((c for c in caches if sizes[c] == size), caches[0])


def images_at_size(cache: str, size: int, test, case_base, lesion_records):
    """The same photographs as the first cache's splits, in the same order, read from `cache` at `size` px."""
    by_key = {(r.source_set, r.image): r for r in read_cache_index(cache)}

    def load(records):
        missing = [r.image for r in records if (r.source_set, r.image) not in by_key]
        if missing:
            raise SystemExit(f"{cache} lacks {len(missing)} photographs of the first cache, e.g. {missing[0]}")
        return load_images([by_key[(r.source_set, r.image)] for r in records], cache, size)

    return (load(test.records), load(case_base.records) if case_base is not None else None,
            load(lesion_records) if lesion_records else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, action="append",
                        help="cache dir (npm run build-cache); repeat it with caches of other sizes: a model whose "
                             "input size has a cache of its own reads that one (the product's preprocessing at that "
                             "size), else the first cache resized")
    parser.add_argument("--data", default=None, help="shared data dir (for lesions/boxes.csv); lesions skipped without it")
    parser.add_argument("--model", action="append", required=True, help="name=checkpoint.pt, repeatable")
    parser.add_argument("--reference", default=None, help="model name that paired differences are computed against")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True, help="JSON results file")
    parser.add_argument("--lesion-split", choices=("all", "held-out"), default="all",
                        help="held-out: only lesion images no model trained on (IDRiD copies of test patients, and "
                             "DIARETDB1), for models trained with idrid")
    parser.add_argument("--no-case-base", action="store_true",
                        help="skip the search of the test photographs against every other patient's photographs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig()
    started = time.time()
    models = {}
    selection = {}
    for item in args.model:
        name, path = item.split("=", 1)
        models[name] = load_checkpoint(path)
        extra = read_checkpoint_extra(path)
        selection[name] = {"checkpoint": path, "selected_step": extra.get("step"), "validation": extra.get("validation")}
    # The first cache names the photographs (splits, order); each model reads them from the cache of its own size.
    caches = args.cache
    primary = caches[0]
    sizes = {cache: cache_size(cache) for cache in caches}
    size = next(iter(models.values())).config.input_size
    test = load_split(primary, "test", GRADED_SETS, config.test_fraction, config.validation_fraction, size)
    train_grades = np.asarray([r.grade for r in read_cache_index(primary) if r.source_set in GRADED_SETS
                               and r.grade >= 0])
    majority = int(np.bincount(train_grades).argmax())
    lesion_records, lesion_images, boxes = [], None, {}
    if args.data:
        lesion_records = [r for r in read_cache_index(primary) if r.source_set == LESION_SET]
        if args.lesion_split == "held-out":
            # An IDRiD copy carries its photograph's patient id as split key; an unlinked image (DIARETDB1) has none.
            lesion_records = [r for r in lesion_records if not r.split_key or split_of_patient(
                r.split_key, config.test_fraction, config.validation_fraction) == "test"]
        lesion_images = load_images(lesion_records, primary, size)
        boxes = read_lesion_boxes(os.path.join(args.data, "lesions", "boxes.csv"))
    case_base = None
    if not args.no_case_base:
        parts = [load_split(primary, split, AS_TAKEN_SETS, config.test_fraction, config.validation_fraction, size)
                 for split in ("train", "validation")]
        case_base = LoadedSplit(parts[0].records + parts[1].records, torch.cat([p.images for p in parts]),
                                np.concatenate([p.grades for p in parts]), np.concatenate([p.patients for p in parts]))
    images_by_model = {}
    for name, model in models.items():
        own = cache_for(caches, sizes, model.config.input_size)
        if model.config.input_size != size or own != primary:
            images_by_model[name] = images_at_size(own, model.config.input_size, test, case_base, lesion_records)
    results = evaluate_models(models, test, lesion_records, lesion_images, boxes, majority, args.reference, args.bootstrap,
                              log=lambda line: print(line, flush=True), case_base=case_base, images_by_model=images_by_model)
    results["selection"] = selection
    results["lesion_split"] = args.lesion_split
    results["majority_grade"] = majority
    results["wall_seconds"] = time.time() - started
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)
    for group in results["groups"]:
        first = next(iter(results["groups"][group].values()))
        gallery = f", gallery {first['gallery_images']} photographs" if "gallery_images" in first else ""
        print(f"\n### {group}: {first['queries']} test images, {first['patients']} patients{gallery}\n")
        print(results_to_markdown(results, group))
        print()
        print(per_grade_markdown(results, group))
    print("\n### lesion mass ratio (1.0 = uniform)\n")
    for name, entry in results["lesions"].items():
        print(f"{name} ({entry['map']}): mean {entry['mean_ratio']:.2f} [{entry['ci95'][0]:.2f}, {entry['ci95'][1]:.2f}], "
              f"median {entry['median_ratio']:.2f}, {entry['images']} images")
    print("\n### lesion mass ratio, paired over the same images\n")
    for name, pairs in results.get("lesion_paired", {}).items():
        print(name, {k: f"{v['difference']:+.2f} [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}]" for k, v in pairs.items()})
    print("\n### paired differences (reference - model)\n")
    for pair, groups in results["paired_differences"].items():
        for group, values in groups.items():
            print(pair, group, {k: f"{v['difference']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]" for k, v in values.items()})


if __name__ == "__main__":
    main()
