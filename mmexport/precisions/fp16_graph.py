"""FP16 graphs (ONNX Runtime's float16 converter): fp32 I/O by default, ops kept in fp32 only
where measured parity needs it."""

from __future__ import annotations

import onnx
from onnx import version_converter
from onnxruntime.transformers.float16 import convert_float_to_float16

# Kept in fp32 when the all-fp16 graph misses the gate: reductions that overflow or lose precision.
SENSITIVE_OPS = ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Reciprocal", "Exp")
MIN_OPSET = 19  # DequantizeLinear with fp16 scales, so int8 graphs dequantize straight to fp16


def to_fp16(model: onnx.ModelProto, io_fp16: bool = False, keep_fp32_ops: tuple[str, ...] = ()) -> onnx.ModelProto:
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        model = version_converter.convert_version(model, MIN_OPSET)
    return convert_float_to_float16(
        model,
        keep_io_types=not io_fp16,
        op_block_list=list(keep_fp32_ops) or None,
        disable_shape_infer=True,  # shape inference of large graphs is slow and not needed here
    )
