"""FP16 graphs (ONNX Runtime's float16 converter): fp32 I/O by default, ops kept in fp32 only
where measured parity needs it."""

from __future__ import annotations

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from .qdq import at_min_opset

# Kept in fp32 when the all-fp16 graph misses the gate: reductions that overflow or lose precision.
SENSITIVE_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Reciprocal", "Exp")


def to_fp16(model: onnx.ModelProto, io_fp16: bool = False, keep_fp32_ops: tuple[str, ...] = ()) -> onnx.ModelProto:
    """Converts `model` in place (and returns it): pass a copy to keep the fp32 graph."""
    return convert_float_to_float16(
        at_min_opset(model),
        keep_io_types=not io_fp16,
        op_block_list=list(keep_fp32_ops) or None,
        disable_shape_infer=True,  # shape inference of large graphs is slow and not needed here
    )
