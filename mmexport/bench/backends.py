"""The backends `mmexport bench` compares. Each turns a BenchContext into a callable that runs
the connector once on given inputs, or raises Unavailable with the reason it cannot run here."""

from __future__ import annotations

import copy
import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import precisions
from ..errors import MmexportError
from ..parity import OrtRunner

# Enough for representative int8 speed (ranges, graph shape); accuracy figures come from
# `mmexport quantize` with the full sample count (docs/precision.md).
CALIB_SAMPLES = 16


class Unavailable(Exception):
    """This backend cannot run on this machine; the message says why."""


Inputs = dict[str, np.ndarray]
# A backend binds one set of host inputs (staging them where it runs) and returns a call
# that runs the connector once on them and returns its first output.
Bind = Callable[[Inputs], Callable[[], Any]]


@dataclass
class BenchContext:
    """What the backends share: the fp32 module and the artifacts made from it, built on demand."""

    module: torch.nn.Module
    workdir: Path
    export_artifact: Callable[[], Path]  # the gated fp32 .onnx (the one given, or exported here)
    threads: int
    derivation: Any  # from the inputs to the graph's: applied in every timed call, as the runtime does
    calib: str = "synthetic"
    given: dict[str, Path] = field(default_factory=dict)  # artifacts the user gave, by precision: timed as they are
    failed: dict[Path, str] = field(default_factory=dict)  # variants that missed their gate, and why

    @functools.cached_property
    def onnx_fp32(self) -> Path:
        return self.export_artifact()

    def variant(self, precision: str, target: str = "tensorrt") -> Path:
        from .. import variants
        from ..precisions import QuantizeOptions

        if precision in self.given:
            return self.given[precision]
        out = self.workdir / f"model.{precision}.{target}.onnx"
        if out not in self.failed and not out.exists():
            try:
                options = QuantizeOptions(calib=self.calib, samples=CALIB_SAMPLES, target=target)
                variants.quantize(self.onnx_fp32, precision, options, output=out)
            except MmexportError as exc:
                # Only what failed: the files it kept are in the bench's temporary folder, gone after the run.
                self.failed[out] = f"the {precision} variant missed its gate ({str(exc).split('; nothing installed')[0]})"
        if out in self.failed:
            raise Unavailable(self.failed[out])
        return out


def first_output(outputs: Any) -> Any:
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def to_host(value: Any) -> np.ndarray:
    return value.float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float32)


def _torch_cpu(compile_module: bool) -> Callable[[BenchContext, Any], Bind]:
    def make(ctx: BenchContext, _: Any) -> Bind:
        module = copy.deepcopy(ctx.module)  # its own weights, so its memory is counted like the others'
        if compile_module:
            try:
                importlib.import_module("torch._inductor")  # fails early where inductor cannot work
            except Exception as exc:  # pragma: no cover - depends on the install
                raise Unavailable(f"torch.compile is not usable here: {exc}") from None
            module = torch.compile(module, dynamic=True)  # type: ignore[assignment]

        def bind(inputs: Inputs) -> Callable[[], Any]:
            tensors = [torch.from_numpy(v) for v in inputs.values()]

            def call() -> Any:
                with torch.inference_mode():
                    return first_output(module(*tensors))

            return call

        return bind

    return make


def _torch_cuda(dtype: torch.dtype) -> Callable[[BenchContext, Any], Bind]:
    def make(ctx: BenchContext, _: Any) -> Bind:
        module = copy.deepcopy(ctx.module).to("cuda", dtype)

        def bind(inputs: Inputs) -> Callable[[], Any]:
            # Inputs live on the GPU, as in a server after the vision tower: time the connector, not PCIe.
            tensors = [torch.from_numpy(v).to("cuda", dtype) for v in inputs.values()]

            def call() -> Any:
                with torch.inference_mode():
                    out = first_output(module(*tensors))
                torch.cuda.synchronize()
                return out

            return call

        return bind

    return make


def _ort_artifact(precision: str) -> Callable[[BenchContext], Path]:
    def artifact(ctx: BenchContext) -> Path:
        if precision == "fp32":
            return ctx.onnx_fp32
        return ctx.variant(precision, target=precisions.get(precision).bench_target)

    return artifact


def _ort(ctx: BenchContext, path: Path) -> Bind:
    runner = OrtRunner(path, threads=ctx.threads)
    session, name = runner.session, runner.output_names[0]

    def cast(inputs: Inputs) -> dict[str, np.ndarray]:
        return {k: v.astype(runner.input_types[k], copy=False) for k, v in inputs.items()}

    def bind(inputs: Inputs) -> Callable[[], Any]:
        return lambda: session.run([name], cast(ctx.derivation(inputs)))[0]  # derived in every call, as in the runtime

    return bind


def _trt_engine(precision: str) -> Callable[[BenchContext], Path]:
    def artifact(ctx: BenchContext) -> Path:
        from ..engines import flavors
        from ..engines.build import build
        from ..errors import UsageError

        if not torch.cuda.is_available():
            raise Unavailable("TensorRT engines run on a CUDA GPU; none is visible")
        try:
            flavors.resolve("auto")
            # The default profile spans every dynamic axis' range, so one engine serves every --batch.
            return build(ctx.variant(precision), archs=["current"], output=ctx.workdir / f"model.{precision}.engine").path
        except UsageError as exc:  # no TensorRT, or fp8 on a GPU older than Ada
            raise Unavailable(str(exc)) from None

    return artifact


def _trt(ctx: BenchContext, engine: Path) -> Bind:
    from ..engines.runner import EngineRunner

    runner = EngineRunner(engine)

    def bind(inputs: Inputs) -> Callable[[], Any]:
        return lambda: first_output(list(runner(**{k: torch.from_numpy(v).cuda() for k, v in ctx.derivation(inputs).items()}).values()))

    return bind


@dataclass(frozen=True)
class Backend:
    name: str
    precision: str
    device: str  # cuda backends are skipped where no GPU is visible
    make: Callable[[BenchContext, Any], Bind]  # (context, what `artifact` made) -> bind
    # Builds what the backend runs (export, quantize, engine) before its memory is measured.
    artifact: Callable[[BenchContext], Any] = lambda ctx: None
    timed: bool = True  # False: its speed here means nothing (emulated); only its accuracy is reported


def _backends() -> dict[str, Backend]:
    """PyTorch's and the fp32 graph's, then one ONNX Runtime backend per precision and one
    TensorRT backend per quantized precision, from the precision registry (TensorRT's own is fp16)."""
    declared = [precisions.get(name) for name in precisions.names()]
    made = [
        Backend("torch", "fp32", "cpu", _torch_cpu(compile_module=False)),
        Backend("torch-compile", "fp32", "cpu", _torch_cpu(compile_module=True)),
        Backend("ort", "fp32", "cpu", _ort, _ort_artifact("fp32")),
        *(Backend(f"ort-{p.name}", p.name, "cpu", _ort, _ort_artifact(p.name), timed=p.cpu_speed) for p in declared),
        Backend("torch-cuda", "fp32", "cuda", _torch_cuda(torch.float32)),
        Backend("torch-cuda-fp16", "fp16", "cuda", _torch_cuda(torch.float16)),
        Backend("trt", "fp16", "cuda", _trt, _trt_engine("fp16")),
        *(Backend(f"trt-{p.name}", p.name, "cuda", _trt, _trt_engine(p.name)) for p in declared if p.quantized),
    ]
    return {b.name: b for b in made}


BACKENDS = _backends()
BASELINE = "torch"
