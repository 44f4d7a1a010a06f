"""Region descriptors (search by region, SMILY-style) and feature correspondence, as ONNX.

Two pieces, both derived from an exported embedding graph without touching its weights:

- `add_feature_map_output(proto)`: the map that GeM pools (B, C, h, w) becomes a third graph output,
  `feature_map` (mirror attention: the concatenation of the horizontal and vertical branches' outputs, C = 2 x 128
  for the shipped model). Only an output and one Concat are added; every node computing `embedding` and
  `attention` is left as it was, so those outputs are bit-identical and the model version stays the same.
- `build_region_head(proto)`: a small second graph, `<model>.region.onnx`, inputs `feature_map` (B, C, h, w) and
  `region_mask` (B, 1, h, w) (weight of each feature cell, e.g. the share of the cell a rectangle covers), output
  `embedding` (B, D): the model's own GeM (its learned p) restricted to the masked cells, then its projection and
  L2 normalisation, with the initializers copied from the main graph. With a mask of ones it gives the whole-image
  embedding (to float rounding): the region descriptor lives in the same space as the stored embeddings.

Done as graph surgery because the shipped model's checkpoint is not kept (models/runs is ignored and was not
preserved); `export_onnx` applies the same functions to every new export, so both paths give the same files.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

FEATURE_MAP_OUTPUT = "feature_map"
REGION_MASK_INPUT = "region_mask"


def _producers(graph) -> Dict[str, object]:
    return {output: node for node in graph.node for output in node.output}


def _gem_sources(graph) -> Tuple[List[str], str, object]:
    """The maps GeM pools, the (clipped) exponent p's initializer name, and the projection Gemm node.

    Follows the exporter's shape of GeM: Gemm(Concat(Pow(ReduceMean(Pow(Clip(x, eps), p)), 1/p), ...)) or the
    same without the Concat (no mirror attention)."""
    producers = _producers(graph)
    gemms = [node for node in graph.node if node.op_type == "Gemm"]
    if len(gemms) != 1:
        raise ValueError(f"expected one Gemm (the projection), found {len(gemms)}")
    gemm = gemms[0]
    pooled = producers[gemm.input[0]]
    descriptors = list(pooled.input) if pooled.op_type == "Concat" else [gemm.input[0]]
    maps: List[str] = []
    exponent = None
    for name in descriptors:
        root = producers[name]
        mean = producers[root.input[0]]
        powered = producers[mean.input[0]]
        clipped = producers[powered.input[0]]
        if (root.op_type, mean.op_type, powered.op_type, clipped.op_type) != ("Pow", "ReduceMean", "Pow", "Clip"):
            raise ValueError(f"{name} is not GeM-pooled as export.py writes it")
        maps.append(clipped.input[0])
        clipped_p = producers[powered.input[1]]
        if clipped_p.op_type != "Clip":
            raise ValueError("GeM's exponent is not Clip(p, 1)")
        exponent = clipped_p.input[0]
    return maps, exponent, gemm


def add_feature_map_output(proto):
    """Adds `feature_map` (B, C, h, w) as an output; idempotent. Returns the proto (modified in place)."""
    from onnx import TensorProto, helper

    graph = proto.graph
    if any(output.name == FEATURE_MAP_OUTPUT for output in graph.output):
        return proto
    maps, _, _ = _gem_sources(graph)
    if len(maps) == 1:
        graph.node.append(helper.make_node("Identity", [maps[0]], [FEATURE_MAP_OUTPUT], name="/region/feature_map"))
    else:
        graph.node.append(helper.make_node("Concat", maps, [FEATURE_MAP_OUTPUT], axis=1, name="/region/feature_map"))
    graph.output.append(helper.make_tensor_value_info(FEATURE_MAP_OUTPUT, TensorProto.FLOAT, ["batch", None, None, None]))
    return proto


def build_region_head(proto, embedding_name: str = "embedding"):
    """The region head graph (see the module docstring), from the main graph's initializers."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    _, exponent_name, gemm = _gem_sources(graph)
    initializers = {item.name: item for item in graph.initializer}
    p = float(max(numpy_helper.to_array(initializers[exponent_name]).item(), 1.0))  # GeM clamps p at 1
    weight = numpy_helper.to_array(initializers[gemm.input[1]]).astype(np.float32)
    bias = numpy_helper.to_array(initializers[gemm.input[2]]).astype(np.float32)
    trans_b = next((helper.get_attribute_value(a) for a in gemm.attribute if a.name == "transB"), 0)
    if not trans_b:
        weight = weight.T
    channels = weight.shape[1]
    constants = [
        numpy_helper.from_array(np.array(1e-6, dtype=np.float32), "eps"),  # GeM's clamp, as in model.GeM
        numpy_helper.from_array(np.array(p, dtype=np.float32), "p"),
        numpy_helper.from_array(np.array(1.0 / p, dtype=np.float32), "inverse_p"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "norm_floor"),  # F.normalize's eps
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "spatial_axes"),
        numpy_helper.from_array(weight, "projection_weight"),
        numpy_helper.from_array(bias, "projection_bias"),
    ]
    nodes = [
        helper.make_node("Max", [FEATURE_MAP_OUTPUT, "eps"], ["clipped"]),
        helper.make_node("Pow", ["clipped", "p"], ["powered"]),
        helper.make_node("Mul", ["powered", REGION_MASK_INPUT], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "spatial_axes"], ["weighted_sum"], keepdims=0),  # (B, C)
        helper.make_node("ReduceSum", [REGION_MASK_INPUT, "spatial_axes"], ["mask_sum"], keepdims=0),  # (B, 1)
        helper.make_node("Div", ["weighted_sum", "mask_sum"], ["mean"]),
        helper.make_node("Pow", ["mean", "inverse_p"], ["descriptor"]),
        helper.make_node("Gemm", ["descriptor", "projection_weight", "projection_bias"], ["projected"], transB=1),
        helper.make_node("ReduceL2", ["projected"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "norm_floor"], ["safe_norm"]),
        helper.make_node("Div", ["projected", "safe_norm"], [embedding_name]),
    ]
    head = helper.make_graph(
        nodes,
        "fundus_cbr_region_head",
        [
            helper.make_tensor_value_info(FEATURE_MAP_OUTPUT, TensorProto.FLOAT, ["batch", channels, "h", "w"]),
            helper.make_tensor_value_info(REGION_MASK_INPUT, TensorProto.FLOAT, ["batch", 1, "h", "w"]),
        ],
        [helper.make_tensor_value_info(embedding_name, TensorProto.FLOAT, ["batch", weight.shape[0]])],
        initializer=constants,
    )
    model = helper.make_model(head, opset_imports=[helper.make_opsetid("", 13)], producer_name="fundus_cbr.region")
    model.ir_version = proto.ir_version
    for entry in proto.metadata_props:
        model.metadata_props.add(key=entry.key, value=entry.value)
    return model


