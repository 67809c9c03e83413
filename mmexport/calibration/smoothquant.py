"""SmoothQuant-style scale migration folded into the graph: per input channel j of a weighted
MatMul, activations are divided by s_j and the weight's row j multiplied by it, with
s_j = amax(x_j)^alpha / amax(W_j)^(1-alpha). Outlier channels then no longer dominate the
per-tensor activation range. The division is one Mul node before the MatMul(s) that share the input."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import initializers, run_with_outputs, weighted_nodes


def smooth(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]], alpha: float) -> list[str]:
    """Modify `model` in place; returns the activations that were smoothed."""
    weights = initializers(model)
    matmuls = [n for n in weighted_nodes(model) if n.op_type == "MatMul" and len(weights[n.input[1]].dims) == 2]
    activations = sorted({n.input[0] for n in matmuls})
    if not activations:
        return []
    amax = {name: None for name in activations}
    for values in run_with_outputs(model, activations, samples):
        for name, value in values.items():
            channel_max = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            amax[name] = channel_max if amax[name] is None else np.maximum(amax[name], channel_max)
    nodes = list(model.graph.node)
    for name in activations:
        users = [n for n in matmuls if n.input[0] == name]
        arrays = [numpy_helper.to_array(weights[n.input[1]]) for n in users]
        w_max = np.max([np.abs(w).max(axis=1) for w in arrays], axis=0)
        scale = np.power(np.maximum(amax[name], 1e-5), alpha) / np.power(np.maximum(w_max, 1e-5), 1 - alpha)
        scale = np.clip(scale, 1e-4, 1e4).astype(np.float32)
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{name}__smooth_inv")
        model.graph.initializer.append(inverse)
        smoothed = f"{name}__smoothed"
        first = min(nodes.index(n) for n in users)
        model.graph.node.insert(first, helper.make_node("Mul", [name, inverse.name], [smoothed], name=f"{name}__smooth"))
        nodes = list(model.graph.node)
        for node, array in zip(users, arrays):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array((array * scale[:, None]).astype(array.dtype), node.input[1]))
            node.input[0] = smoothed
    return activations
