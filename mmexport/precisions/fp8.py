"""FP8 (E4M3): per-tensor activation and per-channel weight scales on the inputs of weighted
layers, placed like int8, the rest fp16. Its exponent keeps a few huge activations (massive
activations, outlier tokens) that one int8 scale cannot; TensorRT runs it on Ada (sm89),
Hopper (sm90) and Blackwell (sm100, sm120)."""

from __future__ import annotations

from ..specs import Tolerance
from . import qdq
from .base import Made, Precision, VariantJob
from .search import Search

ALPHAS = (0.0, 0.5)  # E4M3 rarely needs smoothing; it is tried second


def make(job: VariantJob) -> Made:
    methods = [job.options.method] if job.options.method else ["minmax"]
    alphas = [job.options.smooth] if job.options.smooth is not None else list(ALPHAS)
    return Search(job, qdq.FP8_E4M3, methods, alphas).run()


PRECISION = Precision(
    name="fp8",
    summary="calibrated FP8 E4M3 Q/DQ on weighted layers, the rest fp16 (Ada/Hopper/Blackwell)",
    needs_calibration=True,
    tolerance=lambda connector: Tolerance(max_rel=None, min_cosine=0.995 if connector.attention else 0.998, min_token_cosine=0.995),
    make=make,
    quantized=True,
    min_arch=89,
)
