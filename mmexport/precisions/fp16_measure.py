"""Where fp16 would fail, measured on the fp32 graph over the probe samples (calibration data, or
the gate's inputs): the layers whose tensors reach past a quarter of fp16's range (they overflow
on inputs the probe did not see, and the massive activations of some towers reach 1e4-1e5), and
the periodic functions whose arguments are so large that fp16's rounding moves them (a rotary
angle of 100 is off by up to 0.03 in fp16), with the position arithmetic that feeds them. Those
stay in fp32; no list of models or layers is kept anywhere."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..onnx_file import write
from ..parity import ort_session

SAFE_LIMIT = 65504.0 / 4  # headroom for inputs the probe did not see
ANGLE_ERROR = 1e-3  # radians fp16's rounding may move a Sin/Cos argument before it matters
PERIODIC = ("Sin", "Cos")


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """Node outputs typed float32 in the exporter's value_info (and the graph's outputs)."""
    typed = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output]}
    return [o for n in model.graph.node for o in n.output if typed.get(o) == TensorProto.FLOAT]


def with_maxima(model: onnx.ModelProto, names: Sequence[str]) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of the graph with the max and min of each tensor as scalar outputs, each reduction
    placed right after the node that makes its tensor: run in that order, every tensor is freed
    as soon as it was read (appended at the end, all of a tower's tensors stayed alive at once:
    23 GB for Qwen2.5-VL-7B's vision side on a 4400-patch photo)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted = {name: i for i, name in enumerate(names)}
    nodes = []
    for node in probe.graph.node:
        nodes.append(node)
        for out in (o for o in node.output if o in wanted):
            i = wanted[out]
            nodes += [helper.make_node("ReduceMax", [out], [f"mmx_max_{i}"], keepdims=0), helper.make_node("ReduceMin", [out], [f"mmx_min_{i}"], keepdims=0)]
    del probe.graph.node[:]
    probe.graph.node.extend(nodes)
    scalars = [f"mmx_{kind}_{i}" for i in range(len(names)) for kind in ("max", "min")]
    probe.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, []) for name in scalars)
    return probe, scalars


def maxima(model: onnx.ModelProto, names: Sequence[str], samples: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """max |x| of each tensor over the samples: only scalars leave the session (a tower's
    intermediate tensors would not fit in memory all at once)."""
    with tempfile.TemporaryDirectory(prefix="mmexport-fp16-") as tmp:
        path = Path(tmp) / "probe.onnx"
        probe, outputs = with_maxima(model, names)
        write(probe, path)
        session = ort_session(path, optimize=False, lean=True)
        found = np.zeros(len(names))
        for sample in samples:
            values = np.abs(np.array([float(v) for v in session.run(outputs, sample)])).reshape(-1, 2).max(axis=1)
            found = np.maximum(found, values)
    return dict(zip(names, found.tolist()))


def _activation_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors that depend on a float graph input (activations), not only on integers and constants."""
    tainted = {i.name for i in model.graph.input if i.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16)}
    for node in model.graph.node:  # topological order
        if any(i in tainted for i in node.input):
            tainted.update(node.output)
    return tainted


def _position_chain(model: onnx.ModelProto, start: onnx.NodeProto, activations: set[str]) -> list[str]:
    """The nodes upstream of `start` that compute from integers and constants only (positions)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    chain, todo = [], [i for i in start.input if i in producers]
    while todo:
        node = producers[todo.pop()]
        if node.name in chain or any(o in activations for o in node.output):
            continue
        chain.append(node.name)
        todo.extend(i for i in node.input if i in producers)
    return chain


OVERFLOW = "its tensors reach past a quarter of fp16's range on the probe"
ROUNDING = "a Sin/Cos argument (or the position arithmetic feeding it) that fp16's rounding would move"


def keep_fp32(model: onnx.ModelProto, samples: Sequence[dict[str, np.ndarray]]) -> dict[str, tuple[str, float]]:
    """Node name -> (why it stays in fp32, the largest |x| measured there)."""
    return keep_fp32_measured(model, maxima(model, float_tensors(model), samples))


def keep_fp32_measured(model: onnx.ModelProto, top: dict[str, float]) -> dict[str, tuple[str, float]]:
    """The same, from the largest |x| of each float tensor measured already."""
    activations = _activation_tensors(model)
    kept: dict[str, tuple[str, float]] = {}
    for node in model.graph.node:
        values = [top[t] for t in (*node.input, *node.output) if t in top]
        if values and max(values) > SAFE_LIMIT:
            kept[node.name] = (OVERFLOW, max(values))
        if node.op_type in PERIODIC and top.get(node.input[0], 0.0) * 2**-11 > ANGLE_ERROR:
            for name in [node.name, *_position_chain(model, node, activations)]:
                kept.setdefault(name, (ROUNDING, top[node.input[0]]))
    return kept


def summary(kept: dict[str, tuple[str, float]], shown: int = 6) -> dict[str, object]:
    """What the record keeps: for each reason, how many nodes, the largest |x| and the first few names."""
    reasons = {}
    for why in dict.fromkeys(w for w, _ in kept.values()):
        names = [n for n, (w, _) in kept.items() if w == why]
        reasons[why] = {"nodes": len(names), "max_abs": round(max(kept[n][1] for n in names), 3), "first": names[:shown]}
    return {"nodes": len(kept), "reasons": reasons}
