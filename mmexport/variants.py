"""`mmexport quantize`: an fp32 artifact -> a lower-precision variant made by a precision
plug-in, gated against the fp32 PyTorch reference on held-out samples, and installed with
its record and those samples (so `mmexport check` reruns the same gate later, anywhere)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import onnx

from . import precisions
from .artifacts import Staging
from .calibration import data
from .calibration import heldout as heldout_file
from .errors import ParityError, UsageError
from .memory import release
from .onnx_file import write
from .parity import DerivedRunner, Expected, OrtRunner, ParityReport, Runner, run_gate
from .precisions import QuantizeOptions, VariantJob
from .precisions.graph import name_nodes, opset_of
from .precisions.qdq import at_min_opset
from .precisions.ranges import METHODS
from .rebuild import subject_of
from .record import ArtifactRecord, file_sha256, read, reading, record_path
from .specs import Limits, Tolerance
from .subjects import Subject

MAX_HELD_OUT = 8  # samples the gate runs on
MAX_SEARCH = 8  # samples a plug-in chooses between candidates on
RANK_SAMPLES = 3  # of those, the ones layers are ordered on (an order needs fewer than a verdict)


@dataclass
class VariantResult:
    path: Path
    record: ArtifactRecord
    parity: ParityReport
    seconds: float
    warnings: list[str] = field(default_factory=list)


def default_output(artifact: Path, precision: str) -> Path:
    return artifact.with_name(f"{artifact.stem}.{precision}.onnx")


def heldout_name(output: Path) -> str:
    return f"{output.stem}.heldout.npz"


def _check_options(plugin: precisions.Precision, options: QuantizeOptions) -> None:
    if options.io not in ("fp32", "fp16") or options.high_precision not in (None, "fp32", "fp16"):
        raise UsageError("--io and --high-precision take fp32 or fp16")
    if options.target not in precisions.TARGETS:
        raise UsageError(f"unknown --target '{options.target}'; choose one of: {', '.join(precisions.TARGETS)}")
    if options.method is not None and options.method not in METHODS:
        raise UsageError(f"unknown calibration method '{options.method}'; choose one of: {', '.join(METHODS)}")
    if plugin.needs_calibration and not options.calib:
        raise UsageError(f"{plugin.name} needs calibration data: --calib FEATURES.npz|.npy|FOLDER (or --calib synthetic to try it out)")


def _calibration(ref: Subject, options: QuantizeOptions, warnings: list[str]) -> data.CalibrationSet | None:
    if options.calib is None:
        return None
    family = data.synthetic_family(options.calib)
    if family is not None:
        warnings.append(f"CALIBRATED ON SYNTHETIC FEATURES (--calib {options.calib}): ranges do not come from your vision tower; do not ship this")
        samples, digest = ref.synthetic(options.samples, family)
        return data.CalibrationSet(samples, f"synthetic:{family}", digest, synthetic=True, family=family)
    source = Path(options.calib)
    if ref.reads_folder(source):  # a folder of images (clips): the model's own processor makes the inputs
        samples = ref.from_images(source, options.samples)
        if len(samples) < data.MIN_SAMPLES:
            raise UsageError(f"{source} holds {len(samples)} items; at least {data.MIN_SAMPLES} are needed (some are held out to check the result)")
        return data.CalibrationSet(samples, str(source.resolve()), data.digest_of(samples))
    return data.load(ref.inputs, source, options.samples)


def split(samples: list) -> tuple[list, list, list]:
    """(fit, search, held-out): disjoint, held-out last. The gate never sees what set the
    ranges or chose between candidates."""
    held = max(2, min(MAX_HELD_OUT, len(samples) // 5))
    search = max(2, min(MAX_SEARCH, len(samples) // 6))
    fit_end = len(samples) - held - search
    return samples[:fit_end], samples[fit_end : fit_end + search], samples[fit_end + search :]


def _gate_function(path: Path, runner_source, cases: list, tolerance: Tolerance, inputs: str, derivation) -> Callable[[onnx.ModelProto], ParityReport]:
    def gate(model: onnx.ModelProto) -> ParityReport:
        write(model, path)
        candidate = DerivedRunner(OrtRunner(path, lean=True), derivation, runner_source.input_names)
        return run_gate(candidate, runner_source, cases, tolerance, inputs)

    return gate


def quantize(
    artifact: str | Path,
    precision: str,
    options: QuantizeOptions | None = None,
    output: str | Path | None = None,
    weights: str | Path | None = None,
    limits: Limits | None = None,
    step: Callable[[str], None] = lambda message: None,
) -> VariantResult:
    start = time.perf_counter()
    artifact, options = Path(artifact), options or QuantizeOptions()
    plugin = precisions.get(precision)
    _check_options(plugin, options)
    record, output = _source(artifact, precision, output)
    step("rebuilding the fp32 reference")
    ref = subject_of(artifact, record, weights)
    tolerance = plugin.tolerance(ref).override(limits)
    warnings: list[str] = []
    step("reading calibration data")
    calibration = _calibration(ref, options, warnings)
    parts = split(calibration.samples) if calibration else ([], [], [])
    with Staging(output) as staging:
        made = plugin.make(_job(artifact, ref, options, tolerance, parts, staging, step))
        step("writing")
        staging.path(".search.onnx").unlink(missing_ok=True)
        write(made.model, staging.path())
        variant = _variant_record(record, artifact, output, plugin, made, options, calibration, parts, staging, warnings)
        variant.write(staging.path(record_path(output).name))
        if not made.report.passed:
            kept = staging.keep_as(output.with_suffix(".failed"))
            reason = made.refusal or f"{precision} {made.report.failure()}"
            raise ParityError(f"{reason}; nothing installed, files kept in {kept}/")
        staging.commit(([heldout_name(output)] if parts[2] else []) + [output.name, record_path(output).name])
    return VariantResult(output, variant, made.report, time.perf_counter() - start, warnings)


def _source(artifact: Path, precision: str, output: str | Path | None) -> tuple[ArtifactRecord, Path]:
    """The fp32 artifact's record and where the variant goes, checked before any work."""
    record = read(artifact, kind="onnx")
    with reading(artifact, record):  # a damaged file says so before any work
        onnx.load(str(artifact), load_external_data=False)
    if record.precision != "fp32":
        raise UsageError(f"{artifact} is already {record.precision}; quantize the fp32 artifact it came from")
    output = Path(output) if output else default_output(artifact, precision)
    if output.suffix != ".onnx":
        raise UsageError(f"output must end in .onnx: {output}")
    return record, output


