"""Rebuild a training checkpoint from a shipped ONNX file, for fine-tuning it when its .pt file is gone.

Only models/fundus-cbr.onnx is committed; the checkpoint it was exported from stayed on the machine that trained it.
The export folded every BatchNorm into the convolution before it (W' = W gamma / sigma, b' = beta - gamma mu / sigma),
so gamma, beta and the running statistics cannot be read back. This script puts W' into each convolution and
RE-CALIBRATES its BatchNorm on real images: with m', v' the per-channel mean and variance of W'x over --images
images (computed with the rebuilt network in eval mode, whose outputs are then exactly the ONNX file's), it sets
running_mean = m', running_var = v', weight = sqrt(v' + eps), bias = m' + b'. In eval mode that BatchNorm is exactly
z + b' (so the checkpoint embeds as the ONNX file does; checked against onnxruntime-node below); in training mode it
normalises by batch statistics close to m', v', i.e. close to the original model's own behaviour. AdamW's
moments are lost: fine-tuning starts with a fresh optimiser.

  /usr/bin/python3 models/scripts/onnx_to_checkpoint.py --onnx models/fundus-cbr.onnx --cache models/cache/256 \
      --out /tmp/shipped/best.pt
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from fundus_cbr.checkpoint import save_checkpoint  # noqa: E402
from fundus_cbr.config import ModelConfig, TrainConfig  # noqa: E402
from fundus_cbr.data import AS_TAKEN_SETS, GRADED_SETS, load_split  # noqa: E402
from fundus_cbr.model import FundusEmbedder  # noqa: E402

NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx_node.mjs")


def batchnorm_of(conv_name: str) -> str:
    """The BatchNorm that follows a convolution in this project's modules."""
    head, _, last = conv_name.rpartition(".")
    if last in ("conv1", "conv2"):
        return f"{head}.bn{last[-1]}"
    if last == "0":  # downsample.0 -> downsample.1, mirror query.0 / key.0 -> .1
        return f"{head}.1"
    raise ValueError(f"no BatchNorm known after {conv_name}")


