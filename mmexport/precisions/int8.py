"""INT8: symmetric per-tensor activations and per-channel weights on the inputs of weighted
MatMul/Gemm/Conv, SmoothQuant folded in, ranges and fallback found by the search."""

from __future__ import annotations

from ..specs import Tolerance
from . import qdq
from .base import Precision
from .search import searching

ALPHAS = (0.5, 0.65, 0.8, 0.0)  # SmoothQuant strengths tried in turn; 0: no smoothing
METHODS = ("minmax", "mse")  # min-max keeps the tokens that carry the energy; MSE clips per tensor


PRECISION = Precision(
    name="int8",
    summary="calibrated int8 Q/DQ on weighted layers, the rest fp16 (TensorRT) or fp32 (--target cpu)",
    needs_calibration=True,
    tolerance=lambda subject: Tolerance(max_rel=None, min_cosine=0.995 if subject.attention else 0.999, min_token_cosine=0.99),
    make=searching(qdq.INT8, METHODS, ALPHAS, alternatives="--precision fp8 (Ada, Hopper, Blackwell) or fp16"),
    quantized=True,
)
