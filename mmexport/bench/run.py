"""`mmexport bench` as a function: build every backend from one connector, time them
interleaved at each batch size, and check each one's output against PyTorch eager."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..calibration.synthetic import outlier_features
from ..connectors import BATCH_AXES
from ..errors import UsageError
from ..exporter import pipeline
from ..memory import release
from ..parity import compare
from ..reference import Reference, resolve
from . import measure
from .backends import BACKENDS, BASELINE, BenchContext, Unavailable, first_output, to_host

DEFAULT_BACKENDS = tuple(BACKENDS)


@dataclass
class Result:
    connector: str
    preset: str
    backend: str
    precision: str
    device: str
    batch: int
    tokens: int | None
    median_ms: float | None  # None: not timed here (an emulated precision)
    p90_ms: float | None
    throughput_per_s: float | None  # batch items (images, or crops/tiles sets) per second
    peak_mem_mb: float  # memory the backend added: RSS growth on CPU, device memory on CUDA
    cosine: float  # first output against PyTorch eager fp32, same inputs
    token_cosine_p1: float  # 1st percentile of the per-token cosine, same comparison


@dataclass
class Skipped:
    backend: str
    reason: str


@dataclass
class BenchReport:
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "results": [asdict(r) for r in self.results],
            "skipped": [asdict(s) for s in self.skipped],
            "notes": self.notes,
        }

    def ratio(self, result: Result, baseline: str = BASELINE) -> float | None:
        base = next((r for r in self.results if r.backend == baseline and r.batch == result.batch), None)
        if base is None or base.median_ms is None or result.median_ms is None:
            return None
        return result.median_ms / base.median_ms


def parse_backends(value: str | None) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()] if value else list(DEFAULT_BACKENDS)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise UsageError(f"unknown backend '{(unknown or [value or ''])[0]}'; choose from: {', '.join(BACKENDS)}")
    return list(dict.fromkeys(names))


def _sizes(connector: Any, config: Any, batch: int, tokens: int | None) -> dict[str, int]:
    axes = {a.name: a for s in connector.inputs(config) for a in s.axes.values()}
    sizes = {name: axis.opt for name, axis in axes.items()}
    # --batch sets the request axis: `batch`, or `crops`/`tiles` for connectors without one (DocOwl).
    batch_axis = next((name for name in BATCH_AXES if name in axes), None)
    if batch_axis:
        sizes[batch_axis] = batch
    elif batch != 1:
        fixed = ", ".join(f"{s.name} {s.describe()}" for s in connector.inputs(config))
        raise UsageError(f"'{connector.name}' has no batch axis ({fixed}): images are packed along tokens; use --tokens, not --batch")
    if tokens is not None:
        if "tokens" not in axes:
            fixed = ", ".join(f"{s.name} {s.describe()}" for s in connector.inputs(config))
            raise UsageError(f"'{connector.name}' takes a fixed number of tokens ({fixed}); drop --tokens")
        sizes["tokens"] = tokens
    connector.check_sizes(config, sizes)
    return sizes


def _inputs(connector: Any, config: Any, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Vision-feature-like values (outlier channels, heavy tails) so that the int8 cosine in
    the table means something; masks and ids as the connector's dummies."""
    arrays = {k: v.numpy() for k, v in connector.dummy_inputs(config, sizes, seed=7).items()}
    for i, spec in enumerate(connector.inputs(config)):
        if spec.dtype.startswith("float"):
            arrays[spec.name] = outlier_features(spec.shape(sizes), seed=10_000 + i)
    return arrays


def _folder_request(connector: Any, config: Any, images: int) -> dict[str, np.ndarray]:
    """A request of `images` images in the folder's processor layout; a connector graph (whose
    inputs are tower features) gets its first sample repeated along its leading axis."""
    if connector.request is not None:
        return {k: v.numpy() for k, v in connector.request(config, images, 0).items()}
    sample = connector.samples(config)[0]
    dynamic = {s.name for s in connector.inputs(config) if s.dims and not isinstance(s.dims[0], int)}
    rows = {k: v.shape[0] for k, v in sample.items() if k in dynamic}
    return {k: (v.repeat(images, *([1] * (v.dim() - 1))) if k in rows and rows[k] else v).numpy() for k, v in sample.items()}


def _result(connector: str, preset: str, name: str, batch: int, tokens: int | None, timing: measure.Timing | None, memory_mb: float, metrics) -> Result:
    backend = BACKENDS[name]
    median = round(timing.median_ms, 4) if timing else None
    return Result(
        connector,
        preset,
        name,
        backend.precision,
        backend.device,
        batch,
        tokens,
        median,
        round(timing.p90_ms, 4) if timing else None,
        round(batch * 1000 / timing.median_ms, 2) if timing else None,
        round(max(memory_mb, 0.0), 1),
        round(metrics.cosine, 6),
        round(metrics.token_cosine_p1, 5),
    )


def _build_artifacts(ctx: BenchContext, backends: list[str], report: BenchReport, step: Callable[[str], None]) -> dict[str, Any]:
    """Every artifact (export, variants, engine) first, while no backend holds memory: making a
    variant of a 3 GB connector needs several copies of it (Idefics2 ran out of 24 GB otherwise)."""
    made: dict[str, Any] = {}
    for name in backends:
        backend = BACKENDS[name]
        step(f"building what {name} runs")
        try:
            if backend.device == "cuda" and not torch.cuda.is_available():
                raise Unavailable("no CUDA GPU visible to PyTorch")
            made[name] = backend.artifact(ctx)
        except Unavailable as exc:
            report.skipped.append(Skipped(name, str(exc)))
    return made


