"""torch -> ONNX export with its parity gate."""

from .pipeline import ExportResult, export

__all__ = ["ExportResult", "export"]