def conv_execution_order(model: FundusEmbedder, size: int):
    order, handles = [], []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: order.append(name)))
    with torch.no_grad():
        model(torch.rand(1, 3, size, size) * 255)
    for handle in handles:
        handle.remove()
    seen, unique = set(), []
    for name in order:
        if name not in seen:
            seen.add(name)
            unique.append(name)
    return unique


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--cache", required=True, help="cache with training patients' images (BatchNorm calibration)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--images", type=int, default=400, help="training images for the BatchNorm statistics")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import onnx
    from onnx import numpy_helper

    torch.set_num_threads(args.threads)
    graph = onnx.load(args.onnx)
    metadata = {p.key: p.value for p in graph.metadata_props}
    size = int(metadata["fundus_cbr.input_size"])
    config = ModelConfig(input_size=size)  # the shipped architecture (MODEL_CARD.md); shapes are checked below
    model = FundusEmbedder(config).eval()
    initializers = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.graph.initializer}
    state = model.state_dict()
    named = {k[len("model."):]: v for k, v in initializers.items() if k.startswith("model.")}
    for name, value in named.items():
        if state[name].shape != value.shape:
            raise ValueError(f"{name}: {tuple(value.shape)} in the ONNX file, {tuple(state[name].shape)} here")
        state[name] = value
    # Folded convolutions: Conv nodes whose weight is an anonymous initializer, in graph (execution) order.
    folded = []
    for node in graph.graph.node:
        if node.op_type == "Conv" and node.input[1] in initializers and not node.input[1].startswith("model."):
            pair = (node.input[1], node.input[2] if len(node.input) > 2 else None)
            if pair not in folded:
                folded.append(pair)
    convs = [n for n in conv_execution_order(model, size) if f"{n}.weight" not in named and f"{n}.weight" in state]
    if len(convs) != len(folded):
        raise ValueError(f"{len(folded)} folded convolutions in the ONNX file, {len(convs)} with BatchNorm here")
    biases = {}
    for conv, (weight_name, bias_name) in zip(convs, folded):
        weight = initializers[weight_name]
        if state[f"{conv}.weight"].shape != weight.shape:
            raise ValueError(f"{conv}: {tuple(weight.shape)} in the ONNX file, {tuple(state[f'{conv}.weight'].shape)} here")
        state[f"{conv}.weight"] = weight
        bn = batchnorm_of(conv)
        bias = initializers[bias_name] if bias_name else torch.zeros(weight.shape[0])
        biases[bn] = bias
        # Identity BatchNorm plus the folded bias for now: the network is then exactly the ONNX graph.
        state[f"{bn}.weight"] = torch.ones_like(bias)
        state[f"{bn}.bias"] = bias.clone()
        state[f"{bn}.running_mean"] = torch.zeros_like(bias)
        state[f"{bn}.running_var"] = torch.ones_like(bias) - model.get_submodule(bn).eps
    model.load_state_dict(state)

    # Calibration: statistics of each convolution's output over training images, in eval mode.
    defaults = TrainConfig()
    images = load_split(args.cache, "train", GRADED_SETS, defaults.test_fraction, defaults.validation_fraction, size).images
    chosen = torch.from_numpy(np.random.default_rng(0).choice(len(images), size=min(args.images, len(images)), replace=False))
    sums, squares, counts, handles = {}, {}, {}, []
    for conv in convs:
        def hook(module, inputs, output, conv=conv):
            values = output.detach().double().transpose(0, 1).flatten(1)
            sums[conv] = sums.get(conv, 0) + values.sum(1)
            squares[conv] = squares.get(conv, 0) + (values ** 2).sum(1)
            counts[conv] = counts.get(conv, 0) + values.shape[1]
        handles.append(model.get_submodule(conv).register_forward_hook(hook))
    with torch.no_grad():
        for start in range(0, len(chosen), 20):
            model(images[chosen[start:start + 20]].float())
    for handle in handles:
        handle.remove()
    for conv in convs:
        bn = batchnorm_of(conv)
        mean = (sums[conv] / counts[conv]).float()
        variance = (squares[conv] / counts[conv]).float() - mean ** 2
        variance = variance.clamp(min=1e-8)
        eps = model.get_submodule(bn).eps
        state[f"{bn}.running_mean"] = mean
        state[f"{bn}.running_var"] = variance
        state[f"{bn}.weight"] = torch.sqrt(variance + eps)
        state[f"{bn}.bias"] = mean + biases[bn]
    model.load_state_dict(state)
    model.eval()

    # Check against onnxruntime-node on a few calibration images: the rebuilt checkpoint must embed as the file does.
    sample = images[chosen[:4]].float()
    with torch.no_grad():
        ours = model(sample).embedding.numpy()
    with tempfile.TemporaryDirectory() as folder:
        sample.numpy().astype("<f4").tofile(os.path.join(folder, "input.f32"))
        subprocess.run(["node", NODE_SCRIPT, "run", args.onnx, os.path.join(folder, "input.f32"),
                        ",".join(map(str, sample.shape)), folder], check=True, capture_output=True)
        theirs = np.fromfile(os.path.join(folder, "embedding.f32"), dtype="<f4").reshape(ours.shape)
    difference = float(np.abs(ours - theirs).max())
    cosine = float((ours * theirs).sum(1).min())
    if difference > 1e-3:
        raise SystemExit(f"the rebuilt model does not match {args.onnx}: max |difference| {difference:.2e}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_checkpoint(args.out, model, {"rebuilt_from": os.path.basename(args.onnx), "model_version": metadata.get("fundus_cbr.model_version"),
                                      "batchnorm_calibration_images": int(len(chosen))})
    print(json.dumps({"out": args.out, "max_abs_difference_vs_onnx": difference, "min_cosine_vs_onnx": cosine,
                      "folded_convolutions": len(convs), "calibration_images": int(len(chosen))}))


if __name__ == "__main__":
    main()
