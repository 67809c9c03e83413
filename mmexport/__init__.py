"""mmexport: export multimodal-LLM connectors to verified ONNX and TensorRT artifacts."""

from .bench import bench
from .exporter import check, export

__version__ = "0.1.0"
__all__ = ["bench", "check", "export", "__version__"]
