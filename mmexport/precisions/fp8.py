"""FP8 (E4M3): per-tensor activation and per-channel weight scales on the inputs of weighted
layers, placed like int8, the rest fp16. Its exponent keeps a few huge activations (massive
activations, outlier tokens) that one int8 scale cannot; TensorRT runs it on Ada (sm89),
Hopper (sm90) and Blackwell (sm100, sm120)."""

from __future__ import annotations

from ..specs import Tolerance
from . import qdq
from .base import Precision
from .search import searching

ALPHAS = (0.0, 0.5)  # E4M3 rarely needs smoothing; it is tried second
METHODS = ("minmax",)  # its exponent covers the range: clipping only loses the outliers it keeps


PRECISION = Precision(
    name="fp8",
    summary="calibrated FP8 E4M3 Q/DQ on weighted layers, the rest fp16 (Ada/Hopper/Blackwell)",
    needs_calibration=True,
    tolerance=lambda subject: Tolerance(max_rel=None, min_cosine=0.995 if subject.attention else 0.998, min_token_cosine=0.995),
    make=searching(qdq.FP8_E4M3, METHODS, ALPHAS, alternatives="--precision int8 (its finer steps suit deep attention stacks without huge outliers) or fp16"),
    quantized=True,
    min_arch=89,
    cpu_speed=False,
)