def region_head_path(model_path: str) -> str:
    """models/fundus-cbr.onnx -> models/fundus-cbr.region.onnx (read by apps/api/src/embedding/embedder.ts)."""
    return (model_path[: -len(".onnx")] if model_path.endswith(".onnx") else model_path) + ".region.onnx"


def add_region_outputs(model_path: str) -> Dict[str, object]:
    """In place: adds `feature_map` to model_path, writes the region head beside it, records both in the sidecar."""
    import json
    import os

    import onnx

    proto = onnx.load(model_path)
    add_feature_map_output(proto)
    onnx.checker.check_model(proto)
    onnx.save(proto, model_path)
    head = build_region_head(proto)
    onnx.checker.check_model(head)
    onnx.save(head, region_head_path(model_path))
    sidecar_path = model_path + ".json"
    sidecar = {}
    if os.path.exists(sidecar_path):
        with open(sidecar_path) as handle:
            sidecar = json.load(handle)
    outputs = sidecar.setdefault("outputs", {})
    outputs[FEATURE_MAP_OUTPUT] = {
        "shape": ["batch", int(head.graph.input[0].type.tensor_type.shape.dim[1].dim_value), "h", "w"],
        "meaning": "the map GeM pools before the projection (mirror: horizontal and vertical branches concatenated on channels), at feature resolution",
    }
    sidecar["region_head"] = {
        "file": os.path.basename(region_head_path(model_path)),
        "inputs": {FEATURE_MAP_OUTPUT: "(B, C, h, w) as above", REGION_MASK_INPUT: "(B, 1, h, w) weight of each feature cell (share covered)"},
        "output": "embedding (B, D), L2-normalised: GeM over the masked cells with the model's p, then its projection",
    }
    if os.path.exists(sidecar_path) or sidecar:
        with open(sidecar_path, "w") as handle:
            json.dump(sidecar, handle, indent=2)
    return sidecar
