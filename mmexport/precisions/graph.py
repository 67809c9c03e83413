"""Small ONNX graph helpers for the precision passes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import onnx
from onnx import helper

from ..onnx_file import write
from ..parity import ort_session

WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")


def initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def weighted_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Compute nodes whose second input is a weight: the ones int8 pays for. Attention's
    activation x activation MatMuls are left out (optional for TensorRT, costly in accuracy)."""
    weights = initializers(model)
    return [n for n in model.graph.node if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in weights and n.input[0] not in weights]


def weight_macs(model: onnx.ModelProto, node: onnx.NodeProto) -> int:
    """MACs per output position (token or pixel): every weight is used once there, for a
    MatMul/Gemm's (in, out) as for a Conv's (out, in/groups, kh, kw)."""
    return int(np.prod(initializers(model)[node.input[1]].dims))


def run_with_outputs(model: onnx.ModelProto, names: Sequence[str], samples: Sequence[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """Yield the values of intermediate tensors `names` for each sample (fp32 ORT run). The
    tensors become graph outputs only while the session is made (from a file, not a second
    in-memory copy of the graph: towers are large), then the graph is as it was."""
    existing = {o.name for o in model.graph.output}
    added = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names if name not in existing]
    model.graph.output.extend(added)
    try:
        with tempfile.TemporaryDirectory(prefix="mmexport-probe-") as tmp:
            path = Path(tmp) / "probe.onnx"
            write(model, path)
            session = ort_session(path, optimize=False, lean=True)  # keep the tensors we ask for
    finally:
        del model.graph.output[len(model.graph.output) - len(added) :]
    for sample in samples:
        yield dict(zip(names, session.run(list(names), sample)))


def opset_of(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def node_inputs_of(model: onnx.ModelProto, tensor: str) -> list[onnx.NodeProto]:
    """Nodes that read `tensor`."""
    return [n for n in model.graph.node if tensor in n.input]


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every node a unique name: precision passes choose and report nodes by name."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
