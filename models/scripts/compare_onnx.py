"""Compare exported ONNX files against their PyTorch checkpoint, in onnxruntime-node (the product's runtime), on real
photographs from the cache. Used to check that an export made under another torch (2.x on a GPU machine) gives the
same model as the checkpoint does here.

  /usr/bin/python3 models/scripts/compare_onnx.py --checkpoint models/runs/gpu3/mirror-ftl-reg/best.pt \\
      --onnx /work/.device/1/mirror-ftl-reg.torch2.onnx --onnx models/fundus-cbr.onnx --cache models/cache/256
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

from fundus_cbr.checkpoint import load_checkpoint  # noqa: E402
from fundus_cbr.config import TrainConfig  # noqa: E402
from fundus_cbr.data import AS_TAKEN_SETS, load_split  # noqa: E402
from fundus_cbr.export import run_in_onnxruntime_node, weights_fingerprint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--onnx", action="append", required=True, help="exported file, repeatable")
    parser.add_argument("--cache", required=True, help="cache dir (validation photographs are used)")
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
    model = load_checkpoint(args.checkpoint)
    config = TrainConfig()
    split = load_split(args.cache, "validation", AS_TAKEN_SETS, config.test_fraction, config.validation_fraction,
                       model.config.input_size)
    images = split.images[: args.images].float()
    with torch.no_grad():
        expected = model(images)
    report = {"checkpoint": args.checkpoint, "weights_version": f"w{weights_fingerprint(model)}", "images": len(images),
              "onnx": {}}
    for path in args.onnx:
        metadata = {p.key: p.value for p in onnx.load(path).metadata_props}
        with tempfile.TemporaryDirectory() as out_dir:
            outputs = run_in_onnxruntime_node(path, images, out_dir)
        report["onnx"][path] = {
            "model_version": metadata.get("fundus_cbr.model_version"),
            "embedding_max_abs_diff": float(np.abs(outputs["embedding"] - expected.embedding.numpy()).max()),
            "attention_max_abs_diff": float(np.abs(outputs["attention"] - expected.attention.numpy()).max()),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
