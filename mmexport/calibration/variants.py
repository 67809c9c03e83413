"""`mmexport quantize`: an fp32 artifact -> its fp16 or int8 variant, gated against the fp32
PyTorch reference on held-out samples, installed with a manifest saying what was done."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import onnx

from .. import manifest
from ..artifacts import Staging, manifest_path
from ..connectors import Tolerance
from ..errors import ParityError, UsageError
from ..exporter.parity import ParityReport, run_parity
from ..exporter.pipeline import reference_module
from . import data, fp16, int8
from .graph import weighted_nodes
from .smoothquant import smooth

PRECISIONS = ("fp16", "int8")
DEFAULT_SAMPLES = 64
# Defaults chosen by measurement on outlier-heavy features (see docs/precision.md): min-max
# ranges after SmoothQuant (alpha 0.5) keep every layer in int8 above the 0.999 gate where
# percentile ranges clip the tokens that carry most of the output's energy.
DEFAULT_METHOD = "minmax"
DEFAULT_SMOOTH_ALPHA = None  # auto: AUTO_SMOOTH_ALPHAS in turn
AUTO_SMOOTH_ALPHAS = (0.5, 0.65, 0.8)
MAX_KEPT_SHARE = 0.5  # past this, int8 no longer pays: fail instead of keeping more in fp16


@dataclass
class VariantResult:
    path: Path
    manifest: dict[str, Any]
    parity: ParityReport
    seconds: float
    warnings: list[str] = field(default_factory=list)


def default_output(artifact: Path, precision: str) -> Path:
    return artifact.with_name(f"{artifact.stem}.{precision}.onnx")


def _artifact_bytes(path: Path, record: dict[str, Any]) -> int:
    size = path.stat().st_size
    if record.get("external_data"):
        size += (path.parent / record["external_data"]).stat().st_size
    return size


def _calibration(connector, config, calib: str | None, samples: int, precision: str, warnings: list[str]):
    if calib is None:
        if precision == "int8":
            raise UsageError("int8 needs calibration data: --calib FEATURES.npz|.npy|FOLDER (or --calib synthetic to try it out)")
        return None
    if calib == "synthetic":
        warnings.append("CALIBRATED ON SYNTHETIC FEATURES (--calib synthetic): ranges do not come from your vision tower; do not ship this")
        return data.synthetic(connector, config, samples)
    return data.load(connector, config, calib, samples)


def quantize(
    artifact: str | Path,
    precision: str,
    calib: str | None = None,
    method: str = DEFAULT_METHOD,
    percentile: float = 99.99,
    samples: int = DEFAULT_SAMPLES,
    smooth_alpha: float | None = DEFAULT_SMOOTH_ALPHA,
    io: str = "fp32",
    high_precision: str = "fp16",
    output: str | Path | None = None,
    weights: str | Path | None = None,
    tolerance: Tolerance | None = None,
    step: Callable[[str], None] = lambda message: None,
) -> VariantResult:
    start = time.perf_counter()
    artifact = Path(artifact)
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
    if io not in ("fp32", "fp16") or high_precision not in ("fp32", "fp16"):
        raise UsageError("--io and --high-precision take fp32 or fp16")
    record = manifest.read(artifact)
    if record.get("precision", "fp32") != "fp32":
        raise UsageError(f"{artifact} is already {record['precision']}; quantize the fp32 artifact it came from")
    output = Path(output) if output else default_output(artifact, precision)
    if output.suffix != ".onnx":
        raise UsageError(f"output must end in .onnx: {output}")
    step("rebuilding the fp32 reference")
    connector, config, module = reference_module(artifact, record, weights)
    tolerance = tolerance or connector.tolerance_for(precision)
    warnings: list[str] = []
    step("reading calibration data")
    calibration = _calibration(connector, config, calib, samples, precision, warnings)
    held_out = None
    calibrate_on: list = []
    if calibration is not None:
        count = max(2, min(8, len(calibration.samples) // 5))
        calibrate_on, held_out = calibration.split(count)
    source = onnx.load(str(artifact))

    def gate(model: onnx.ModelProto, path: Path) -> ParityReport:
        onnx.save(model, str(path))
        return run_parity(path, module, connector, config, tolerance, samples=held_out)

    io_fp16 = io == "fp16"
    with Staging(output) as staging:
        target = staging.path()
        details: dict[str, Any] = {}
        if precision == "fp16":
            step("converting to fp16")
            model = fp16.to_fp16(source, io_fp16)
            report = gate(model, target)
            details["kept_fp32"] = {}
            if not report.passed:
                step("fp16 missed the gate; keeping sensitive ops in fp32")
                model = fp16.to_fp16(source, io_fp16, fp16.SENSITIVE_OPS)
                report = gate(model, target)
                details["kept_fp32"] = {op: f"all-fp16 graph failed the gate (cosine {report.worst_cosine:.6f} after keeping)" for op in fp16.SENSITIVE_OPS}
        else:
            # SmoothQuant alpha: the one asked for, or the first of AUTO_SMOOTH_ALPHAS whose graph
            # passes the gate; only then are layers kept in higher precision (costs speed).
            alphas = [smooth_alpha] if smooth_alpha is not None else list(AUTO_SMOOTH_ALPHAS)

            def attempt(base: onnx.ModelProto, exclude: dict[str, str]):
                step(f"calibrating int8 ({method}, {len(calibrate_on)} samples, {len(exclude)} layers kept in {high_precision})")
                result = int8.quantize(base, calibrate_on, method, percentile, exclude)
                model = fp16.to_fp16(result.model, io_fp16) if high_precision == "fp16" else result.model
                return result, model, gate(model, target)

            best = None
            tried = []
            for alpha in alphas:
                tried.append(alpha)
                base = copy.deepcopy(source)
                smoothed = 0
                if alpha:
                    step(f"migrating activation outliers into weights (SmoothQuant, alpha {alpha})")
                    smoothed = len(smooth(base, calibrate_on, alpha))
                result, model, report = attempt(base, {})
                if best is None or report.worst_cosine > best[-1].worst_cosine:
                    best = (alpha, base, smoothed, result, model, report)
                if report.passed:
                    break
            alpha, base, smoothed, result, model, report = best
            details["smoothed_activations"] = smoothed
            ranking = None
            exclude: dict[str, str] = {}
            total = len(weighted_nodes(base))
            while not report.passed and len(exclude) < total * MAX_KEPT_SHARE:
                ranking = ranking or int8.rank_by_error(base, calibrate_on)
                grow = max(1, len(exclude))  # 1, 2, 4, 8, ... layers kept
                more = ranking[len(exclude) : len(exclude) + grow]
                if not more:  # every ranked layer (MatMuls; convolutions are not ranked) is already kept
                    break
                for name, error in more:
                    exclude[name] = f"kept in {high_precision}: its own int8 error {error:.4f} ranks among the worst"
                result, model, report = attempt(base, exclude)
            details |= {
                "method": method,
                "percentile": percentile if method == "percentile" else None,
                "smooth_alpha": alpha or None,
                "smooth_alphas_tried": tried,
                "high_precision": high_precision,
                "int8_layers": len(result.quantized),
                "kept": result.kept,
                "int8_mac_share": round(result.int8_mac_share, 4),
            }
        step("writing")
        onnx.save(model, str(target))
        size_ratio = target.stat().st_size / _artifact_bytes(artifact, record)
        variant = dict(record)
        variant |= {
            "artifact": output.name,
            "precision": precision,
            "source_artifact": {"name": artifact.name, "onnx_sha256": record.get("onnx_sha256")},
            "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
            "external_data": None,
            "io_dtype": io,
            "onnx_sha256": manifest.file_sha256(target),
            "quantization": details
            | {
                "calibration": None
                if calibration is None
                else {
                    "source": calibration.source,
                    "digest": calibration.digest,
                    "samples": len(calibrate_on),
                    "held_out": len(held_out),
                    "synthetic": calibration.synthetic,
                },
            },
            "size_ratio_vs_fp32": round(size_ratio, 4),
            "parity": report.to_json() | {"reference": "fp32 PyTorch", "inputs": "held-out calibration samples" if held_out else "random inputs at the parity shapes"},
            "tools": manifest.tool_versions(),
            "created": manifest.now(),
            "warnings": warnings,
        }
        if io_fp16:
            for spec in variant["inputs"] + variant["outputs"]:
                if spec["dtype"] == "float32":
                    spec["dtype"] = "float16"
        manifest.write(staging.path(manifest_path(output).name), variant)
        if not report.passed:
            kept = staging.keep_as(output.with_suffix(".failed"))
            raise ParityError(f"{precision} {report.failure()}; nothing installed, files kept in {kept}/")
        staging.commit([output.name, manifest_path(output).name])
    return VariantResult(output, variant, report, time.perf_counter() - start, warnings)
