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

    connector: Any
    config: Any
    module: torch.nn.Module
    workdir: Path
    export_artifact: Callable[[], Path]  # the gated fp32 .onnx
    threads: int
    calib: str = "synthetic"
    failed: dict[Path, str] = field(default_factory=dict)  # variants that missed their gate, and why
    grid: Any = None  # a native-resolution graph's derived inputs: derived in every timed call, as the runtime does

    @functools.cached_property
    def onnx_fp32(self) -> Path:
        return self.export_artifact()

    def variant(self, precision: str, target: str = "tensorrt") -> Path:
        from .. import variants
        from ..precisions import QuantizeOptions

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
        # On a CPU, int8 pays only with fp32 around it (--target cpu): ONNX Runtime's CPU kernels
        # for fp16 are few, and the casts cost more than int8 saves (docs/precision.md).
        return ctx.variant(precision, target="cpu" if precision == "int8" else "tensorrt")

    return artifact


def _ort(ctx: BenchContext, path: Path) -> Bind:
    runner = OrtRunner(path, threads=ctx.threads)
    session, name = runner.session, runner.output_names[0]

    def cast(inputs: Inputs) -> dict[str, np.ndarray]:
        return {k: v.astype(runner.input_types[k], copy=False) for k, v in inputs.items()}

    def bind(inputs: Inputs) -> Callable[[], Any]:
        if ctx.grid is not None:  # the grid tensors are part of every call, as in the runtime
            return lambda: session.run([name], cast(ctx.grid(inputs)))[0]
        feed = cast(inputs)
        return lambda: session.run([name], feed)[0]

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
        if ctx.grid is not None:
            return lambda: first_output(list(runner(**{k: torch.from_numpy(v).cuda() for k, v in ctx.grid(inputs).items()}).values()))
        tensors = {k: torch.from_numpy(v).cuda() for k, v in inputs.items()}
        return lambda: first_output(list(runner(**tensors).values()))

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


BACKENDS = {
    b.name: b
    for b in (
        Backend("torch", "fp32", "cpu", _torch_cpu(compile_module=False)),
        Backend("torch-compile", "fp32", "cpu", _torch_cpu(compile_module=True)),
        Backend("ort", "fp32", "cpu", _ort, _ort_artifact("fp32")),
        Backend("ort-fp16", "fp16", "cpu", _ort, _ort_artifact("fp16")),
        Backend("ort-int8", "int8", "cpu", _ort, _ort_artifact("int8")),
        # ONNX Runtime's CPU provider emulates FP8: its cosine is real, its speed is not (GPU only).
        Backend("ort-fp8", "fp8", "cpu", _ort, _ort_artifact("fp8"), timed=False),
        Backend("torch-cuda", "fp32", "cuda", _torch_cuda(torch.float32)),
        Backend("torch-cuda-fp16", "fp16", "cuda", _torch_cuda(torch.float16)),
        Backend("trt", "fp16", "cuda", _trt, _trt_engine("fp16")),
        Backend("trt-int8", "int8", "cuda", _trt, _trt_engine("int8")),
        Backend("trt-fp8", "fp8", "cuda", _trt, _trt_engine("fp8")),
    )
}
BASELINE = "torch"
