"""Validation-only probes of two test-time changes that need no training (never the test patients):
the inference resolution, and query expansion / database-side augmentation of the embeddings.

A network trained at one resolution often ranks better when fed slightly larger images at test time (Touvron et
al., "Fixing the train-test resolution discrepancy", NeurIPS 2019): random-resized-crop augmentation makes objects
look larger in training than in a plain resize at test. Here lesions are a few pixels wide at 256 px, so a larger
input might help. This script measures that on the VALIDATION patients only, so any resolution it favours can be
adopted and then reported once on test.

  npm run build-cache -- --size 320 --out models/cache/320 ../shared/data/srahim ../shared/data/eyepacs-raw \
      ../shared/data/eyepacs-processed
  /usr/bin/python3 models/scripts/validation_probes.py --cache models/cache/320 --sizes 256,288,320 \
      --model mirror-ftl-reg-solo=models/runs/gpu4/mirror-ftl-reg-solo/best.pt --out models/results/validation-probes.json

Images are loaded from one cache (built at the largest size) and resized to each size, so rows differ only in the
resolution. The model is rebuilt with input_size = size (the local-contrast blur scales with it, as a fraction of
the image); all weights are the checkpoint's.

At the trained size it also scores alpha query expansion and database-side augmentation (Radenovic et al. 2018):
a query, or each gallery embedding, is replaced by itself plus its k nearest neighbours weighted by similarity^alpha
(the own patient's photographs never count as neighbours), renormalised. Both would change how the product
searches, not the model, so they are only worth adopting with a clear validation gain.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fundus_cbr import metrics  # noqa: E402
from fundus_cbr.checkpoint import load_checkpoint  # noqa: E402
from fundus_cbr.config import TrainConfig  # noqa: E402
from fundus_cbr.data import AS_TAKEN_SETS, load_images, read_cache_index, select_records  # noqa: E402
from fundus_cbr.evaluation import embed_images, expand_with_neighbours, retrieval_against, retrieval_within  # noqa: E402
from fundus_cbr.model import FundusEmbedder  # noqa: E402

METRICS = ("macro_p@10", "knn_qwk", "p@10", "map@r")


def at_size(model: FundusEmbedder, size: int) -> FundusEmbedder:
    config = dataclasses.replace(model.config, input_size=size)
    resized = FundusEmbedder(config, with_classifier=model.classifier is not None)
    resized.load_state_dict(model.state_dict())
    return resized.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="cache built at (at least) the largest size")
    parser.add_argument("--sizes", default="224,256,288,320")
    parser.add_argument("--model", action="append", required=True, help="name=checkpoint.pt, repeatable")
    parser.add_argument("--expansion", default="3,5,10", help="neighbour counts k for query expansion / DBA")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    defaults = TrainConfig()
    index = read_cache_index(args.cache)
    split = {name: select_records(index, name, AS_TAKEN_SETS, defaults.test_fraction, defaults.validation_fraction)
             for name in ("validation", "train")}
    query_grades = np.asarray([r.grade for r in split["validation"]])
    query_patients = np.asarray([r.patient_id for r in split["validation"]])
    gallery_grades = np.concatenate([query_grades, [r.grade for r in split["train"]]])
    gallery_patients = np.concatenate([query_patients, [r.patient_id for r in split["train"]]])
    print(f"validation: {len(query_grades)} photographs as taken, {len(set(query_patients))} patients; "
          f"case-base gallery {len(gallery_grades)} photographs", flush=True)
    results = {"sizes": sizes, "cache": args.cache, "models": {}}
    for entry in args.model:
        name, path = entry.split("=", 1)
        trained = load_checkpoint(path)
        per_query = {}
        rows = {}
        expansions = []
        for size in sizes:
            started = time.time()
            model = at_size(trained, size)
            queries, _ = embed_images(model, load_images(split["validation"], args.cache, size))
            train_embeddings, _ = embed_images(model, load_images(split["train"], args.cache, size))
            within = retrieval_within(queries, query_grades, query_patients)
            against = retrieval_against(queries, query_grades, query_patients,
                                        np.concatenate([queries, train_embeddings]), gallery_grades, gallery_patients)
            per_query[size] = {"within": within, "case_base": against}
            if size == trained.config.input_size:
                gallery = np.concatenate([queries, train_embeddings])
                for k in (int(value) for value in args.expansion.split(",") if value):
                    for alpha in (1.0, 3.0):
                        expanded_queries = expand_with_neighbours(queries, query_patients, gallery, gallery_patients, k, alpha)
                        expanded_gallery = expand_with_neighbours(gallery, gallery_patients, gallery, gallery_patients, k, alpha)
                        for label, q, g in (("query_expansion", expanded_queries, gallery),
                                            ("database_augmentation", queries, expanded_gallery)):
                            summary = metrics.summarise_retrieval(retrieval_against(
                                q, query_grades, query_patients, g, gallery_grades, gallery_patients), query_grades)
                            expansions.append({"method": label, "k": k, "alpha": alpha,
                                               "case_base": {m: summary[m] for m in METRICS}})
                            print(f"{name} @ {size}px {label} k={k} alpha={alpha:g}: case_base "
                                  + " ".join(f"{m}={summary[m]:.3f}" for m in METRICS), flush=True)
            rows[size] = {
                "within": metrics.summarise_retrieval(within, query_grades),
                "case_base": metrics.summarise_retrieval(against, query_grades),
            }
            print(f"{name} @ {size}px ({time.time() - started:.0f} s): " + "; ".join(
                f"{protocol} " + " ".join(f"{m}={rows[size][protocol][m]:.3f}" for m in METRICS)
                for protocol in ("within", "case_base")), flush=True)
        trained_size = trained.config.input_size
        differences = {}
        for size in sizes:
            if size == trained_size or trained_size not in per_query:
                continue
            differences[str(size)] = {
                protocol: {
                    metric: {"difference": point, "ci95": interval}
                    for metric, (point, interval) in metrics.paired_bootstrap_difference(
                        per_query[size][protocol], per_query[trained_size][protocol], query_grades, query_patients,
                        METRICS, args.bootstrap, 0).items()
                }
                for protocol in ("within", "case_base")
            }
        results["models"][name] = {"checkpoint": path, "trained_size": trained_size,
                                   "validation": {str(s): r for s, r in rows.items()},
                                   f"minus_{trained_size}": differences, "expansion_case_base": expansions}
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
