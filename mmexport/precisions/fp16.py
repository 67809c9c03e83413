"""FP16: every float tensor in half precision (fp32 I/O unless --io fp16), except the layers the
fp32 graph shows would overflow or round too coarsely on the probe samples (fp16_measure.py);
the ops that lose most in fp16 are kept in fp32 too only when that graph still misses."""

from __future__ import annotations

from ..specs import Tolerance
from .base import Made, Precision, VariantJob
from .fp16_graph import SENSITIVE_OPS, to_fp16
from .fp16_measure import keep_fp32, summary


def make(job: VariantJob) -> Made:
    io_fp16 = job.options.io == "fp16"
    job.step(f"measuring where fp16 would overflow or round too coarsely ({len(job.probe)} samples)")
    nodes = keep_fp32(job.load_source(), job.probe)
    job.step("converting to fp16")
    model = to_fp16(job.load_source(), io_fp16, keep_fp32_nodes=list(nodes))
    details: dict = {"format": "fp16", "kept_fp32": summary(nodes), "probe_samples": len(job.probe)}
    if not job.score(model).passed:
        job.step("fp16 missed; keeping sensitive ops in fp32")
        model = to_fp16(job.load_source(), io_fp16, SENSITIVE_OPS, list(nodes))
        details["kept_fp32_ops"] = {op: "the graph with the measured layers in fp32 still missed on the search samples" for op in SENSITIVE_OPS}
    return Made(model, job.gate(model), details)


PRECISION = Precision(
    name="fp16",
    summary="half precision everywhere (fp32 I/O by default)",
    needs_calibration=False,
    tolerance=lambda subject: Tolerance(max_rel=1e-2, min_cosine=0.9999, min_token_cosine=0.9999),
    make=make,
)
