"""mmexport: export multimodal-LLM connectors to verified ONNX and TensorRT artifacts."""

__version__ = "0.1.0"

# The Python API, one function per command (api.py). Imported here, after the subpackages they
# come from, so that `mmexport.bench` is the function, not the `mmexport/bench/` package.
from .api import (  # noqa: E402
    BuildResult,
    ExportResult,
    Made,
    QuantizeOptions,
    VariantResult,
    attach,
    bench,
    build_engine,
    check,
    export,
    load,
    make,
    quantize,
    serve,
    write_triton,
)

__all__ = [
    "BuildResult",
    "ExportResult",
    "Made",
    "QuantizeOptions",
    "VariantResult",
    "__version__",
    "attach",
    "bench",
    "build_engine",
    "check",
    "export",
    "load",
    "make",
    "quantize",
    "serve",
    "write_triton",
]
