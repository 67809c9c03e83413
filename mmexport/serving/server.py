"""`mmexport serve`: a real Triton server (PyTriton ships the tritonserver binary) serving an
artifact through the runtime API, with dynamic batching, HTTP and gRPC, health endpoints."""

from __future__ import annotations

import os
import signal
import sysconfig
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import UsageError
from ..runtime import Runtime, load
from ..specs import TensorSpec
from .triton import max_batch_size

EXIT_TIMEOUT_S = 5  # after a stop, how long Triton waits for clients to let go before it exits anyway


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


def _encoder_function(encoder: Any) -> Callable:
    """The encoder service's batch: every item (image or clip) of every request in one artifact
    call; outputs padded to the batch's most tokens, with each item's token count, grid, size
    (images) and error."""
    from pytriton.decorators import batch

    kind = encoder.kind

    def infer(**inputs):
        answers = encoder([bytes(row[0]) for row in inputs[kind]])
        width = encoder_width(encoder)
        tokens = max([len(a.embeddings) for a in answers if a.embeddings is not None] or [1])
        embeds = np.zeros((len(answers), tokens, width), np.float32)
        counts, grids, sizes = (np.zeros((len(answers), n), np.int64) for n in (1, 3, 2))
        patches = max([len(a.timestamps) for a in answers if a.timestamps] or [1])
        times = np.full((len(answers), patches), np.nan, np.float32)  # NaN: no time (padding, or a model without)
        for k, answer in enumerate(answers):
            if answer.embeddings is not None:
                embeds[k, : len(answer.embeddings)], counts[k, 0] = answer.embeddings, len(answer.embeddings)
            if answer.grid is not None:
                grids[k] = answer.grid
            if answer.size is not None:
                sizes[k] = answer.size
            if answer.timestamps:
                times[k, : len(answer.timestamps)] = answer.timestamps
        errors = np.array([[a.error.encode()] for a in answers], dtype=np.object_)
        producer = np.array([[encoder.producer.encode()]] * len(answers), dtype=np.object_)
        out = {f"{kind}_embeds": embeds, f"{kind}_tokens": counts, f"{kind}_grid_thw": grids, "error": errors, "producer": producer}
        return out | ({"image_sizes": sizes} if kind == "image" else {"video_timestamps": times})

    return batch(infer)


def encoder_width(encoder: Any) -> int:
    """D of the answers: the outputs' widths side by side (Qwen3-VL's deepstack levels included)."""
    return sum(int(s.dims[-1]) for s in encoder.runtime.outputs)


def _bind_encoder(triton: Any, name: str, encoder: Any, max_batch: int) -> None:
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    kind = encoder.kind
    outputs = [
        Tensor(name=f"{kind}_embeds", dtype=np.float32, shape=(-1, encoder_width(encoder))),
        Tensor(name=f"{kind}_tokens", dtype=np.int64, shape=(1,)),
        Tensor(name=f"{kind}_grid_thw", dtype=np.int64, shape=(3,)),
        *([Tensor(name="image_sizes", dtype=np.int64, shape=(2,))] if kind == "image" else [Tensor(name="video_timestamps", dtype=np.float32, shape=(-1,))]),
        Tensor(name="error", dtype=bytes, shape=(1,)),
        Tensor(name="producer", dtype=bytes, shape=(1,)),
    ]
    triton.bind(
        model_name=name,
        infer_func=_encoder_function(encoder),
        inputs=[Tensor(name=kind, dtype=bytes, shape=(1,))],
        outputs=outputs,
        config=ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(max_queue_delay_microseconds=2000)),
        strict=True,
    )


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
    model_folder: str | Path | None = None,
) -> None:
    """Blocks until interrupted (Ctrl-C / SIGTERM). With `model_folder` (the one the vision-side
    artifact came from) it also serves NAME_images (a video side: NAME_videos): encoded images
    (clips) in, embeddings out."""
    try:
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError as exc:
        raise UsageError("`mmexport serve` needs PyTriton: pip install 'mmexport[serve]'") from exc
    runtime = load(artifact, device)  # once: the tensors endpoint and the images endpoint share it
    name = name or Path(artifact).name.split(".")[0]
    encoder = None
    if model_folder is not None:
        from ..hf.service import encoder_for

        encoder = encoder_for(runtime, model_folder)
    max_batch = max_batch_size(runtime.record, max_batch, default_cap=16)
    batched = max_batch > 0

    def tensors(specs: list[TensorSpec]) -> list:
        dims = [[-1 if isinstance(d, str) else d for d in s.labels()] for s in specs]
        return [Tensor(name=s.name, dtype=np.dtype(s.dtype).type, shape=tuple(d[1:] if batched else d)) for s, d in zip(specs, dims)]

    _fix_libpython()
    _stop_on_signals()
    config = TritonConfig(
        http_address=host, http_port=http_port, grpc_address=host, grpc_port=grpc_port, metrics_port=metrics_port, exit_timeout_secs=EXIT_TIMEOUT_S
    )
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
        if encoder is not None:  # under its name and as `images` (`videos`), the one a client finds unasked
            for served in (f"{name}_{encoder.kind}s", f"{encoder.kind}s"):
                _bind_encoder(triton, served, encoder, 16)
        triton.run()
        for note in runtime.notes + (encoder.notes if encoder is not None else []):
            on_ready(f"note: {note}")
        on_ready(
            f"serving '{name}' ({runtime.record.connector}, {runtime.record.precision}, max batch {max_batch}) "
            f"on http://{host}:{http_port} and grpc {host}:{grpc_port}; ready at /v2/health/ready; Ctrl-C stops"
            + (f"; {encoder.kind}s in at '{name}_{encoder.kind}s' (mmexport.client.embeddings)" if encoder is not None else "")
        )
        triton.serve()
