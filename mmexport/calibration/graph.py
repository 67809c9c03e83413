"""Small ONNX graph helpers for the precision passes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")


def initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def weighted_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Compute nodes whose second input is a weight: the ones int8 pays for. Attention's
    activation x activation MatMuls are left out (optional for TensorRT, costly in accuracy)."""
    weights = initializers(model)
    return [n for n in model.graph.node if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in weights and n.input[0] not in weights]


def weight_macs(model: onnx.ModelProto, node: onnx.NodeProto) -> int:
    """MACs per output position: what the weight costs for each token (or pixel)."""
    dims = list(initializers(model)[node.input[1]].dims)
    if node.op_type == "Conv":
        return int(np.prod(dims[1:]))  # (out, in/groups, kh, kw): per output channel and position
    return int(np.prod(dims))


def run_with_outputs(model: onnx.ModelProto, names: list[str], samples: list[dict[str, np.ndarray]]):
    """Yield the values of intermediate tensors `names` for each sample (fp32 ORT run)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the tensors we ask for
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for sample in samples:
        yield dict(zip(names, session.run(names, sample)))
