"""mmexport: export multimodal-LLM connectors to verified ONNX and TensorRT artifacts."""

__version__ = "0.1.0"

# The Python API, one function per command (api.py). Imported here, after the subpackages they
# come from, so that `mmexport.bench` is the function, not the `mmexport/bench/` package.
from . import client  # noqa: E402  (mmexport.client.embeddings: the encoder service's answers for vLLM and SGLang)
from .api import *  # noqa: E402, F403
from .api import __all__ as _api_names  # noqa: E402

__all__ = [*_api_names, "__version__", "client"]
