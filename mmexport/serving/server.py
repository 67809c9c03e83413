"""`mmexport serve`: a real Triton server (PyTriton ships the tritonserver binary) serving an
artifact through the runtime API, with dynamic batching, HTTP and gRPC, health endpoints."""

from __future__ import annotations

import os
import signal
import sysconfig
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UsageError
from ..specs import TensorSpec
from .runtime import Runtime, load
from .triton import max_batch_size


def _fix_libpython() -> None:
    """Triton's Python-backend stub links the first libpython it finds; on these machines that is
    the system's, not this interpreter's, and models fail to load. Put ours first."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = os.environ.get("LD_LIBRARY_PATH", "")
    if libdir and not paths.startswith(libdir):
        os.environ["LD_LIBRARY_PATH"] = f"{libdir}:{paths}" if paths else libdir


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the server. Set explicitly: a process started in the background
    by a non-interactive shell inherits SIGINT as ignored, and Python then leaves it ignored."""
    try:
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: the caller owns the signals
        pass


def _infer_function(runtime: Runtime, batched: bool) -> Callable:
    from pytriton.decorators import batch

    if batched:

        @batch
        def infer(**inputs):
            return runtime(**inputs)  # stacked requests of one shape: the batch axis takes them

        return infer

    def infer_each(requests):
        return [runtime(**{k: np.asarray(v) for k, v in request.items()}) for request in requests]

    return infer_each


def serve(
    artifact: str | Path,
    name: str | None = None,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    max_batch: int | None = None,
    device: str = "cpu",
    on_ready: Callable[[str], None] = lambda message: None,
) -> None:
    """Blocks until interrupted (Ctrl-C / SIGTERM)."""
    try:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError as exc:
        raise UsageError("`mmexport serve` needs PyTriton: pip install 'mmexport[serve]'") from exc
    runtime = load(artifact, device)
    name = name or Path(artifact).name.split(".")[0]
    max_batch = max_batch_size(runtime.record, max_batch, default_cap=16)
    batched = max_batch > 0

    def tensors(specs: list[TensorSpec]) -> list:
        dims = [[-1 if isinstance(d, str) else d for d in s.labels()] for s in specs]
        return [Tensor(name=s.name, dtype=np.dtype(s.dtype).type, shape=tuple(d[1:] if batched else d)) for s, d in zip(specs, dims)]

    _fix_libpython()
    _stop_on_signals()
    config = TritonConfig(http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port, metrics_port=metrics_port)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=name,
            infer_func=_infer_function(runtime, batched),
            inputs=tensors(runtime.inputs),
            outputs=tensors(runtime.outputs),
            config=ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(max_queue_delay_microseconds=500))
            if batched
            else ModelConfig(max_batch_size=0, batching=False),
            strict=True,
        )
        triton.run()
        for note in runtime.notes:
            on_ready(f"note: {note}")
        on_ready(
            f"serving '{name}' ({runtime.record.connector}, {runtime.record.precision}, max batch {max_batch}) "
            f"on http://{host}:{http_port} and grpc {host}:{grpc_port}; ready at /v2/health/ready; Ctrl-C stops"
        )
        triton.serve()
