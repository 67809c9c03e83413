"""mmexport: export multimodal-LLM connectors to verified ONNX and TensorRT artifacts."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The Python API, one function per command; imported on first use so that `import mmexport`
# (and the CLI's start) stays fast.
_API = {
    "export": "api",
    "quantize": "api",
    "check": "api",
    "build_engine": "api",
    "write_triton": "api",
    "serve": "api",
    "bench": "api",
    "load": "api",
    "make": "api",
    "QuantizeOptions": "api",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'mmexport' has no attribute '{name}'")
