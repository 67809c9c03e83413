"""Run an engine on the GPU: check the record against this machine first (TensorRT flavor and
version, the GPU's compute capability), then shapes against the optimization profiles."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..record import ArtifactRecord, EngineInfo, read
from . import flavors
from .profiles import fits


def check_machine(engine: EngineInfo) -> flavors.Flavor:
    """Clear errors before TensorRT sees the bytes: a mismatched engine fails obscurely there."""
    if not flavors.gpu_available():
        raise UsageError("running an engine needs a CUDA GPU and none is visible here; build it here, run it on the GPU machine")
    flavor = flavors.resolve(engine.flavor)
    if flavor.version != engine.tensorrt_version:
        raise UsageError(f"engine was built with {engine.flavor} {engine.tensorrt_version} but {flavor.version} is installed; rebuild it with `mmexport trt`")
    import torch

    major, minor = torch.cuda.get_device_capability()
    here = f"sm{major}{minor}"
    targets = engine.targets
    if targets != ["current"] and here not in targets:
        raise UsageError(f"engine targets {', '.join(targets)} but this GPU is {here}; rebuild with --arch {here}")
    if targets == ["current"] and engine.built_on not in (None, here):
        raise UsageError(f"engine was built for {engine.built_on} but this GPU is {here}; rebuild it here")
    return flavor


class EngineRunner:
    """`runner(vision_features=x)` or `runner(x)`: numpy arrays or torch CUDA tensors in,
    a dict of outputs out (torch CUDA tensors for torch inputs, numpy otherwise). Thread-safe."""

    def __init__(self, path: str | Path, record: ArtifactRecord | None = None):
        import torch

        self.path = Path(path)
        self.record = record or read(self.path, kind="engine")
        assert self.record.engine is not None
        flavor = check_machine(self.record.engine)
        trt = flavor.trt
        self._logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise UsageError(f"TensorRT could not load {self.path}; rebuild it with `mmexport trt`")
        self._context = self.engine.create_execution_context()
        self._lock = threading.Lock()
        self._torch = torch
        self.input_names = [s.name for s in self.record.graph_inputs]
        self.output_names = [s.name for s in self.record.outputs]
        self.description = f"{self.record.engine.flavor} {self.record.engine.tensorrt_version}"

    def fits(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        """Whether these input shapes lie within one of the engine's profiles."""
        assert self.record.engine is not None
        profiles = [{name: (tuple(b["min"]), tuple(b["opt"]), tuple(b["max"])) for name, b in p.items()} for p in self.record.engine.profiles]
        return any(fits(profile, shapes) for profile in profiles)

    def check_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        if not self.fits(shapes):
            assert self.record.engine is not None
            ranges = "; ".join(", ".join(f"{n} {b['min']}..{b['max']}" for n, b in p.items()) for p in self.record.engine.profiles)
            raise UsageError(
                f"inputs {', '.join(f'{n} {list(s)}' for n, s in shapes.items())} are outside the engine's profiles ({ranges}); rebuild with --shapes"
            )

    def run(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """The parity Runner protocol: numpy in, numpy out."""
        return self(**feeds)

    def __call__(self, *args, **kwargs) -> dict[str, Any]:
        torch = self._torch
        feeds = dict(zip(self.input_names, args)) | kwargs
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise UsageError(f"missing input(s): {', '.join(missing)}")
        as_numpy = not any(isinstance(v, torch.Tensor) for v in feeds.values())
        tensors = {}
        for spec in self.record.graph_inputs:
            value = feeds[spec.name]
            value = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
            tensors[spec.name] = value.to(device="cuda", dtype=getattr(torch, spec.dtype)).contiguous()
        self.check_shapes({name: tuple(t.shape) for name, t in tensors.items()})
        with self._lock:
            stream = torch.cuda.current_stream()
            for name, tensor in tensors.items():
                self._context.set_input_shape(name, tuple(tensor.shape))
                self._context.set_tensor_address(name, tensor.data_ptr())
            outputs = {}
            for spec in self.record.outputs:
                shape = tuple(self._context.get_tensor_shape(spec.name))
                outputs[spec.name] = torch.empty(shape, dtype=getattr(torch, spec.dtype), device="cuda")
                self._context.set_tensor_address(spec.name, outputs[spec.name].data_ptr())
            if not self._context.execute_async_v3(stream.cuda_stream):
                raise UsageError(f"TensorRT failed to run {self.path.name}")
            stream.synchronize()
        return {k: v.float().cpu().numpy() for k, v in outputs.items()} if as_numpy else outputs
