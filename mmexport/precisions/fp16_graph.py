"""FP16 graphs (ONNX Runtime's float16 converter): fp32 I/O by default, ops kept in fp32 only
where measured parity needs it."""

from __future__ import annotations

import onnx
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

from .qdq import at_min_opset

# Kept in fp32 when the all-fp16 graph misses the gate: reductions that overflow or lose precision.
SENSITIVE_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Reciprocal", "Exp")


def to_fp16(model: onnx.ModelProto, io_fp16: bool = False, keep_fp32_ops: tuple[str, ...] = (), keep_fp32_nodes: list[str] | None = None) -> onnx.ModelProto:
    """Converts `model` in place (and returns it): pass a copy to keep the fp32 graph."""
    model = at_min_opset(model)
    blocked_ops = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    constants = {t.name: t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    constants = {name: onnx.TensorProto.FromString(t.SerializeToString()) for name, t in constants.items()}
    converted = convert_float_to_float16(
        model,
        keep_io_types=not io_fp16,
        op_block_list=blocked_ops,
        node_block_list=(keep_fp32_nodes or []) + _casts_feeding_only(model, set(blocked_ops)),
        disable_shape_infer=True,  # shape inference of large graphs is slow and not needed here
    )
    return restore_fp32_constants(skip_fp16_round_trips(converted), constants)


def _casts_feeding_only(model: onnx.ModelProto, blocked_ops: set[str]) -> list[str]:
    """The graph's own casts to fp32 whose every reader stays fp32 (Range's limits, from a shape):
    converted, they would compute shapes in fp16, which TensorRT refuses and which loses sizes past 2048."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return [
        n.name
        for n in model.graph.node
        if _cast_to(n) == onnx.TensorProto.FLOAT and n.output[0] in readers and all(r.op_type in blocked_ops for r in readers[n.output[0]])
    ]


def restore_fp32_constants(model: onnx.ModelProto, constants: dict[str, onnx.TensorProto]) -> onnx.ModelProto:
    """The converter makes every fp32 constant fp16 and casts it back for readers kept in fp32:
    those readers get the original constant instead (exact, and no fp16 arithmetic in shapes)."""
    initializers = {t.name: t for t in model.graph.initializer}
    rewire: dict[str, str] = {}
    for node in model.graph.node:
        source = node.input[0] if node.input else None
        if (
            _cast_to(node) == onnx.TensorProto.FLOAT
            and source in constants
            and initializers.get(source, constants[source]).data_type == onnx.TensorProto.FLOAT16
        ):
            original = onnx.TensorProto.FromString(constants[source].SerializeToString())
            original.name = node.output[0] + "_fp32"
            model.graph.initializer.append(original)
            rewire[node.output[0]] = original.name
    for node in model.graph.node:
        node.input[:] = [rewire.get(i, i) for i in node.input]
    return _without_unused_casts(model) if rewire else model


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def _inserted_fp16_cast(node: onnx.NodeProto) -> bool:
    """A cast the converter put after a node kept in fp32 (it renames that output X_cast_to_fp16):
    its input is fp32. The graph's own casts to fp16 (of an int64 size, say) are not round trips."""
    return _cast_to(node) == onnx.TensorProto.FLOAT16 and node.input[0] == node.output[0] + "_cast_to_fp16"


def skip_fp16_round_trips(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converter casts each kept node's output to fp16 and back to fp32 for the next kept node:
    a value past 65504 becomes inf between two fp32 layers. Their fp32 consumers read the fp32
    value directly; the fp16 copy stays for the fp16 ones."""
    producers = {o: n for n in model.graph.node for o in n.output}
    rewire: dict[str, str] = {}
    for node in model.graph.node:
        source = producers.get(node.input[0]) if node.input else None
        if _cast_to(node) == onnx.TensorProto.FLOAT and source is not None and _inserted_fp16_cast(source):
            rewire[node.output[0]] = source.input[0]
    if not rewire:
        return model
    for node in model.graph.node:
        node.input[:] = [rewire.get(i, i) for i in node.input]
    return _without_unused_casts(model)


def _without_unused_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    graph_outputs = {o.name for o in model.graph.output}
    used = {i for n in model.graph.node for i in n.input} | graph_outputs
    kept = [n for n in model.graph.node if not (n.op_type == "Cast" and n.output[0] not in used)]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    read = {i for n in kept for i in n.input} | graph_outputs
    constants = [t for t in model.graph.initializer if t.name in read]  # an fp16 copy no reader is left with
    if len(constants) < len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(constants)
    return model
