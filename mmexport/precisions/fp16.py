"""FP16: every float tensor in half precision (fp32 I/O unless --io fp16); the ops that lose
most in fp16 are kept in fp32 only when the all-fp16 graph misses."""

from __future__ import annotations

from ..specs import Tolerance
from .base import Made, Precision, VariantJob
from .fp16_graph import SENSITIVE_OPS, to_fp16


def make(job: VariantJob) -> Made:
    io_fp16 = job.options.io == "fp16"
    job.step("converting to fp16")
    model, kept = to_fp16(job.load_source(), io_fp16), {}
    if not job.score(model).passed:
        job.step("fp16 missed; keeping sensitive ops in fp32")
        model = to_fp16(job.load_source(), io_fp16, SENSITIVE_OPS)
        kept = {op: "the all-fp16 graph missed the gate" for op in SENSITIVE_OPS}
    return Made(model, job.gate(model), {"format": "fp16", "kept_fp32": kept})


PRECISION = Precision(
    name="fp16",
    summary="half precision everywhere (fp32 I/O by default)",
    needs_calibration=False,
    tolerance=lambda connector: Tolerance(max_rel=1e-2, min_cosine=0.9999, min_token_cosine=0.9999),
    make=make,
)
