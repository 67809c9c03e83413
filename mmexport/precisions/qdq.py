"""Explicit quantization placed where TensorRT documents it (and NVIDIA's ModelOpt puts it):
a QuantizeLinear/DequantizeLinear pair on the activation input of each chosen weighted
MatMul/Gemm/Conv (per-tensor scale, zero point 0) and a DequantizeLinear on its weight
(stored quantized, per-output-channel scales). Nothing on outputs: a Q/DQ there clips the
result to the calibration range (measured: cosine 0.99974 -> 0.9989 on LLaVA-1.5's MLP).

Written here rather than with ONNX Runtime's quantize_static, which adds output Q/DQ pairs
when it sees fit and int32 bias dequantization that TensorRT's parser rejects.

For ONNX Runtime's CPU provider (--target cpu) int8 MatMul/Gemm layers quantize their activations
per call instead (the pattern ONNX Runtime's quantize_dynamic writes, which its optimizer fuses
into DynamicQuantizeMatMul / MatMulIntegerToFloat, u8 x s8 with VNNI or AMX): static Q/DQ there
becomes QGemm, measured 2.9x slower than the fp32 Gemm on a Qwen2.5-VL tower, the dynamic form
3.9x faster (scripts/cpu_profile.py). Built here, not by quantize_dynamic: the search makes its
candidates in memory from cached weights, and quantize_dynamic writes files and runs shape
inference on each."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import ml_dtypes
import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import initializers, opset_of

MIN_OPSET = 19  # float8 types, and DequantizeLinear straight to fp16 scales


@dataclass(frozen=True)
class QuantFormat:
    name: str  # "int8", "fp8"
    onnx_type: int
    max_value: float  # the largest representable magnitude the range maps to
    levels: int  # uniform steps from 0 to max (range methods that model rounding noise)
    cast: Callable[[np.ndarray], np.ndarray]  # scaled fp32 values -> stored type
    # x86 CPUs without VNNI multiply u8 x s8 pairs into int16 sums (pmaddubsw), which saturate with
    # full-range weights (a tiny MLP lost cosine 0.99995 -> 0.977 on an AVX2 EPYC): for ONNX
    # Runtime's CPU provider the weights use 7 bits, as its documentation advises (reduce_range).
    cpu_weight_max: float | None = None
    weight_max: float | None = None  # None: max_value
    cpu_dynamic: bool = False  # on ONNX Runtime's CPU provider, MatMul/Gemm activations quantized per call
    dynamic: bool = False

    def zero_point(self, name: str) -> onnx.TensorProto:
        return numpy_helper.from_array(self.cast(np.zeros((), dtype=np.float32)), name)

    @property
    def weight_limit(self) -> float:
        """The magnitude a weight's per-channel range maps to."""
        return self.weight_max or self.max_value

    def on(self, target: str) -> "QuantFormat":
        """The format for a target: for ONNX Runtime on CPUs, 7-bit int8 weights and MatMul/Gemm
        activations quantized per call."""
        if target != "cpu":
            return self
        return replace(self, weight_max=self.cpu_weight_max or self.weight_max, dynamic=self.cpu_dynamic)

    def is_dynamic(self, node: onnx.NodeProto) -> bool:
        """Whether this node's activation is quantized per call (no calibrated range)."""
        return self.dynamic and node.op_type in ("MatMul", "Gemm") and _plain_gemm(node)


INT8 = QuantFormat("int8", onnx.TensorProto.INT8, 127.0, 127, lambda x: np.clip(np.round(x), -127, 127).astype(np.int8), cpu_weight_max=63.0, cpu_dynamic=True)
FP8_E4M3 = QuantFormat("fp8", onnx.TensorProto.FLOAT8E4M3FN, 448.0, 127, lambda x: np.clip(x, -448.0, 448.0).astype(ml_dtypes.float8_e4m3fn))


def _attribute(node: onnx.NodeProto, name: str, default: float) -> float:
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _plain_gemm(node: onnx.NodeProto) -> bool:
    """A MatMul, or a Gemm that is one (alpha 1, beta 1, A not transposed): x @ W (+ C)."""
    return node.op_type == "MatMul" or (_attribute(node, "alpha", 1.0) == 1.0 and _attribute(node, "beta", 1.0) == 1.0 and not _attribute(node, "transA", 0))


