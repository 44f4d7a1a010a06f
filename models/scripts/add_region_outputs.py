"""Give an exported model the region outputs (search by region, explanation) without changing its weights.

  /usr/bin/python3 models/scripts/add_region_outputs.py --onnx models/fundus-cbr.onnx \
      --check-out models/results/region-export-check.json

Adds the `feature_map` output to the file in place, writes `<model>.region.onnx` beside it and records both in the
sidecar (fundus_cbr.region). Then runs the file as it was and as it is now in onnxruntime-node on the same images
and writes the largest differences: `embedding` and `attention` must be identical (max |diff| 0), and the region
head over a mask of ones must give the whole-image embedding.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

from fundus_cbr.data import make_synthetic_fundus  # noqa: E402
from fundus_cbr.export import run_in_onnxruntime_node, run_region_head_in_onnxruntime_node  # noqa: E402
from fundus_cbr.region import add_region_outputs, region_head_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--check-out", help="write the equality check here (JSON)")
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    metadata = {p.key: p.value for p in onnx.load(args.onnx).metadata_props}
    size = int(metadata["fundus_cbr.input_size"])
    images, _ = make_synthetic_fundus(args.images, size, seed=3)
    images = images.float()
    with tempfile.TemporaryDirectory() as work:
        before_path = os.path.join(work, "before.onnx")
        shutil.copyfile(args.onnx, before_path)
        before = run_in_onnxruntime_node(before_path, images, os.path.join(work, "before"))
        add_region_outputs(args.onnx)
        after = run_in_onnxruntime_node(args.onnx, images, os.path.join(work, "after"))
        feature_map = after["feature_map"]
        mask = np.ones((len(images), 1) + feature_map.shape[2:], dtype=np.float32)
        head = run_region_head_in_onnxruntime_node(region_head_path(args.onnx), feature_map, mask, os.path.join(work, "head"))
    report = {
        "command": "/usr/bin/python3 models/scripts/add_region_outputs.py --onnx " + args.onnx,
        "model_version": metadata.get("fundus_cbr.model_version"),
        "images": f"{len(images)} synthetic fundus images (fundus_cbr.data.make_synthetic_fundus, seed 3), {size} px",
        "outputs_before": sorted(before), "outputs_after": sorted(after),
        "embedding_max_abs_diff": float(np.abs(after["embedding"] - before["embedding"]).max()),
        "attention_max_abs_diff": float(np.abs(after["attention"] - before["attention"]).max()),
        "feature_map_shape": list(feature_map.shape),
        "region_head_full_mask_vs_embedding_max_abs_diff": float(np.abs(head["embedding"] - before["embedding"]).max()),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.check_out:
        with open(args.check_out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
