"""ONNX export following models/contract.json: input `image` (B, 3, S, S) float32 RGB 0-255, outputs `embedding`
(B, 128) L2-normalised, `attention` (B, h, w) heat map at feature resolution (sums to 1 per image) and
`feature_map` (B, C, h, w, what GeM pools), dynamic batch axis, metadata_props, a checker pass, a sidecar
<model>.onnx.json with the same metadata, and the region head <model>.region.onnx (region.py)."""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn

from . import MODEL_VERSION
from .model import FundusEmbedder
from .region import FEATURE_MAP_OUTPUT, REGION_MASK_INPUT, add_feature_map_output, build_region_head, region_head_path

CONTRACT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contract.json")
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
NODE_SCRIPT = os.path.join(REPO, "models", "scripts", "onnx_node.mjs")
ORT_NODE = os.path.join(REPO, "node_modules", "onnxruntime-node")
OPSET = 13  # the oldest opset the contract allows: every op here exists there, and onnxruntime-node runs it


def read_contract(path: str = CONTRACT_PATH) -> Dict[str, object]:
    with open(path) as handle:
        return json.load(handle)


class ExportWrapper(nn.Module):
    def __init__(self, model: FundusEmbedder) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        output = self.model(image)
        return output.embedding, output.attention


def weights_fingerprint(model: nn.Module) -> str:
    """First 8 hex digits of a SHA-256 over every state-dict tensor's name, dtype, shape and bytes, in name order:
    two different trainings never share a model version, so their embeddings are never mixed in one search."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        values = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{values.dtype}|{tuple(values.shape)}|".encode())
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()[:8]


def versioned(model: nn.Module, release: str) -> str:
    """'0.2.0' -> '0.2.0+w1a2b3c4d' (semver build metadata). A release that already names its build is kept."""
    return release if "+" in release else f"{release}+w{weights_fingerprint(model)}"


def export_metadata(model: FundusEmbedder, contract: Dict[str, object], model_version: str = MODEL_VERSION) -> Dict[str, str]:
    keys = contract["metadata_keys"]
    return {
        keys["model_version"]: model_version,
        keys["input_size"]: str(model.config.input_size),
        keys["embedding_dim"]: str(model.config.embedding_dim),
    }


def export_onnx(model: FundusEmbedder, path: str, model_version: str = MODEL_VERSION, extra_sidecar: Dict[str, object] = None) -> Dict[str, object]:
    """Writes path and path + '.json'; returns the sidecar content."""
    import onnx

    contract = read_contract()
    if model.config.embedding_dim != contract["embedding_dim"]:
        raise ValueError(f"embedding_dim {model.config.embedding_dim} != contract {contract['embedding_dim']}")
    model.eval()
    size = model.config.input_size
    example = torch.rand(2, 3, size, size) * 255.0
    input_name, embedding_name, attention_name = contract["input_name"], contract["embedding_output"], contract["attention_output"]
    # The wrapper must be in eval mode too: torch.onnx.export restores the wrapper's own mode afterwards, which
    # would otherwise switch the caller's model to training mode (BatchNorm on batch statistics).
    torch.onnx.export(
        ExportWrapper(model).eval(),
        example,
        path,
        input_names=[input_name],
        output_names=[embedding_name, attention_name],
        dynamic_axes={input_name: {0: "batch"}, embedding_name: {0: "batch"}, attention_name: {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        **_torchscript_exporter(),
    )
    metadata = export_metadata(model, contract, model_version)
    proto = onnx.load(path)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    add_feature_map_output(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
    head = build_region_head(proto, embedding_name)
    onnx.checker.check_model(head)
    onnx.save(head, region_head_path(path))
    feature_size = size // model.backbone.stride
    sidecar = {
        "metadata_props": metadata,
        "input": {"name": input_name, "shape": ["batch", 3, size, size], "dtype": "float32", "range": "RGB 0-255"},
        "outputs": {
            embedding_name: {"shape": ["batch", model.config.embedding_dim], "l2_normalised": True},
            attention_name: {
                "shape": ["batch", feature_size, feature_size],
                "meaning": _attention_meaning(model.config.attention),
                "sums_to": 1.0,
            },
            FEATURE_MAP_OUTPUT: {
                "shape": ["batch", int(head.graph.input[0].type.tensor_type.shape.dim[1].dim_value), "h", "w"],
                "meaning": "the map GeM pools before the projection (mirror: horizontal and vertical branches concatenated on channels), at feature resolution",
            },
        },
        "region_head": {
            "file": os.path.basename(region_head_path(path)),
            "inputs": {FEATURE_MAP_OUTPUT: "(B, C, h, w) as above", REGION_MASK_INPUT: "(B, 1, h, w) weight of each feature cell (share covered)"},
            "output": "embedding (B, D), L2-normalised: GeM over the masked cells with the model's p, then its projection",
        },
        "opset": OPSET,
        "model_config": json.loads(model.config.to_json()),
    }
    if extra_sidecar:
        sidecar.update(extra_sidecar)
    with open(path + ".json", "w") as handle:
        json.dump(sidecar, handle, indent=2)
    return sidecar


def _torchscript_exporter() -> Dict[str, object]:
    """torch 2.x may default to the dynamo exporter; the TorchScript one is what torch 1.13 has and what is tested."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _attention_meaning(kind: str) -> str:
    if kind == "mirror":
        return ("mirror attention: attention mass each anchor position receives from the mirrored views' queries, "
                "mean over the horizontal and vertical branches, at feature resolution (upsample to the input)")
    if kind == "cbam":
        return "CBAM spatial gate, normalised to sum 1, at feature resolution"
    return "per-position L2 norm of the backbone features (no attention module), normalised to sum 1"


def run_region_head_in_onnxruntime_node(head_path: str, feature_map: np.ndarray, mask: np.ndarray, out_dir: str) -> Dict[str, np.ndarray]:
    """Runs a region head (region.build_region_head) in onnxruntime-node on a feature map and a cell mask."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, array in (("feature_map", feature_map), ("mask", mask)):
        path = os.path.join(out_dir, f"{name}.in.f32")
        np.ascontiguousarray(array, dtype="<f4").tofile(path)
        paths += [path, ",".join(str(d) for d in array.shape)]
    subprocess.run(["node", NODE_SCRIPT, "run", head_path, paths[0], paths[1], out_dir, paths[2], paths[3]], check=True, cwd=REPO, timeout=300)
    with open(os.path.join(out_dir, "outputs.json")) as handle:
        dims = json.load(handle)
    return {name: np.fromfile(os.path.join(out_dir, f"{name}.f32"), dtype="<f4").reshape(d) for name, d in dims.items()}


def run_in_onnxruntime_node(model_path: str, images: torch.Tensor, out_dir: str) -> Dict[str, np.ndarray]:
    """Runs an exported model in onnxruntime-node (the product's runtime; needs node and `npm ci` at the repository
    root) on float32 RGB 0-255 images (B, 3, S, S); returns every output by name."""
    os.makedirs(out_dir, exist_ok=True)
    input_path = os.path.join(out_dir, "input.f32")
    images.numpy().astype("<f4").tofile(input_path)
    shape = ",".join(str(d) for d in images.shape)
    subprocess.run(["node", NODE_SCRIPT, "run", model_path, input_path, shape, out_dir], check=True, cwd=REPO, timeout=300)
    with open(os.path.join(out_dir, "outputs.json")) as handle:
        dims = json.load(handle)
    return {name: np.fromfile(os.path.join(out_dir, f"{name}.f32"), dtype="<f4").reshape(d) for name, d in dims.items()}
