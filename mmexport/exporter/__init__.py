"""torch -> ONNX export and the ONNX Runtime parity gate."""

from .pipeline import ExportResult, check, export

__all__ = ["ExportResult", "check", "export"]
