"""Parity: metrics, reports, runners (PyTorch, ONNX Runtime, TensorRT) and the gate."""

from .gate import Case, cases_at_shapes, cases_from_samples, run_gate
from .metrics import Metrics, compare
from .report import ParityReport, ParityRow
from .runners import ORT_TYPES, Expected, OrtRunner, Runner, TorchRunner, ort_session

__all__ = [
    "Case",
    "Expected",
    "Metrics",
    "ORT_TYPES",
    "OrtRunner",
    "ParityReport",
    "ParityRow",
    "Runner",
    "TorchRunner",
    "cases_at_shapes",
    "cases_from_samples",
    "compare",
    "ort_session",
    "run_gate",
]