def _bind(ctx: BenchContext, made: dict[str, Any], inputs: dict[int, Any], report: BenchReport, step: Callable[[str], None]):
    """Each backend's call per batch size, run once (compiles, plans, allocates), and the memory it added."""
    calls: dict[str, dict[int, Callable[[], Any]]] = {}
    memory: dict[str, float] = {}
    for name in made:
        backend = BACKENDS[name]
        step(f"preparing {name}")
        try:
            release(cuda=torch.cuda.is_available())  # the next backend's RSS growth is its own
            on_gpu = backend.device == "cuda"
            before = measure.gpu_used_mb() if on_gpu else measure.resident_mb()
            bind = backend.make(ctx, made[name])
            calls[name] = {b: bind(batch_inputs) for b, batch_inputs in inputs.items()}
            for call in calls[name].values():
                call()
            memory[name] = (measure.gpu_used_mb() if on_gpu else measure.resident_mb()) - before
        except Unavailable as exc:
            report.skipped.append(Skipped(name, str(exc)))
            calls.pop(name, None)
    return calls, memory


def _add_notes(report: BenchReport, calls: dict[str, Any], calib: str) -> None:
    if calib == "synthetic" and any(BACKENDS[n].precision in ("int8", "fp8") for n in calls):
        report.notes.append("int8/fp8 calibrated on synthetic features (--calib synthetic): speed is representative, accuracy is not")
    for name in (n for n in calls if not BACKENDS[n].timed):
        report.notes.append(f"{name}: emulated on this CPU, so only its accuracy is reported; its speed is measured on a GPU")


def bench(
    connector_name: str | None = None,
    preset: str | None = None,
    weights: str | Path | None = None,
    backends: list[str] | None = None,
    batches: list[int] | None = None,
    tokens: int | None = None,
    warmup: int = 3,
    iters: int = 20,
    threads: int | None = None,
    calib: str = "synthetic",
    step: Callable[[str], None] = lambda message: None,
    reference: Reference | None = None,
) -> BenchReport:
    backends = backends or list(DEFAULT_BACKENDS)
    batches = batches or [1]
    if warmup < 0 or iters < 1:
        raise UsageError("--warmup must be >= 0 and --iters >= 1")
    if any(b < 1 for b in batches):
        raise UsageError(f"--batch sizes must be >= 1, got {batches}")
    ref = reference or resolve(str(connector_name), preset, weights)
    connector, preset, config = ref.connector, ref.preset, ref.config
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    if connector.samples is not None:  # a model folder's layout: --batch is the number of images
        if tokens is not None:
            raise UsageError("--tokens does not apply to a model folder's artifact: its sizes follow the images (--batch)")
        inputs, tokens_used = {b: _folder_request(connector, config, b) for b in batches}, None
    else:
        sizes = {b: _sizes(connector, config, b, tokens) for b in batches}
        inputs, tokens_used = {b: _inputs(connector, config, s) for b, s in sizes.items()}, next(iter(sizes.values())).get("tokens")
    report = BenchReport(
        machine=measure.machine(threads),
        settings={"backends": backends, "batches": batches, "warmup": warmup, "iters": iters, "threads": threads, "calib": calib},
    )
    step("building the fp32 module")
    module = ref.module
    with torch.inference_mode():
        expected = {b: to_host(first_output(module(*(torch.from_numpy(v) for v in x.values())))) for b, x in inputs.items()}

    with tempfile.TemporaryDirectory(prefix="mmexport-bench-") as tmp:
        workdir = Path(tmp)

        def export() -> Path:
            step("exporting the fp32 ONNX graph (with its parity gate)")
            return pipeline.export(output=workdir / "model.onnx", reference=ref).path

        ctx = BenchContext(connector, config, module, workdir, export, threads, calib, grid=ref.grid)
        made = _build_artifacts(ctx, backends, report, step)
        calls, memory = _bind(ctx, made, inputs, report, step)
        _add_notes(report, calls, calib)
        for b in batches:
            step(f"timing batch {b}")
            timings = measure.interleaved({n: c[b] for n, c in calls.items() if BACKENDS[n].timed}, warmup, iters)
            for name in calls:
                metrics = compare(to_host(calls[name][b]()), expected[b])
                report.results.append(_result(connector.name, preset, name, b, tokens_used, timings.get(name), memory[name], metrics))
            if ref.grid is not None:
                report.notes.append(_derivation_note(ref.grid, inputs[b], b, timings.get("ort")))
    return report


def _derivation_note(grid: Any, inputs: dict[str, np.ndarray], images: int, ort: Any) -> str:
    """How long deriving the grid tensors takes, beside the graph, against one ONNX Runtime call."""
    spent = measure.interleaved({"derive": lambda: grid(inputs)}, 3, 20)["derive"].median_ms
    share = f" ({100 * spent / ort.median_ms:.2g}% of the ort call, which includes it)" if ort else ""
    return f"grid tensors derived beside the graph for {images} image(s): {spent:.3f} ms{share}"
