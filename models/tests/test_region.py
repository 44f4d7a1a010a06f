import os
import shutil

import numpy as np
import pytest
import torch

from fundus_cbr.config import ModelConfig
from fundus_cbr.export import ORT_NODE, ExportWrapper, export_onnx, run_in_onnxruntime_node, run_region_head_in_onnxruntime_node
from fundus_cbr.model import FundusEmbedder
from fundus_cbr.region import add_region_outputs, region_head_path

needs_node = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.isdir(ORT_NODE),
    reason="node or node_modules/onnxruntime-node missing: run npm ci at the repository root",
)


def _model(attention: str) -> FundusEmbedder:
    torch.manual_seed(0)
    model = FundusEmbedder(ModelConfig(input_size=128, attention=attention)).eval()
    if model.mirror is not None:
        for branch in (model.mirror.horizontal, model.mirror.vertical):
            torch.nn.init.normal_(branch.output.weight, std=0.1)
    with torch.no_grad():
        model.pool.p.fill_(2.5)  # a learned-looking exponent, not the default 3, so the head must read it
    return model


def _plain_region_embedding(model: FundusEmbedder, feature_map: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GeM over the weighted cells written as a loop over cells, then the projection: the head's reference."""
    p = float(model.pool.p.clamp(min=1.0))
    rows = []
    for b in range(feature_map.shape[0]):
        total, weight = torch.zeros(feature_map.shape[1]), 0.0
        for y in range(feature_map.shape[2]):
            for x in range(feature_map.shape[3]):
                w = float(mask[b, 0, y, x])
                total += w * feature_map[b, :, y, x].clamp(min=1e-6).pow(p)
                weight += w
        rows.append((total / weight).pow(1.0 / p))
    return torch.nn.functional.normalize(model.projection(torch.stack(rows)), dim=1)


@needs_node
@pytest.mark.parametrize("attention", ["mirror", "none"])
def test_the_region_head_pools_the_feature_map_like_the_model_under_any_mask(tmp_path, attention):
    model = _model(attention)
    path = str(tmp_path / "model.onnx")
    export_onnx(model, path)
    torch.manual_seed(1)
    images = torch.rand(2, 3, 128, 128) * 255
    with torch.no_grad():
        expected = model(images)
    outputs = run_in_onnxruntime_node(path, images, str(tmp_path / "main"))
    assert np.abs(outputs["feature_map"] - expected.feature_map.numpy()).max() < 1e-4
    feature_map = outputs["feature_map"]
    ones = np.ones((2, 1) + feature_map.shape[2:], dtype=np.float32)
    whole = run_region_head_in_onnxruntime_node(region_head_path(path), feature_map, ones, str(tmp_path / "whole"))
    assert np.abs(whole["embedding"] - outputs["embedding"]).max() < 1e-5
    mask = np.zeros_like(ones)
    mask[0, 0, :2, :3] = 1.0
    mask[0, 0, 2, 3] = 0.25  # a cell a rectangle covers a quarter of
    mask[1, 0, 1:, 1:] = 1.0
    region = run_region_head_in_onnxruntime_node(region_head_path(path), feature_map, mask, str(tmp_path / "region"))
    with torch.no_grad():
        reference = _plain_region_embedding(model, torch.from_numpy(feature_map), torch.from_numpy(mask))
    assert np.abs(region["embedding"] - reference.numpy()).max() < 1e-5
    assert np.abs(region["embedding"] - whole["embedding"]).max() > 1e-3  # a region is not the whole image


@needs_node
def test_adding_the_region_outputs_to_an_old_export_leaves_embedding_and_attention_bit_identical(tmp_path):
    import onnx

    model = _model("mirror")
    path = str(tmp_path / "old.onnx")
    # An export as it was before feature_map existed: the two contract outputs only.
    torch.onnx.export(ExportWrapper(model).eval(), torch.rand(2, 3, 128, 128) * 255, path, input_names=["image"],
                      output_names=["embedding", "attention"], dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}, "attention": {0: "batch"}},
                      opset_version=13)
    images = torch.rand(3, 3, 128, 128) * 255
    before = run_in_onnxruntime_node(path, images, str(tmp_path / "before"))
    initializers_before = {i.name: bytes(i.raw_data) for i in onnx.load(path).graph.initializer}
    add_region_outputs(path)
    add_region_outputs(path)  # idempotent
    proto = onnx.load(path)
    assert [o.name for o in proto.graph.output] == ["embedding", "attention", "feature_map"]
    assert {i.name: bytes(i.raw_data) for i in proto.graph.initializer} == initializers_before
    after = run_in_onnxruntime_node(path, images, str(tmp_path / "after"))
    assert np.array_equal(after["embedding"], before["embedding"])
    assert np.array_equal(after["attention"], before["attention"])
    with torch.no_grad():
        assert np.abs(after["feature_map"] - model(images).feature_map.numpy()).max() < 1e-4
