"""Parity: metrics, reports, runners (PyTorch, ONNX Runtime, TensorRT) and the gate."""

from .gate import Case, run_gate
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
    "compare",
    "deriving",
    "ort_session",
    "run_gate",
]
