"""Serving budget at higher resolution: photograph to embedding on ONE CPU core in onnxruntime-node, the product's
path (models/scripts/serving_latency.mjs, pinned with taskset -c 0), for candidate backbones at 256-512 px.
Untrained weights (latency does not depend on them), exported with the product's exporter (fundus_cbr.export).

  nice -n 10 /usr/bin/python3 models/scripts/bench_serving_sizes.py --images ../shared/data/srahim/images \
      --count 20 --out models/results/serving-latency

Writes <out>.json and <out>.md. The target (issue 14): at most 60 ms from photograph to embedding on one core.
On a machine shared with other jobs, wall time includes waiting for the core; CPU time (process user + system
while pinned to one core) is what the photograph costs that core, and the figure the target is checked against.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import torch  # noqa: E402

from fundus_cbr.config import ModelConfig  # noqa: E402
from fundus_cbr.export import export_onnx  # noqa: E402
from fundus_cbr.model import FundusEmbedder  # noqa: E402

NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_latency.mjs")
BACKBONES = {
    "mirror w0.25 (shipped)": dict(attention="mirror", backbone_width=0.25),
    "GeM w0.25 (no attention: one view)": dict(attention="none", backbone_width=0.25),
    "mirror w0.5": dict(attention="mirror", backbone_width=0.5),
}
TARGET_MS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="folder of photographs as taken (e.g. ../shared/data/srahim/images)")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--sizes", default="256,384,448,512")
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backbone in args.backbones.split(","):
            for size in [int(s) for s in args.sizes.split(",")]:
                model = FundusEmbedder(ModelConfig(input_size=size, **BACKBONES[backbone])).eval()
                path = os.path.join(folder, f"m{size}.onnx")
                export_onnx(model, path, model_version=f"latency-probe-{size}")
                done = subprocess.run(["taskset", "-c", "0", "node", NODE_SCRIPT, path, args.images, str(args.count)],
                                      check=True, capture_output=True, text=True)
                report = json.loads(done.stdout.strip().splitlines()[-1])
                report.update(backbone=backbone, parameters=sum(p.numel() for p in model.parameters()),
                              load_average=os.getloadavg()[0])
                rows.append(report)
                print(f"{backbone} {size}px: end to end {report['endToEnd']['cpuMs']} ms CPU "
                      f"({report['endToEnd']['wallMs']} wall), model {report['model']['cpuMs']} CPU, "
                      f"preprocess {report['preprocess']['cpuMs']} CPU, load {report['load_average']:.1f}", flush=True)
    if args.out:
        lines = [
            f"Photograph to embedding, one core (taskset -c 0), onnxruntime-node through the product's Embedder; "
            f"`models/scripts/bench_serving_sizes.py {' '.join(sys.argv[1:])}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"median over {args.count} photographs after 3 warm-up ones. CPU ms = process user + system time (what "
            f"the core spent); wall ms includes waiting for the core on this shared machine (load = 1-minute load "
            f"average of its {os.cpu_count()} cores). Target <= {TARGET_MS:.0f} ms end to end.",
            "",
            "| backbone | px | parameters | preprocess CPU ms | model CPU ms | end to end CPU ms | end to end wall ms | within 60 ms (CPU) | load |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            end = r["endToEnd"]["cpuMs"]
            lines.append(f"| {r['backbone']} | {r['inputSize']} | {r['parameters']:,} | {r['preprocess']['cpuMs']} | "
                         f"{r['model']['cpuMs']} | {end} | {r['endToEnd']['wallMs']} | {'yes' if end <= TARGET_MS else 'no'} | "
                         f"{r['load_average']:.1f} |")
        with open(args.out + ".md", "w") as handle:
            handle.write("\n".join(lines) + "\n")
        with open(args.out + ".json", "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
