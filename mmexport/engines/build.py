"""ONNX variant -> TensorRT engine + record. Precision comes from the graph itself (fp16 tensors,
Q/DQ): networks are strongly typed, no FP16/INT8 builder flags, no calibrator (gone in TensorRT 11).
TensorRT's builder API directly (not Polygraphy's loaders): Polygraphy picks tensorrt or
tensorrt_rtx by an environment variable read at import, and we want both behind one call."""

from __future__ import annotations

import hashlib
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx

from .. import precisions
from ..artifacts import Staging
from ..errors import MmexportError, UsageError
from ..record import ArtifactRecord, EngineInfo, read, reading, record_path
from . import flavors
from .profiles import Profile, build_profiles

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.BOOL: "bool",
}
Progress = Callable[[str, int, int], None]  # phase, step, steps


@dataclass
class BuildResult:
    path: Path
    record: ArtifactRecord
    seconds: float


def _logger(trt: Any) -> Any:
    class Collecting(trt.ILogger):
        """Keeps TensorRT's errors to report them in one line instead of printing them."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(msg)

    return Collecting()


class _Interrupts:
    """While TensorRT builds in C++, Ctrl-C/SIGTERM only set a flag: an exception raised inside
    one of its Python callbacks is caught and logged by TensorRT, and the build goes on. The
    progress monitor then cancels the build, and the caller raises KeyboardInterrupt."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.seen = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_Interrupts":
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._note)
        except ValueError:  # not the main thread: signals stay with whoever owns them
            self._previous.clear()
        return self

    def _note(self, signum, frame) -> None:
        self.seen = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _monitor(trt: Any, progress: Progress, interrupts: _Interrupts) -> Any:
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = num_steps
            progress(phase_name, 0, num_steps)

        def step_complete(self, phase_name, step):
            progress(phase_name, step + 1, self.steps.get(phase_name, 0))
            return not interrupts.seen  # False cancels the build

        def phase_finish(self, phase_name):
            pass

    return Monitor()


def _parse_error(parser) -> str:
    error = parser.get_error(0)
    node = error.node_name() or f"#{error.node()}"
    return f"TensorRT's ONNX parser rejected node '{node}' ({error.node_operator()}): {error.desc()}"


def _io_dtypes(path: Path) -> dict[str, str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return {v.name: ONNX_DTYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type)) for v in list(graph.input) + list(graph.output)}


def _archs(flavor: flavors.Flavor, archs: list[str] | None, precision: str) -> list[str]:
    if flavor.name != "tensorrt-rtx":
        if archs:
            raise UsageError("--arch applies to TensorRT-RTX; full TensorRT builds for the GPU it runs on")
        _check_arch(_current_arch(), precision)
        return ["current"]
    if not archs:
        if flavors.gpu_available():
            _check_arch(_current_arch(), precision)
            return ["current"]
        return [a for a in flavors.RTX_DEFAULT_ARCHS if _arch_number(a) >= (_min_arch(precision) or 0)]
    known = {c.lower() for c in dir(flavor.trt.ComputeCapability) if c.startswith("SM")}
    for arch in archs:
        if arch.lower() not in known:
            raise UsageError(f"--arch {arch} is not a TensorRT-RTX target; choose from {', '.join(sorted(known))} (no sm90)")
        _check_arch(arch.lower(), precision)
    return [a.lower() for a in archs]


def _arch_number(arch: str) -> int:
    return int(arch.lower().removeprefix("sm"))


def _min_arch(precision: str) -> int | None:
    return None if precision == "fp32" else precisions.get(precision).min_arch


def _check_arch(arch: str | None, precision: str) -> None:
    """fp8 needs Ada or newer: refuse an older target in one line, before building."""
    needed = _min_arch(precision)
    if arch is not None and needed and _arch_number(arch) < needed:
        raise UsageError(
            f"{precision} engines need sm{needed} or newer (Ada, Hopper, Blackwell); {arch} cannot run them: drop it from --arch or use an int8/fp16 variant"
        )


def _current_arch() -> str | None:
    if not flavors.gpu_available():
        return None
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"sm{major}{minor}"


