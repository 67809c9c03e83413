"""mmexport: export multimodal-LLM connectors to verified ONNX and TensorRT artifacts."""

from .exporter import check, export

__version__ = "0.1.0"
__all__ = ["check", "export", "__version__"]
