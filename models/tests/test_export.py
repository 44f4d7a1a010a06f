import json
import os
import shutil

import numpy as np
import pytest
import torch

from fundus_cbr.config import ModelConfig
from fundus_cbr.export import ORT_NODE, export_onnx, read_contract, run_in_onnxruntime_node
from fundus_cbr.model import FundusEmbedder

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.isdir(ORT_NODE),
    reason="node or node_modules/onnxruntime-node missing: run npm ci at the repository root",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = FundusEmbedder(ModelConfig(input_size=64, attention="mirror")).eval()
    # Non-zero mirror output projections, so the exported graph really uses the attention path.
    for branch in (model.mirror.horizontal, model.mirror.vertical):
        torch.nn.init.normal_(branch.output.weight, std=0.1)
    directory = tmp_path_factory.mktemp("onnx")
    path = str(directory / "model.onnx")
    sidecar = export_onnx(model, path)
    return model, path, sidecar, directory


def test_export_writes_contract_names_metadata_and_sidecar(exported):
    import onnx

    model, path, sidecar, _ = exported
    contract = read_contract()
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == [contract["input_name"]]
    assert [o.name for o in proto.graph.output] == [contract["embedding_output"], contract["attention_output"], contract["feature_map_output"]]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata[contract["metadata_keys"]["embedding_dim"]] == "128"
    assert metadata[contract["metadata_keys"]["input_size"]] == "64"
    with open(path + ".json") as handle:
        assert json.load(handle)["metadata_props"] == metadata == sidecar["metadata_props"]


@needs_node
def test_onnxruntime_node_matches_pytorch_for_another_batch_size(exported):
    model, path, _, directory = exported
    torch.manual_seed(1)
    images = torch.rand(3, 3, 64, 64) * 255  # exported with batch 2: checks the dynamic batch axis too
    with torch.no_grad():
        expected = model(images)
    outputs = run_in_onnxruntime_node(path, images, str(directory))
    assert np.abs(outputs["embedding"] - expected.embedding.numpy()).max() < 1e-4
    assert np.abs(outputs["attention"] - expected.attention.numpy()).max() < 1e-5


def test_export_leaves_the_model_in_eval_mode(exported):
    model = exported[0]
    assert not model.training and not any(m.training for m in model.modules())


def test_the_model_version_names_the_weights_so_two_trainings_never_share_one():
    from fundus_cbr.export import versioned, weights_fingerprint

    torch.manual_seed(0)
    first = FundusEmbedder(ModelConfig(input_size=32, attention="none"))
    same = FundusEmbedder(ModelConfig(input_size=32, attention="none"))
    same.load_state_dict(first.state_dict())
    assert weights_fingerprint(first) == weights_fingerprint(same)
    with torch.no_grad():
        same.projection.bias[0] += 1e-6  # one changed number is a different model
    assert weights_fingerprint(first) != weights_fingerprint(same)
    assert versioned(first, "0.2.0") == f"0.2.0+w{weights_fingerprint(first)}"
    assert len(weights_fingerprint(first)) == 8
    assert versioned(first, "0.2.0+custom") == "0.2.0+custom"  # a release that names its build is kept
