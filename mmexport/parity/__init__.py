"""Parity: metrics, reports, runners (PyTorch, ONNX Runtime, TensorRT) and the gate."""

from .gate import Case, cases_at_shapes, cases_from_samples, run_gate
from .metrics import Metrics, compare
from .report import ParityReport, ParityRow
from .runners import ORT_TYPES, DerivedRunner, Expected, OrtRunner, Runner, TorchRunner, deriving, ort_session

__all__ = [
    "Case",
    "DerivedRunner",
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
    "deriving",
    "ort_session",
    "run_gate",
]