def _job(artifact: Path, ref: Subject, options: QuantizeOptions, tolerance: Tolerance, parts, staging: Staging, step) -> VariantJob:
    """The plug-in's view: the fp32 graph, the samples for ranges, and the two gates."""
    fit, search, held = parts
    gate_cases = ref.cases_from(held) if held else ref.cases()
    search_cases = ref.cases_from(search) if search else gate_cases
    inputs = "held-out calibration samples" if held else ref.gate_inputs
    reference: Runner = ref.runner()
    step("running the fp32 reference")
    for case in search_cases + gate_cases:  # once, so the PyTorch module can go before the search
        case.expected = case.expected or reference.run(case.feeds)
    reference = Expected(reference.input_names, reference.output_names)
    ref.release_module()
    release()
    score = _gate_function(staging.path(".search.onnx"), reference, search_cases, tolerance, "search samples", ref.derivation)
    rank = _gate_function(staging.path(".search.onnx"), reference, search_cases[:RANK_SAMPLES], tolerance, "search samples", ref.derivation)
    gate = _gate_function(staging.path(), reference, gate_cases, tolerance, inputs, ref.derivation)
    probe = fit or [case.feeds for case in search_cases]  # without calibration data, the gate's own inputs
    # ranges are measured on the graph, which takes what the derivation makes of the inputs
    fit, probe = [ref.derivation(sample) for sample in fit], [ref.derivation(sample) for sample in probe]
    return VariantJob(lambda: _fp32_graph(artifact), options, tolerance, fit, score=score, gate=gate, step=step, probe=probe, rank=rank)


def _fp32_graph(artifact: Path) -> onnx.ModelProto:
    """A fresh copy of the fp32 graph at opset 19 with every node named (plug-ins change it)."""
    model = at_min_opset(onnx.load(str(artifact)))
    name_nodes(model)
    return model


def _variant_record(record, artifact, output, plugin, made, options, calibration, parts, staging, warnings) -> ArtifactRecord:
    fit, search, held = parts
    heldout = heldout_file.write(staging.path(heldout_name(output)), held) if held else None
    size_ratio = staging.path().stat().st_size / _artifact_bytes(artifact, record)
    dtype = {"fp16": "float16"}.get(options.io)
    calib = (
        None
        if calibration is None
        else {
            "source": calibration.source,
            "digest": calibration.digest,
            "synthetic": calibration.synthetic,
            "family": calibration.family,
            "samples": len(fit),
            "search": len(search),
            "held_out": len(held),
        }
    )
    return record.derive(
        artifact=output.name,
        precision=plugin.name,
        target=options.target if plugin.quantized else None,
        **record.with_input_dtypes(lambda s: dtype if dtype and s.dtype == "float32" else s.dtype),
        outputs=[s.with_dtype(dtype) if dtype and s.dtype == "float32" else s for s in record.outputs],
        opset=opset_of(made.model),
        external_data=None,
        sha256=file_sha256(staging.path()),
        tolerance=made.report.tolerance,
        parity=made.report.to_json(),
        heldout=heldout,
        quantization=made.details | {"calibration": calib},
        source={"name": artifact.name, "sha256": record.sha256, "precision": record.precision},
        size_ratio_vs_fp32=round(size_ratio, 4),
        warnings=warnings,
    )


def _artifact_bytes(path: Path, record: ArtifactRecord) -> int:
    size = path.stat().st_size
    if record.external_data:
        size += (path.parent / record.external_data).stat().st_size
    return size
