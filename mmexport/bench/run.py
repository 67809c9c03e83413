"""`mmexport bench` as a function: build every backend from one connector, time them
interleaved at each batch size, and check each one's output against PyTorch eager."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import UsageError
from ..exporter import pipeline
from ..memory import release
from ..parity import compare
from ..record import read
from ..subjects import Subject, resolve
from . import measure
from .backends import BACKENDS, BASELINE, BenchContext, Unavailable, to_host

DEFAULT_BACKENDS = tuple(BACKENDS)


@dataclass
class Result:
    connector: str
    preset: str
    backend: str
    precision: str
    device: str
    batch: int
    tokens: int | None  # a connector's tokens per image; None for a vision side (its sizes follow the images)
    sizes: str  # what was timed, in words: image sizes and patches, crops, rows
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


def _result(subject: Subject, name: str, batch: int, timed: tuple[int | None, str], timing: measure.Timing | None, memory_mb: float, metrics) -> Result:
    backend = BACKENDS[name]
    median = round(timing.median_ms, 4) if timing else None
    return Result(
        subject.name,
        subject.preset,
        name,
        backend.precision,
        backend.device,
        batch,
        *timed,
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


def _add_notes(report: BenchReport, calls: dict[str, Any], calib: str, given: dict[str, Path]) -> None:
    """What the figures rest on: a variant made here on synthetic features says so; a given one
    was calibrated when it was made, so its own record says on what, whatever --calib says."""
    calibrated = [n for n in calls if BACKENDS[n].precision in ("int8", "fp8")]
    made_here = [n for n in calibrated if BACKENDS[n].precision not in given]
    if calib == "synthetic" and made_here:
        report.notes.append(f"{', '.join(made_here)} calibrated here on synthetic features (--calib synthetic): speed is representative, accuracy is not")
    for name in (n for n in calibrated if BACKENDS[n].precision in given):
        source = (read(given[BACKENDS[name].precision]).quantization or {}).get("calibration") or {}
        if source.get("synthetic"):
            report.notes.append(f"{name}: the given variant was calibrated on synthetic features when it was made: speed is representative, accuracy is not")
    for name in (n for n in calls if not BACKENDS[n].timed):
        report.notes.append(f"{name}: emulated on this CPU, so only its accuracy is reported; its speed is measured on a GPU")


def _subject(connector_name: str | None, preset: str | None, weights: str | Path | None, subject: Subject | None, artifact: Path | None) -> Subject:
    if artifact is not None:
        from ..rebuild import subject_of
        from ..record import read

        return subject_of(artifact, read(artifact, kind="onnx"), weights)
    return subject or resolve(str(connector_name), preset, weights)


SIZED = {"--video": ("bench_clip", "video"), "--image": ("bench_image", "vision")}  # option -> (the subject's attribute, its part)


def _ask_sizes(ref: Subject, sizes: dict[str, tuple[int, ...]]) -> None:
    """The clip or image size a model folder's side is timed on (--video FRAMESxHxW, --image HxW).
    An artifact of another part is refused for --video; --image, a default, applies where it can."""
    for option, size in sizes.items():
        attribute, part = SIZED[option]
        if getattr(ref, "part", None) == part:
            setattr(ref, attribute, size)
        elif option == "--video":
            raise UsageError(f"--video times a video-side artifact (mmexport onnx --model DIR --vision-tower --video); this one is {ref.name}")


def _given(artifact: Path | None) -> dict[str, Path]:
    """Artifacts the user gave, by precision: an fp32 graph, or a variant and the fp32 graph beside it."""
    if artifact is None:
        return {}
    import onnx

    from ..record import reading

    record = read(artifact, kind="onnx")
    with reading(artifact, record):  # a damaged file says so before any work
        onnx.load(str(artifact), load_external_data=False)
    given = {record.precision: artifact}
    source = artifact.parent / str((record.source or {}).get("name", ""))
    if record.precision != "fp32" and source.is_file():
        given["fp32"] = source
    return given


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
    subject: Subject | None = None,
    artifact: str | Path | None = None,
    sizes: dict[str, tuple[int, ...]] | None = None,
) -> BenchReport:
    """Every backend on the same inputs; `artifact` (an .onnx made by mmexport) is timed as it is."""
    backends = backends or list(DEFAULT_BACKENDS)
    batches = batches or [1]
    if warmup < 0 or iters < 1:
        raise UsageError("--warmup must be >= 0 and --iters >= 1")
    if any(b < 1 for b in batches):
        raise UsageError(f"--batch sizes must be >= 1, got {batches}")
    given = _given(Path(artifact) if artifact else None)
    ref = _subject(connector_name, preset, weights, subject, Path(artifact) if artifact else None)
    _ask_sizes(ref, sizes or {})
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    names = [s.name for s in ref.inputs]
    inputs: dict[int, dict[str, np.ndarray]] = {}
    timed: dict[int, tuple[int | None, str]] = {}
    for b in batches:
        request, used = ref.bench_inputs(b, tokens)
        inputs[b] = {n: request[n] for n in names if n in request}  # in the module's order
        timed[b] = (used, ref.describe_sizes(inputs[b]))
    report = BenchReport(
        machine=measure.machine(threads),
        settings={"backends": backends, "batches": batches, "warmup": warmup, "iters": iters, "threads": threads, "calib": calib},
    )
    step("building the fp32 module")
    runner = ref.runner()
    expected = {b: runner.run(x)[runner.output_names[0]] for b, x in inputs.items()}

    with tempfile.TemporaryDirectory(prefix="mmexport-bench-") as tmp:
        workdir = Path(tmp)

        def export() -> Path:
            if "fp32" in given:
                return given["fp32"]
            step("exporting the fp32 ONNX graph (with its parity gate)")
            return pipeline.export(output=workdir / "model.onnx", subject=ref).path

        ctx = BenchContext(ref.module, workdir, export, threads, ref.derivation, calib, given=given)
        made = _build_artifacts(ctx, backends, report, step)
        calls, memory = _bind(ctx, made, inputs, report, step)
        _add_notes(report, calls, calib, given)
        report.notes.extend(ref.bench_notes)
        for b in batches:
            step(f"timing batch {b}")
            timings = measure.interleaved({n: c[b] for n, c in calls.items() if BACKENDS[n].timed}, warmup, iters)
            for name in calls:
                metrics = compare(to_host(calls[name][b]()), expected[b])
                report.results.append(_result(ref, name, b, timed[b], timings.get(name), memory[name], metrics))
            if ref.derivation.beside_graph:
                report.notes.append(_derivation_note(ref.derivation, inputs[b], timed[b][1], timings.get("ort")))
    return report


def _derivation_note(derivation: Any, inputs: dict[str, np.ndarray], sizes: str, ort: Any) -> str:
    """How long deriving the graph's inputs takes, beside the graph, against one ONNX Runtime call."""
    spent = measure.interleaved({"derive": lambda: derivation(inputs)}, 3, 20)["derive"].median_ms
    share = f" ({100 * spent / ort.median_ms:.2g}% of the ort call, which includes it)" if ort else ""
    return f"grid tensors derived beside the graph for {sizes}: {spent:.3f} ms{share}"
