"""Run an engine on the GPU: check the sidecar against this machine first (TensorRT flavor and
version, the GPU's compute capability), then shapes against the optimization profiles."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import flavors
from .build import SIDECAR_FORMAT, sidecar_path

def read_sidecar(engine: Path) -> dict[str, Any]:
    path = sidecar_path(engine)
    if not engine.is_file():
        raise UsageError(f"engine not found: {engine}")
    if not path.is_file():
        raise UsageError(f"no sidecar beside {engine} (expected {path.name}); was it built by mmexport?")
    try:
        sidecar = json.loads(path.read_text())
    except ValueError as exc:
        raise UsageError(f"sidecar {path} is not valid JSON: {exc}") from exc
    if sidecar.get("format") != SIDECAR_FORMAT:
        raise UsageError(f"{path} is not an mmexport engine sidecar")
    return sidecar


def check_machine(sidecar: dict[str, Any]) -> flavors.Flavor:
    """Clear errors before TensorRT sees the bytes: a mismatched engine fails obscurely there."""
    flavor = flavors.resolve(sidecar["flavor"]) if sidecar["flavor"] != "tensorrt" or flavors.gpu_available() else None
    if flavor is None or not flavors.gpu_available():
        raise UsageError("running an engine needs a CUDA GPU and none is visible here")
    if flavor.version != sidecar["tensorrt_version"]:
        raise UsageError(
            f"engine was built with {sidecar['flavor']} {sidecar['tensorrt_version']} but {flavor.version} is installed; rebuild it with `mmexport trt`"
        )
    import torch

    major, minor = torch.cuda.get_device_capability()
    here = f"sm{major}{minor}"
    targets = sidecar["targets"]
    if targets != ["current"] and here not in targets:
        raise UsageError(f"engine targets {', '.join(targets)} but this GPU is {here}; rebuild with --arch {here}")
    if targets == ["current"] and sidecar.get("built_on") not in (None, here):
        raise UsageError(f"engine was built for {sidecar['built_on']} but this GPU is {here}; rebuild it here")
    return flavor


class EngineRunner:
    """`runner(vision_features=x)` or `runner(x)`: numpy arrays or torch CUDA tensors in,
    a dict of outputs out (torch CUDA tensors for torch inputs, numpy otherwise). Thread-safe."""

    def __init__(self, path: str | Path):
        import torch

        self.path = Path(path)
        self.sidecar = read_sidecar(self.path)
        flavor = check_machine(self.sidecar)
        trt = flavor.trt
        self._logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise UsageError(f"TensorRT could not load {self.path}; rebuild it with `mmexport trt`")
        self._context = self.engine.create_execution_context()
        self._lock = threading.Lock()
        self._torch = torch
        self.inputs = [s["name"] for s in self.sidecar["inputs"]]
        self.outputs = [s["name"] for s in self.sidecar["outputs"]]

    def check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        spec = next(s for s in self.sidecar["inputs"] if s["name"] == name)
        for profile in spec["profiles"]:
            if len(shape) == len(profile["min"]) and all(lo <= d <= hi for d, lo, hi in zip(shape, profile["min"], profile["max"])):
                return
        ranges = "; ".join(f"{p['min']}..{p['max']}" for p in spec["profiles"])
        raise UsageError(f"input '{name}' has shape {list(shape)}, outside the engine's profile ({ranges}); rebuild with --shapes")

    def __call__(self, *args, **kwargs) -> dict[str, Any]:
        torch = self._torch
        feeds = dict(zip(self.inputs, args)) | kwargs
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise UsageError(f"missing input(s): {', '.join(missing)}")
        as_numpy = not any(isinstance(v, torch.Tensor) for v in feeds.values())
        tensors = {}
        for spec in self.sidecar["inputs"]:
            value = feeds[spec["name"]]
            value = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
            self.check_shape(spec["name"], tuple(value.shape))
            tensors[spec["name"]] = value.to(device="cuda", dtype=getattr(torch, spec["dtype"])).contiguous()
        with self._lock:
            stream = torch.cuda.current_stream()
            for name, tensor in tensors.items():
                self._context.set_input_shape(name, tuple(tensor.shape))
                self._context.set_tensor_address(name, tensor.data_ptr())
            outputs = {}
            for spec in self.sidecar["outputs"]:
                shape = tuple(self._context.get_tensor_shape(spec["name"]))
                outputs[spec["name"]] = torch.empty(shape, dtype=getattr(torch, spec["dtype"]), device="cuda")
                self._context.set_tensor_address(spec["name"], outputs[spec["name"]].data_ptr())
            if not self._context.execute_async_v3(stream.cuda_stream):
                raise UsageError(f"TensorRT failed to run {self.path.name}")
            stream.synchronize()
        return {k: v.float().cpu().numpy() for k, v in outputs.items()} if as_numpy else outputs
