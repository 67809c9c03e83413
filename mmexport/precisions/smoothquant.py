"""SmoothQuant-style scale migration folded into the graph: per input channel j of a weighted
layer, activations are divided by s_j and the weight's input channel j multiplied by it, with
s_j = amax(x_j)^alpha / amax(W_j)^(1-alpha). Outlier channels then no longer dominate the
per-tensor activation range. The division is one Mul node before the layer(s) that share the
input; the product is unchanged, so no other tensor of the graph moves. MatMul and Gemm
(channels last) and ungrouped Conv (channels on axis 1) take part."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import initializers, weighted_nodes


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def input_axis(node: onnx.NodeProto) -> int | None:
    """The weight axis that meets the activation's channels, or None if it cannot absorb a scale."""
    if node.op_type == "MatMul":
        return 0  # [K, N]
    if node.op_type == "Gemm" and not _attribute(node, "transA", 0):
        return 1 if _attribute(node, "transB", 0) else 0  # [N, K] or [K, N]
    if node.op_type == "Conv" and _attribute(node, "group", 1) == 1:
        return 1  # [O, C, kh, kw]
    return None


def smoothable(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Activation -> the weighted layers that read it, when all of them can absorb a scale."""
    weights = initializers(model)
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in weighted_nodes(model):
        users.setdefault(node.input[0], []).append(node)

    def fits(node: onnx.NodeProto) -> bool:
        rank = len(weights[node.input[1]].dims)
        return input_axis(node) is not None and (rank == 2 or node.op_type == "Conv")

    kinds = {name: {n.op_type == "Conv" for n in nodes} for name, nodes in users.items()}
    return {name: nodes for name, nodes in users.items() if all(fits(n) for n in nodes) and len(kinds[name]) == 1}


def _per_channel(array: np.ndarray, axis: int) -> np.ndarray:
    return np.abs(np.moveaxis(array, axis, 0)).reshape(array.shape[axis], -1).max(axis=1)


def _scaled(array: np.ndarray, axis: int, scale: np.ndarray) -> np.ndarray:
    shape = [1] * array.ndim
    shape[axis] = -1
    return (array * scale.reshape(shape)).astype(array.dtype)


def smooth(model: onnx.ModelProto, channel_amax: dict[str, np.ndarray], alpha: float) -> dict[str, float]:
    """Modify `model` in place; returns each smoothed activation's new name -> its new |x| max
    (exact: the per-channel maxima divided by the scales)."""
    weights = initializers(model)
    applied: dict[str, float] = {}
    for name, users in smoothable(model).items():
        arrays = [numpy_helper.to_array(weights[n.input[1]]) for n in users]
        axes = [axis for n in users if (axis := input_axis(n)) is not None]  # all are, by smoothable()
        w_max = np.max([_per_channel(w, a) for w, a in zip(arrays, axes)], axis=0)
        scale = np.power(np.maximum(channel_amax[name], 1e-5), alpha) / np.power(np.maximum(w_max, 1e-5), 1 - alpha)
        scale = np.clip(scale, 1e-4, 1e4).astype(np.float32)
        conv = users[0].op_type == "Conv"
        inverse_values = (1.0 / scale).reshape((1, -1) + (1,) * (len(arrays[0].shape) - 2) if conv else (-1,))
        inverse = numpy_helper.from_array(inverse_values.astype(np.float32), f"{name}__smooth_inv")
        model.graph.initializer.append(inverse)
        smoothed = f"{name}__smoothed"
        nodes = list(model.graph.node)
        first = min(nodes.index(n) for n in users)
        model.graph.node.insert(first, helper.make_node("Mul", [name, inverse.name], [smoothed], name=f"{name}__smooth"))
        for node, array, axis in zip(users, arrays, axes):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(_scaled(array, axis, scale), node.input[1]))
            node.input[0] = smoothed
        applied[smoothed] = float((channel_amax[name] / scale).max())
    return applied
