"""Writes tiny ONNX models that honour models/contract.json, for the TypeScript embedder's tests.

Run from the repository root with the system interpreter that has torch:
    /usr/bin/python3 apps/api/src/embedding/testing/make-tiny-model.py
Outputs (committed, a few KB each, deterministic weights from a fixed seed):
    test/fixtures/models/tiny-fundus-cbr.onnx          metadata in ONNX metadata_props
    test/fixtures/models/tiny-fundus-cbr-sidecar.onnx  no metadata_props; metadata in the sidecar .json
The model is not trained and means nothing; it has the contract's names, layout and shapes:
    image (B, 3, 64, 64) float32 RGB 0-255 -> embedding (B, 128) (NOT L2-normalised, so the wrapper's
    normalisation is observable) and attention (B, 16, 16) (softmax over the 16x16 grid, sums to 1).
"""
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


def export(path: pathlib.Path, with_metadata: bool) -> None:
    torch.manual_seed(0)
    model = TinyFundusModel(CONTRACT["embedding_dim"]).eval()
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
    )
    keys = CONTRACT["metadata_keys"]
    metadata = {
        keys["model_version"]: MODEL_VERSION,
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
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    export(OUT / "tiny-fundus-cbr.onnx", with_metadata=True)
    export(OUT / "tiny-fundus-cbr-sidecar.onnx", with_metadata=False)
