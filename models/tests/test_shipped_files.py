"""The shipped model's files agree with each other: ONNX metadata, sidecar, region head and the reuse calibration
name one model version (a new export that forgets one of them serves an uncalibrated or mismatched suggestion)."""
from __future__ import annotations

import json
import os
import re

import pytest

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ONNX = os.path.join(MODELS, "fundus-cbr.onnx")


@pytest.mark.skipif(not os.path.exists(ONNX), reason="no shipped model in this checkout")
def test_the_shipped_files_name_one_model_version():
    onnx = pytest.importorskip("onnx")
    metadata = {p.key: p.value for p in onnx.load(ONNX).metadata_props}
    with open(ONNX + ".json") as handle:
        sidecar = json.load(handle)
    with open(os.path.join(MODELS, "fundus-cbr.reuse.json")) as handle:
        reuse = json.load(handle)
    version = metadata["fundus_cbr.model_version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\+w[0-9a-f]{8}", version)
    assert sidecar["metadata_props"] == metadata
    assert reuse["modelVersion"] == version
    assert os.path.exists(os.path.join(MODELS, sidecar["region_head"]["file"]))
    assert "feature_map" in [output.name for output in onnx.load(ONNX).graph.output]
