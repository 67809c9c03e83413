"""Build an engine with TensorRT-RTX on this (GPU-less) machine: proves TensorRT parses and
compiles a graph. Nothing here deserializes the engine (that needs a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import tensorrt_rtx as trt


def build(onnx_path: Path) -> int:
    """Engine bytes for the artifact, with an optimization profile from its manifest."""
    record = json.loads(Path(str(onnx_path) + ".json").read_text())
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT-RTX networks are strongly typed
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise AssertionError("; ".join(parser.get_error(i).desc() for i in range(parser.num_errors)))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for spec in record["inputs"]:
        axes = {int(i): a for i, a in spec["dynamic_axes"].items()}
        shapes = [[axes[i][k] if i in axes else d for i, d in enumerate(spec["shape"])] for k in ("min", "opt", "max")]
        shapes[2] = [min(v, 4 * o) for v, o in zip(shapes[2], shapes[1])]  # keep the build small
        profile.set_shape(spec["name"], *shapes)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    assert engine is not None, "TensorRT-RTX could not build the engine"
    return engine.nbytes