def build(
    onnx_path: str | Path,
    flavor: str = "auto",
    shapes: list[str] | None = None,
    archs: list[str] | None = None,
    timing_cache: str | Path | None = None,
    workspace_mb: int | None = None,
    output: str | Path | None = None,
    progress: Progress = lambda phase, step, steps: None,
) -> BuildResult:
    start = time.perf_counter()
    onnx_path = Path(onnx_path)
    record = read(onnx_path, kind="onnx")
    if record.gate_passed is False:
        raise UsageError(f"{onnx_path} failed its parity gate; fix or re-export it before building an engine")
    with reading(onnx_path, record):  # a damaged file says so before the builder's own words
        onnx.load(str(onnx_path), load_external_data=False)
    output = Path(output) if output else onnx_path.with_suffix(".engine")
    chosen = flavors.resolve(flavor)
    profiles = build_profiles(record.graph_inputs, shapes)
    targets = _archs(chosen, archs, record.precision)
    engine = _build_bytes(chosen, onnx_path, profiles, targets, timing_cache, workspace_mb, progress)
    dtypes = _io_dtypes(onnx_path)
    info = EngineInfo(
        flavor=chosen.name,
        tensorrt_version=chosen.version,
        targets=targets,
        built_on=_current_arch() if targets == ["current"] else None,
        profiles=[{name: {"min": list(lo), "opt": list(opt), "max": list(hi)} for name, (lo, opt, hi) in p.items()} for p in profiles],
        builder={"strongly_typed": True, "workspace_mb": workspace_mb, "timing_cache": str(timing_cache) if timing_cache else None},
        build_seconds=round(time.perf_counter() - start, 2),
        engine_bytes=len(engine),
    )
    engine_record = record.derive(
        kind="engine",
        artifact=output.name,
        **record.with_input_dtypes(lambda s: dtypes.get(s.name, s.dtype)),
        outputs=[s.with_dtype(dtypes.get(s.name, s.dtype)) for s in record.outputs],
        external_data=None,
        sha256="sha256:" + hashlib.sha256(engine).hexdigest(),
        parity=None,  # an engine's parity runs on a GPU: `mmexport check X.engine`
        source={"name": onnx_path.name, "sha256": record.sha256, "precision": record.precision},
        engine=info,
    )
    _install(output, engine, engine_record, onnx_path)
    return BuildResult(output, engine_record, time.perf_counter() - start)


def _build_bytes(chosen: flavors.Flavor, onnx_path: Path, profiles: list[Profile], targets: list[str], timing_cache, workspace_mb, progress: Progress) -> bytes:
    trt = chosen.trt
    logger = _logger(trt)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with _Interrupts() as interrupts:  # from the parse on: TensorRT's callbacks swallow an exception raised in them
        parsed = parser.parse_from_file(str(onnx_path))
    if interrupts.seen:
        raise KeyboardInterrupt
    if not parsed:
        raise MmexportError(_parse_error(parser))
    config = builder.create_builder_config()
    for profile_shapes in profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profile_shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    if workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if chosen.name == "tensorrt-rtx" and targets != ["current"]:
        config.num_compute_capabilities = len(targets)
        for i, arch in enumerate(targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, arch.upper()), i)
    cache = None
    if timing_cache:
        data = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)
    with _Interrupts() as interrupts:
        config.progress_monitor = _monitor(trt, progress, interrupts)
        engine = builder.build_serialized_network(network, config)
    if interrupts.seen:
        raise KeyboardInterrupt
    if engine is None:
        reason = logger.errors[-1] if logger.errors else "no reason given"
        raise MmexportError(f"TensorRT ({chosen.name} {chosen.version}) could not build {onnx_path.name}: {reason}")
    if cache is not None:
        Path(timing_cache).write_bytes(bytes(cache.serialize()))
    return bytes(engine)


def _install(output: Path, engine: bytes, record: ArtifactRecord, onnx_path: Path) -> None:
    """Engine and record together; the held-out samples travel with it when it goes elsewhere."""
    with Staging(output) as staging:
        staging.path().write_bytes(engine)
        record.write(staging.path(record_path(output).name))
        names = [output.name, record_path(output).name]
        if record.heldout and output.parent.resolve() != onnx_path.parent.resolve():
            shutil.copy2(onnx_path.parent / record.heldout.file, staging.path(record.heldout.file))
            names.insert(0, record.heldout.file)
        staging.commit(names)
