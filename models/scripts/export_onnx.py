"""Export a trained checkpoint to ONNX (models/contract.json) with metadata and a <model>.onnx.json sidecar.

  /usr/bin/python3 models/scripts/export_onnx.py --checkpoint models/runs/mirror-ftl/best.pt --out models/fundus-cbr.onnx
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from fundus_cbr import MODEL_VERSION  # noqa: E402
from fundus_cbr.checkpoint import load_checkpoint, read_checkpoint_extra  # noqa: E402
from fundus_cbr.export import export_onnx, versioned  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model-version", default=MODEL_VERSION,
                        help="release; '+w<weights hash>' is appended unless it already has a '+' part")
    args = parser.parse_args()
    model = load_checkpoint(args.checkpoint)
    extra = read_checkpoint_extra(args.checkpoint)
    sidecar = export_onnx(
        model, args.out, versioned(model, args.model_version), {"training": {"selected_step": extra.get("step"), "validation": extra.get("validation")}}
    )
    print(json.dumps(sidecar["metadata_props"]), f"{os.path.getsize(args.out) / 1e6:.1f} MB", args.out)


if __name__ == "__main__":
    main()
