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
from .calibration import data, images
from .calibration import heldout as heldout_file
from .errors import ParityError, UsageError
from .exporter.onnx_file import write
from .memory import release
from .parity import Case, DerivedRunner, Expected, OrtRunner, ParityReport, Runner, cases_from_samples, run_gate
from .precisions import QuantizeOptions, VariantJob
from .precisions.graph import name_nodes, opset_of
from .precisions.qdq import at_min_opset
from .precisions.ranges import METHODS
from .rebuild import reference_of
from .record import ArtifactRecord, file_sha256, read, record_path
from .reference import Reference
from .specs import Limits, Tolerance

MAX_HELD_OUT = 8  # samples the gate runs on
MAX_SEARCH = 8  # samples a plug-in chooses between candidates on


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


def _calibration(ref: Reference, options: QuantizeOptions, warnings: list[str]) -> data.CalibrationSet | None:
    if options.calib is None:
        return None
    family = data.synthetic_family(options.calib)
    if family is not None:
        warnings.append(f"CALIBRATED ON SYNTHETIC FEATURES (--calib {options.calib}): ranges do not come from your vision tower; do not ship this")
        return data.synthetic(ref.connector, ref.config, options.samples, family)
    if images.image_files(Path(options.calib)):  # a folder of images: the model's processor makes pixel_values
        if ref.connector.inputs(ref.config)[0].name != "pixel_values" or not ref.model:
            raise UsageError(f"{options.calib} holds images; this graph takes features: calibrate with features (mmexport features) or export --vision-tower")
        return images.load(ref.connector, ref.config, ref.model, Path(options.calib), options.samples)
    return data.load(ref.connector, ref.config, options.calib, options.samples)


def split(samples: list) -> tuple[list, list, list]:
    """(fit, search, held-out): disjoint, held-out last. The gate never sees what set the
    ranges or chose between candidates."""
    held = max(2, min(MAX_HELD_OUT, len(samples) // 5))
    search = max(2, min(MAX_SEARCH, len(samples) // 6))
    fit_end = len(samples) - held - search
    return samples[:fit_end], samples[fit_end : fit_end + search], samples[fit_end + search :]


def _gate_function(path: Path, runner_source, cases: list[Case], tolerance: Tolerance, inputs: str, grid) -> Callable[[onnx.ModelProto], ParityReport]:
    def gate(model: onnx.ModelProto) -> ParityReport:
        write(model, path)
        runner = OrtRunner(path, lean=True)
        candidate = runner if grid is None else DerivedRunner(runner, grid, runner_source.input_names)
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
    ref = reference_of(artifact, record, weights)
    tolerance = plugin.tolerance(ref.connector).override(limits)
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
    if record.precision != "fp32":
        raise UsageError(f"{artifact} is already {record.precision}; quantize the fp32 artifact it came from")
    output = Path(output) if output else default_output(artifact, precision)
    if output.suffix != ".onnx":
        raise UsageError(f"output must end in .onnx: {output}")
    return record, output


def _job(artifact: Path, ref: Reference, options: QuantizeOptions, tolerance: Tolerance, parts, staging: Staging, step) -> VariantJob:
    """The plug-in's view: the fp32 graph, the samples for ranges, and the two gates."""
    fit, search, held = parts
    gate_cases = cases_from_samples(ref.connector, ref.config, held) if held else ref.cases()
    search_cases = cases_from_samples(ref.connector, ref.config, search) if search else gate_cases
    inputs = "held-out calibration samples" if held else "random inputs at the parity shapes"
    reference: Runner = ref.runner()
    step("running the fp32 reference")
    for case in search_cases + gate_cases:  # once, so the PyTorch module can go before the search
        case.expected = case.expected or reference.run(case.feeds)
    reference = Expected(reference.input_names, reference.output_names)
    ref.release_module()
    release()
    score = _gate_function(staging.path(".search.onnx"), reference, search_cases, tolerance, "search samples", ref.grid)
    gate = _gate_function(staging.path(), reference, gate_cases, tolerance, inputs, ref.grid)
    probe = fit or [case.feeds for case in search_cases]  # without calibration data, the gate's own inputs
    if ref.grid is not None:  # ranges are measured on the graph, which takes the derived inputs
        fit, probe = [ref.grid(sample) for sample in fit], [ref.grid(sample) for sample in probe]
    return VariantJob(lambda: _fp32_graph(artifact), ref.connector, ref.config, options, tolerance, fit, score=score, gate=gate, step=step, probe=probe)


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
