"""`mmexport bench`: PyTorch, ONNX Runtime and TensorRT side by side on one connector."""

from .run import BenchReport, bench

__all__ = ["BenchReport", "bench"]
