"""Writes tiny ONNX models that honour models/contract.json, for the TypeScript embedder's tests.

Run from the repository root with the system interpreter that has torch:
    /usr/bin/python3 apps/api/src/embedding/testing/make-tiny-model.py
Outputs (committed, a few KB each, deterministic weights from a fixed seed):
    test/fixtures/models/tiny-fundus-cbr.onnx          metadata in ONNX metadata_props
    test/fixtures/models/tiny-fundus-cbr-sidecar.onnx  no metadata_props; metadata in the sidecar .json
    test/fixtures/models/tiny-fundus-cbr-regions.onnx  with the contract's feature_map output, and beside it
    test/fixtures/models/tiny-fundus-cbr-regions.region.onnx  its region head (search by region, explanation)
The models are not trained and mean nothing; they have the contract's names, layout and shapes:
    image (B, 3, 64, 64) float32 RGB 0-255 -> embedding (B, 128) (NOT L2-normalised, so the wrapper's
    normalisation is observable) and attention (B, 16, 16) (softmax over the 16x16 grid, sums to 1).
The region model instead pools an (B, 16, 8, 8) feature map, the 8 x 8 grid of the shipped model, with GeM (a
learnable p, as models/src/fundus_cbr/model.py) before its projection; its attention is (B, 8, 8). Its
feature_map output and region head are made by models/src/fundus_cbr/region.py, the functions the real export
uses (export.py), so the fixture goes through the same graph surgery: a mask of ones gives the whole-image
embedding. Its model version differs, so its embeddings can never be compared with the plain tiny model's.
"""
import importlib.util
import json
import pathlib

import onnx
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[5]
CONTRACT = json.loads((ROOT / "models" / "contract.json").read_text())
OUT = ROOT / "test" / "fixtures" / "models"
INPUT_SIZE = 64
MODEL_VERSION = "tiny-test-1"
REGION_MODEL_VERSION = "tiny-test-regions-1"


def load_region_module():
    """models/src/fundus_cbr/region.py by path: the package's __init__ is not needed for graph surgery."""
    spec = importlib.util.spec_from_file_location("fundus_cbr_region", ROOT / "models" / "src" / "fundus_cbr" / "region.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TinyFundusModel(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 8, kernel_size=4, stride=4)  # (B, 8, 16, 16)
        self.attention_logits = nn.Conv2d(8, 1, kernel_size=1)
        self.project = nn.Linear(8, dim)

    def forward(self, image: torch.Tensor):
        x = (image / 255.0 - 0.5) / 0.25  # normalisation inside the model, as the contract says
        features = torch.relu(self.features(x))
        b, c, h, w = features.shape
        attention = torch.softmax(self.attention_logits(features).reshape(b, h * w), dim=1)  # (B, h*w)
        pooled = torch.bmm(features.reshape(b, c, h * w), attention.unsqueeze(2)).squeeze(2)  # (B, C)
        return self.project(pooled) + 0.1, attention.reshape(b, h, w)


class TinyGeM(nn.Module):
    """GeM as models/src/fundus_cbr/model.py writes it, so region.py finds the pattern it rebuilds."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return features.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)  # (B, C)


class TinyRegionFundusModel(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 16, kernel_size=8, stride=8)  # (B, 16, 8, 8)
        self.attention_logits = nn.Conv2d(16, 1, kernel_size=1)
        self.pool = TinyGeM()
        self.project = nn.Linear(16, dim)

    def forward(self, image: torch.Tensor):
        x = (image / 255.0 - 0.5) / 0.25
        # + 0.05 keeps every cell above GeM's clamp, so no cell of a black surround has an all-eps descriptor.
        features = torch.relu(self.features(x)) + 0.05
        b, _, h, w = features.shape
        attention = torch.softmax(self.attention_logits(features).reshape(b, h * w), dim=1).reshape(b, h, w)
        return self.project(self.pool(features)), attention


def export(path: pathlib.Path, with_metadata: bool, with_regions: bool = False) -> None:
    torch.manual_seed(0)
    dim = CONTRACT["embedding_dim"]
    model = (TinyRegionFundusModel(dim) if with_regions else TinyFundusModel(dim)).eval()
    torch.onnx.export(
        model,
        torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE) * 255,
        str(path),
        input_names=[CONTRACT["input_name"]],
        output_names=[CONTRACT["embedding_output"], CONTRACT["attention_output"]],
        dynamic_axes={
            CONTRACT["input_name"]: {0: "batch"},
            CONTRACT["embedding_output"]: {0: "batch"},
            CONTRACT["attention_output"]: {0: "batch"},
        },
        opset_version=13,
        do_constant_folding=True,
    )
    keys = CONTRACT["metadata_keys"]
    metadata = {
        keys["model_version"]: REGION_MODEL_VERSION if with_regions else MODEL_VERSION,
        keys["input_size"]: str(INPUT_SIZE),
        keys["embedding_dim"]: str(CONTRACT["embedding_dim"]),
    }
    proto = onnx.load(str(path))
    if with_metadata:
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    else:
        path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    if with_regions:
        region = load_region_module()
        region.add_feature_map_output(proto)
        head = region.build_region_head(proto, CONTRACT["embedding_output"])
        onnx.checker.check_model(head)
        onnx.save(head, region.region_head_path(str(path)))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    export(OUT / "tiny-fundus-cbr.onnx", with_metadata=True)
    export(OUT / "tiny-fundus-cbr-sidecar.onnx", with_metadata=False)
    export(OUT / "tiny-fundus-cbr-regions.onnx", with_metadata=True, with_regions=True)
