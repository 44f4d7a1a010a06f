"""Batch-1 embedding latency on ONE CPU core, PyTorch vs onnxruntime-node, side by side in one run.

  /usr/bin/python3 models/scripts/bench_inference.py --onnx models/fundus-cbr.onnx --checkpoint models/runs/mirror-ftl/best.pt

PyTorch runs with torch.set_num_threads(1); onnxruntime-node with intraOpNumThreads 1 (models/scripts/onnx_node.mjs
bench). Both are warmed up first; figures are medians over --iterations single-image calls.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import torch  # noqa: E402

from fundus_cbr.checkpoint import load_checkpoint  # noqa: E402

NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx_node.mjs")


def time_pytorch(model, size: int, iterations: int) -> dict:
    image = (torch.arange(3 * size * size, dtype=torch.float32) * 7919 % 256).reshape(1, 3, size, size)
    times = []
    with torch.no_grad():
        for _ in range(5):
            model(image)
        for _ in range(iterations):
            start = time.perf_counter()
            model(image)
            times.append((time.perf_counter() - start) * 1000)
    return {"ms_per_image_median": statistics.median(times), "ms_per_image_mean": statistics.fmean(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_checkpoint(args.checkpoint)
    size = model.config.input_size
    pytorch = time_pytorch(model, size, args.iterations)
    completed = subprocess.run(
        ["node", NODE_SCRIPT, "bench", args.onnx, str(size), str(args.iterations), "1"],
        check=True, capture_output=True, text=True,
    )
    onnx = json.loads(completed.stdout.strip().splitlines()[-1])
    result = {
        "input_size": size,
        "pytorch_1_core": pytorch,
        "onnxruntime_node_1_core": onnx,
        "speedup_onnx_over_pytorch_median": pytorch["ms_per_image_median"] / onnx["ms_per_image_median"],
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    print(f"PyTorch {pytorch['ms_per_image_median']:.1f} ms, onnxruntime-node {onnx['ms_per_image_median']:.1f} ms per image "
          f"(median, batch 1, 1 core): ONNX/PyTorch time ratio {onnx['ms_per_image_median'] / pytorch['ms_per_image_median']:.2f}")


if __name__ == "__main__":
    main()