def weight_axis(node: onnx.NodeProto) -> int:
    """The weight's output-channel axis: MatMul [K, N] -> 1; Conv [O, I, kh, kw] -> 0;
    Gemm [K, N] -> 1, or [N, K] -> 0 with transB."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 1


def _quantized_weight(weight: np.ndarray, axis: int, fmt: QuantFormat) -> tuple[np.ndarray, np.ndarray]:
    reduce = tuple(i for i in range(weight.ndim) if i != axis)
    amax = np.abs(weight).max(axis=reduce)
    scale = (np.maximum(amax, 1e-12) / fmt.weight_limit).astype(np.float32)
    shape = [1] * weight.ndim
    shape[axis] = -1
    return fmt.cast(weight / scale.reshape(shape)), scale


def at_min_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph at opset >= 19 (float8 types; DequantizeLinear straight to fp16 scales).
    From 18 the version is raised in place: every operator that changed in opset 19 only
    gained types or attribute values, so an opset-18 graph means the same at 19, and the
    converter's copy (it round-trips the whole model through C++) is not needed."""
    opset = opset_of(model)
    if opset >= MIN_OPSET:
        return model
    if opset == MIN_OPSET - 1:
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = MIN_OPSET
        return model
    return onnx.version_converter.convert_version(model, MIN_OPSET)


def insert(
    out: onnx.ModelProto, nodes: list[onnx.NodeProto], activation_amax: dict[str, float], fmt: QuantFormat, cache: dict | None = None
) -> onnx.ModelProto:
    """Quantize `nodes` of `out` (opset >= 19), in place; `activation_amax` gives the range of
    each node's activation input. Shared inputs (q/k/v projections) share one pair. `cache`
    keeps quantized weights for the next call on the same weights (a search's candidates)."""
    if opset_of(out) < MIN_OPSET:
        raise ValueError(f"Q/DQ insertion needs opset {MIN_OPSET}; convert with at_min_opset first")
    chosen = {n.name for n in nodes}
    targets = [n for n in out.graph.node if n.name in chosen]
    weights = initializers(out)
    graph = out.graph
    new_nodes: list[tuple[str, onnx.NodeProto]] = []  # (insert before this node, node)
    activations: dict[str, str] = {}
    dequantized: dict[tuple[str, int], str] = {}  # a weight shared by two nodes is stored once
    dynamic = [n for n in targets if fmt.is_dynamic(n)]
    if dynamic:
        _dynamic_matmuls(graph, dynamic, weights, fmt, new_nodes, cache)
    for node in (n for n in targets if not fmt.is_dynamic(n)):
        x, w, axis = node.input[0], node.input[1], weight_axis(node)
        if x not in activations:
            activations[x] = _activation_pair(graph, x, activation_amax[x], fmt, node.name, new_nodes)
        if (w, axis) not in dequantized:
            dequantized[(w, axis)] = _weight_dequant(graph, weights[w], axis, fmt, node.name, new_nodes, cache)
        node.input[0], node.input[1] = activations[x], dequantized[(w, axis)]
    _place(graph, new_nodes)
    if dynamic:  # replaced by their integer form
        replaced = {n.name for n in dynamic}
        kept = [n for n in graph.node if n.name not in replaced]
        del graph.node[:]
        graph.node.extend(kept)
    _drop_unused_initializers(graph)
    return out


def _dynamic_matmuls(graph: onnx.GraphProto, nodes: list[onnx.NodeProto], weights: dict, fmt: QuantFormat, new_nodes: list, cache: dict | None) -> None:
    """x @ W (+ C) -> DynamicQuantizeLinear(x) -> MatMulInteger(x_u8, W_s8) -> Cast -> Mul(x_scale * W_scale) (-> Add C),
    the form ONNX Runtime fuses into one integer kernel. Inputs shared by q/k/v are quantized once."""
    quantized: dict[str, list[str]] = {}
    for node in nodes:
        x, base = node.input[0], _safe(node.name)
        if x not in quantized:
            quantized[x] = [f"{_safe(x)}_u8", f"{_safe(x)}_u8_scale", f"{_safe(x)}_u8_zero"]
            new_nodes.append((node.name, helper.make_node("DynamicQuantizeLinear", [x], quantized[x], name=f"{_safe(x)}_DynamicQuantizeLinear")))
        stored, scale, zero = _dynamic_weight(graph, weights[node.input[1]], bool(_attribute(node, "transB", 0)), fmt, cache)
        x_u8, x_scale, x_zero = quantized[x]
        product = f"{base}_int32" if len(node.input) > 2 else None
        out = node.output[0]
        steps = [
            helper.make_node("Mul", [x_scale, scale], [f"{base}_scales"], name=f"{base}_scales"),
            helper.make_node("MatMulInteger", [x_u8, stored, x_zero, zero], [f"{base}_integer"], name=f"{base}_MatMulInteger"),
            helper.make_node("Cast", [f"{base}_integer"], [f"{base}_float"], name=f"{base}_Cast", to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [f"{base}_float", f"{base}_scales"], [product or out], name=f"{base}_rescale"),
        ]
        if product:  # Gemm's bias
            steps.append(helper.make_node("Add", [product, node.input[2]], [out], name=f"{base}_bias"))
        new_nodes.extend((node.name, step) for step in steps)


