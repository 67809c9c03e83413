"""INT8 QDQ graphs that TensorRT's parser accepts: symmetric int8 (zero point 0) for
activations and weights, per-channel weights, biases left in float, Q/DQ only on the inputs of
weighted MatMul/Gemm/Conv (ONNX Runtime's quantizer, with settings its defaults get wrong)."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from ..errors import UsageError
from .graph import initializers, run_with_outputs, weight_macs, weighted_nodes

METHODS = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax}


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's quantizer prints progress and advice; the CLI shows its own."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


class _Samples(CalibrationDataReader):
    def __init__(self, samples: list[dict[str, np.ndarray]]):
        self._iter = iter(samples)

    def get_next(self):
        return next(self._iter, None)


@dataclass
class Int8Result:
    model: onnx.ModelProto
    quantized: list[str]  # node names
    kept: dict[str, str]  # node name -> why it stayed in higher precision
    int8_mac_share: float


def quantize(
    model: onnx.ModelProto,
    samples: list[dict[str, np.ndarray]],
    method: str,
    percentile: float,
    exclude: dict[str, str] | None = None,
) -> Int8Result:
    if method not in METHODS:
        raise UsageError(f"unknown calibration method '{method}'; choose one of: {', '.join(METHODS)}")
    exclude = exclude or {}
    candidates = weighted_nodes(model)
    chosen = [n.name for n in candidates if n.name not in exclude]
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,  # int32 bias DQ is what TensorRT's parser rejects
        "CalibTensorRangeSymmetric": True,
    }
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        quantize_static(
            str(src),
            str(dst),
            _Samples(samples),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_quantize=chosen,
            op_types_to_quantize=sorted({n.op_type for n in candidates}),
            calibrate_method=METHODS[method],
            extra_options=extra,
        )
        quantized = onnx.load(dst)
    total = sum(weight_macs(model, n) for n in candidates) or 1
    share = sum(weight_macs(model, n) for n in candidates if n.name in chosen) / total
    return Int8Result(quantized, chosen, dict(exclude), share)


def _fake_quant(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x / scale), -127, 127) * scale


def rank_by_error(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]]) -> list[tuple[str, float]]:
    """Each weighted MatMul's own relative output error under int8 (per-tensor activation range
    from these samples, per-channel weights), worst first: what to keep in fp16 first."""
    weights = initializers(model)
    nodes = [n for n in weighted_nodes(model) if n.op_type == "MatMul" and len(weights[n.input[1]].dims) == 2]
    names = sorted({n.input[0] for n in nodes})
    values = next(run_with_outputs(model, names, samples[:1]))
    errors = []
    for node in nodes:
        x = values[node.input[0]].reshape(-1, values[node.input[0]].shape[-1]).astype(np.float64)
        w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float64)
        x_scale = max(np.abs(x).max(), 1e-12) / 127
        w_scale = np.maximum(np.abs(w).max(axis=0, keepdims=True), 1e-12) / 127
        exact = x @ w
        approx = _fake_quant(x, x_scale) @ _fake_quant(w, w_scale)
        errors.append((node.name, float(np.linalg.norm(exact - approx) / max(np.linalg.norm(exact), 1e-12))))
    return sorted(errors, key=lambda item: -item[1])
