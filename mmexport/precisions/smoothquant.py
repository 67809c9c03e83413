"""SmoothQuant-style scale migration folded into the graph: per input channel j of a weighted
MatMul, activations are divided by s_j and the weight's row j multiplied by it, with
s_j = amax(x_j)^alpha / amax(W_j)^(1-alpha). Outlier channels then no longer dominate the
per-tensor activation range. The division is one Mul node before the MatMul(s) that share the
input; the product is unchanged, so no other tensor of the graph moves."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import initializers, weighted_nodes


def smoothable(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Activation -> the 2-D-weight MatMuls that read it (their rows can absorb a scale)."""
    weights = initializers(model)
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in weighted_nodes(model):
        if node.op_type == "MatMul" and len(weights[node.input[1]].dims) == 2:
            users.setdefault(node.input[0], []).append(node)
    return users


def smooth(model: onnx.ModelProto, channel_amax: dict[str, np.ndarray], alpha: float) -> dict[str, float]:
    """Modify `model` in place; returns each smoothed activation's new name -> its new |x| max
    (exact: the per-channel maxima divided by the scales)."""
    weights = initializers(model)
    applied: dict[str, float] = {}
    for name, users in smoothable(model).items():
        arrays = [numpy_helper.to_array(weights[n.input[1]]) for n in users]
        w_max = np.max([np.abs(w).max(axis=1) for w in arrays], axis=0)
        scale = np.power(np.maximum(channel_amax[name], 1e-5), alpha) / np.power(np.maximum(w_max, 1e-5), 1 - alpha)
        scale = np.clip(scale, 1e-4, 1e4).astype(np.float32)
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"{name}__smooth_inv")
        model.graph.initializer.append(inverse)
        smoothed = f"{name}__smoothed"
        nodes = list(model.graph.node)
        first = min(nodes.index(n) for n in users)
        model.graph.node.insert(first, helper.make_node("Mul", [name, inverse.name], [smoothed], name=f"{name}__smooth"))
        for node, array in zip(users, arrays):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array((array * scale[:, None]).astype(array.dtype), node.input[1]))
            node.input[0] = smoothed
        applied[smoothed] = float((channel_amax[name] / scale).max())
    return applied