def _dynamic_weight(graph: onnx.GraphProto, weight: onnx.TensorProto, transposed: bool, fmt: QuantFormat, cache: dict | None) -> list[str]:
    """The weight as [K, N] int8 with one scale per output column (stored once however many nodes use it)."""
    base = f"{_safe(weight.name)}_{'t' if transposed else 'n'}"
    key = (weight.name, "dynamic", transposed, fmt.weight_limit)
    tensors = cache.get(key) if cache is not None else None
    if tensors is None:
        array = numpy_helper.to_array(weight).astype(np.float32)
        stored, scale = _quantized_weight(array.T if transposed else array, 1, fmt)
        zero = np.zeros(scale.shape, dtype=np.int8)
        tensors = [numpy_helper.from_array(v, f"{base}_{n}") for v, n in ((stored, "quantized"), (scale, "scale"), (zero, "zero"))]
        if cache is not None:
            cache[key] = tensors
    names = {t.name for t in graph.initializer}
    graph.initializer.extend(t for t in tensors if t.name not in names)
    return [t.name for t in tensors]


def _activation_pair(graph: onnx.GraphProto, x: str, amax: float, fmt: QuantFormat, before: str, new_nodes: list) -> str:
    base = _safe(x)
    scale = numpy_helper.from_array(np.array(max(amax, 1e-12) / fmt.max_value, dtype=np.float32), f"{base}_act_scale")
    zero = fmt.zero_point(f"{base}_act_zero")
    graph.initializer.extend([scale, zero])
    quantized, dequantized = f"{base}_q", f"{base}_dq"
    new_nodes.append((before, helper.make_node("QuantizeLinear", [x, scale.name, zero.name], [quantized], name=f"{base}_QuantizeLinear")))
    new_nodes.append((before, helper.make_node("DequantizeLinear", [quantized, scale.name, zero.name], [dequantized], name=f"{base}_DequantizeLinear")))
    return dequantized


def _weight_tensors(weight: onnx.TensorProto, axis: int, fmt: QuantFormat) -> list[onnx.TensorProto]:
    base = _safe(weight.name)
    stored, scale = _quantized_weight(numpy_helper.to_array(weight).astype(np.float32), axis, fmt)
    return [
        numpy_helper.from_array(stored, f"{base}_quantized"),
        numpy_helper.from_array(scale, f"{base}_scale"),
        numpy_helper.from_array(fmt.cast(np.zeros(scale.shape, dtype=np.float32)), f"{base}_zero"),
    ]


def _weight_dequant(graph: onnx.GraphProto, weight: onnx.TensorProto, axis: int, fmt: QuantFormat, before: str, new_nodes: list, cache: dict | None) -> str:
    base = _safe(weight.name)
    key = (weight.name, axis, fmt.name, fmt.weight_limit)
    tensors = cache.get(key) if cache is not None else None
    if tensors is None:
        tensors = _weight_tensors(weight, axis, fmt)
        if cache is not None:
            cache[key] = tensors
    graph.initializer.extend(tensors)
    output = f"{base}_dequantized"
    node = helper.make_node("DequantizeLinear", [t.name for t in tensors], [output], name=f"{base}_DequantizeLinear", axis=axis)
    new_nodes.append((before, node))
    return output


def _place(graph: onnx.GraphProto, new_nodes: list[tuple[str, onnx.NodeProto]]) -> None:
    """Each new node goes right before the node that needs it: producers come earlier."""
    by_target: dict[str, list[onnx.NodeProto]] = {}
    for target, node in new_nodes:
        by_target.setdefault(target, []).append(node)
    ordered = []
    for node in graph.node:
        ordered.extend(by_target.get(node.name, []))
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _safe(name: str) -> str:
    return name.replace("/", "_").replace(":", "_").strip("_") or "t"
