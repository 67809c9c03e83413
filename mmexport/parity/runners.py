"""What a parity gate compares: anything that maps named inputs to named outputs. PyTorch
modules, ONNX Runtime sessions and TensorRT engines (engines/runner.py) all fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from ..errors import UsageError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}
Feeds = dict[str, np.ndarray]
LEAN_ABOVE = 512 << 20  # graphs larger than this run lean where asked; smaller ones keep ONNX Runtime's faster defaults


class Runner(Protocol):
    description: str  # what runs it, for reports
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]: ...


def ort_session(model: str | Path | bytes, device: str = "cpu", threads: int | None = None, optimize: bool = True, lean: bool = False) -> ort.InferenceSession:
    """The one place ONNX Runtime sessions are made (gates, runtime, bench, calibration).
    `lean`: for sessions run a few times (gates, probes) of a large graph: no memory arena and no
    pre-packed weight copies, which cost a graph's size again for little gain there; nodes run in the
    graph's own order where it is one (a probe's reductions right after their tensors), not
    ONNX Runtime's default depth-first order, which ran them last and kept every tensor alive."""
    if device not in PROVIDERS:
        raise UsageError(f"unknown device '{device}'; choose one of: {', '.join(PROVIDERS)}")
    provider = PROVIDERS[device]
    if provider not in ort.get_available_providers():
        raise UsageError(f"ONNX Runtime here has no {provider}; install onnxruntime-gpu or use --device cpu")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about fp16 constant folding on CPU; the gate's numbers are what count
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep intermediate tensors
    if lean:
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    if lean and (isinstance(model, bytes) or Path(model).stat().st_size > LEAN_ABOVE):  # a small graph's copies cost little
        options.enable_cpu_mem_arena = False
        options.add_session_config_entry("session.disable_prepacking", "1")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=[provider])


class OrtRunner:
    """An ONNX Runtime session; feeds are cast to the graph's input types (fp16 I/O)."""

    def __init__(self, model: str | Path | bytes | ort.InferenceSession, device: str = "cpu", threads: int | None = None, lean: bool = False):
        self.session = model if isinstance(model, ort.InferenceSession) else ort_session(model, device, threads, lean=lean)
        self.description = self.session.get_providers()[0]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_types = {i.name: ORT_TYPES[i.type] for i in self.session.get_inputs()}

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        cast: dict[str, np.ndarray] = {k: np.asarray(v).astype(self.input_types[k], copy=False) for k, v in feeds.items()}
        return dict(zip(self.output_names, self.session.run(self.output_names, cast)))


class DerivedRunner:
    """A graph as a user calls it: fed the inputs by their names (a processor's tensors), the
    derivation makes the graph's inputs of them (the identity where nothing is derived)."""

    def __init__(self, runner: Any, derive: Any, input_names: Sequence[str]):
        self.runner, self.derive = runner, derive
        self.description = runner.description
        self.input_names = list(input_names)
        self.output_names = runner.output_names

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        return self.runner.run(self.derive(feeds))


def deriving(runner: Any, record: Any) -> DerivedRunner:
    """The runner as a user calls it, through the record's derivation."""
    return DerivedRunner(runner, record.derivation, [s.name for s in record.inputs])


class TorchRunner:
    """A PyTorch module whose positional inputs are the connector's inputs, in order."""

    description = "PyTorch"

    def __init__(self, module: nn.Module, input_names: Sequence[str], output_names: Sequence[str], device: str = "cpu"):
        self.module = module
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.device = device

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        tensors = [_tensor(feeds[name]).to(self.device) for name in self.input_names]
        with torch.inference_mode():
            outputs = self.module(*tensors)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return {name: _numpy(value) for name, value in zip(self.output_names, outputs)}

    def run_float64(self, feeds: Feeds) -> dict[str, np.ndarray] | None:
        """The same module in float64 (the truth its fp32 run rounds); None where it cannot run so
        (a module not wholly fp32, or code that pins a float32 dtype). The module is fp32 again after."""
        tensors = list(self.module.parameters()) + list(self.module.buffers())
        if any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors):
            return None
        inputs = [_tensor(feeds[name]).to(self.device) for name in self.input_names]
        try:
            self.module.double()
            with torch.inference_mode():
                outputs = self.module(*[t.double() if t.is_floating_point() else t for t in inputs])
        except (RuntimeError, TypeError):
            return None
        finally:
            self.module.float()
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return {name: value.detach().cpu().double().numpy() for name, value in zip(self.output_names, outputs)}


def _tensor(array: Any) -> torch.Tensor:
    array = np.asarray(array)
    if array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))  # copies only read-only or strided arrays


def _numpy(value: torch.Tensor) -> np.ndarray:
    value = value.detach().cpu()
    return value.float().numpy() if value.is_floating_point() else value.numpy()


class Expected:
    """The reference when its outputs were computed beforehand (on every case): its names only."""

    description = "PyTorch"

    def __init__(self, input_names: Sequence[str], output_names: Sequence[str]):
        self.input_names, self.output_names = list(input_names), list(output_names)

    def run(self, feeds: Feeds) -> dict[str, np.ndarray]:
        raise RuntimeError("the reference's outputs were computed beforehand; this case has none")
