"""FP16 graphs (ONNX Runtime's float16 converter): fp32 I/O by default, ops kept in fp32 only
where measured parity needs it."""

from __future__ import annotations

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from .qdq import at_min_opset

# Kept in fp32 when the all-fp16 graph misses the gate: reductions that overflow or lose precision.
SENSITIVE_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Reciprocal", "Exp")


def to_fp16(model: onnx.ModelProto, io_fp16: bool = False, keep_fp32_ops: tuple[str, ...] = (), keep_fp32_nodes: list[str] | None = None) -> onnx.ModelProto:
    """Converts `model` in place (and returns it): pass a copy to keep the fp32 graph."""
    converted = convert_float_to_float16(
        at_min_opset(model),
        keep_io_types=not io_fp16,
        op_block_list=list(keep_fp32_ops) or None,
        node_block_list=keep_fp32_nodes or None,
        disable_shape_infer=True,  # shape inference of large graphs is slow and not needed here
    )
    return skip_fp16_round_trips(converted)


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def skip_fp16_round_trips(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converter casts each kept node's output to fp16 and back to fp32 for the next kept node:
    a value past 65504 becomes inf between two fp32 layers. Their fp32 consumers read the fp32
    value directly; the fp16 copy stays for the fp16 ones."""
    producers = {o: n for n in model.graph.node for o in n.output}
    rewire: dict[str, str] = {}
    for node in model.graph.node:
        source = producers.get(node.input[0]) if node.input else None
        if _cast_to(node) == onnx.TensorProto.FLOAT and source is not None and _cast_to(source) == onnx.TensorProto.FLOAT16:
            rewire[node.output[0]] = source.input[0]
    if not rewire:
        return model
    for node in model.graph.node:
        node.input[:] = [rewire.get(i, i) for i in node.input]
    graph_outputs = {o.name for o in model.graph.output}
    used = {i for n in model.graph.node for i in n.input} | graph_outputs
    kept = [n for n in model.graph.node if not (n.op_type == "Cast" and n.output[0] not in used)]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model
