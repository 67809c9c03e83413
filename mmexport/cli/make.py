"""`mmexport onnx`, `quantize`, `trt` and `check`: parse, call the API, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .. import api, precisions
from ..errors import MmexportError, UsageError
from ..report import parity_table
from ..specs import Limits
from . import app as ui
from . import options as opt
from .app import app
from .options import (
    PRECISION_CHOICES,
    CalibOpt,
    ConnectorOpt,
    DeviceOpt,
    HighPrecisionOpt,
    IoOpt,
    JsonOpt,
    MaxRelOpt,
    MethodOpt,
    MinCosOpt,
    MinTokenOpt,
    ModelOpt,
    PercentileOpt,
    PresetOpt,
    SamplesOpt,
    ShapeOpt,
    SmoothOpt,
    TargetOpt,
    VideoOpt,
    VisionTowerOpt,
    WeightsOpt,
)
from .show import print_engine, print_export, print_variant


@app.command("onnx")
def onnx_command(
    connector: Optional[str] = ConnectorOpt,
    model: Optional[Path] = ModelOpt,
    vision_tower: bool = VisionTowerOpt,
    video: bool = VideoOpt,
    preset: Optional[str] = PresetOpt,
    weights: Optional[Path] = WeightsOpt,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .onnx path; default CONNECTOR-PRESET.onnx."),
    opset: int = typer.Option(18, "--opset", min=17, max=23, help="ONNX opset."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the parity gate (not recommended)."),
    device: str = DeviceOpt,
    max_rel: Optional[float] = MaxRelOpt,
    min_cosine: Optional[float] = MinCosOpt,
    shape: Optional[list[str]] = ShapeOpt,
    precision: str = typer.Option("fp32", "--precision", help="fp32, or also make a variant: " + ", ".join(precisions.names()) + "."),
    calib: Optional[str] = CalibOpt,
    method: Optional[str] = MethodOpt,
    target: str = TargetOpt,
    layer: Optional[int] = typer.Option(
        None, "--layer", min=0, help="For per-layer connectors (gated-xattn): which layer of the checkpoint; default the first."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Export a connector, or a model folder's connector or whole vision side (--model DIR [--vision-tower]), to ONNX with dynamic axes, then gate it on parity with PyTorch (transformers' own code for a folder)."""
    opt.precision(precision)
    if precision != "fp32" and precisions.get(precision).needs_calibration and not calib:
        raise typer.BadParameter(f"{precision} needs --calib FEATURES (or --calib synthetic)", param_hint="--calib")
    with ui.status("starting") as status:
        made = api.make(
            connector,
            precision,
            opt.quantize_options(calib, method, target=target),
            step=status.update,
            model=model,
            vision_tower=vision_tower,
            video=video,
            preset=preset,
            weights=weights,
            output=output,
            opset=opset,
            check=not no_check,
            device=device,
            limits=Limits(max_rel, min_cosine),
            shapes=opt.shapes(shape),
            layer=layer,
        )
    ui.warn(made.exported.warnings)
    if as_json:
        print(json.dumps((made.variant or made.exported).record.to_json(), indent=2))
        return
    print_export(made.exported)
    if made.variant:
        print_variant(made.variant)


@app.command("quantize")
def quantize_command(
    artifact: Path = typer.Argument(..., help="An fp32 .onnx exported by mmexport."),
    precision: str = typer.Option(..., "--precision", help=", ".join(precisions.names()) + "."),
    calib: Optional[str] = CalibOpt,
    method: Optional[str] = MethodOpt,
    percentile: float = PercentileOpt,
    samples: int = SamplesOpt,
    smooth: Optional[float] = SmoothOpt,
    io: str = IoOpt,
    high_precision: Optional[str] = HighPrecisionOpt,
    target: str = TargetOpt,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .onnx; default NAME.PRECISION.onnx."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights for the fp32 reference; default: the manifest's."),
    min_cosine: Optional[float] = MinCosOpt,
    min_token_cosine: Optional[float] = MinTokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make a lower-precision variant (fp16, int8, fp8), gated on held-out samples."""
    options = opt.quantize_options(calib, method, percentile, samples, smooth, io, high_precision, target)
    with ui.status("starting") as status:
        result = api.quantize(artifact, precision, options, output, weights, Limits(None, min_cosine, min_token_cosine), step=status.update)
    if as_json:
        ui.warn(result.warnings)
        print(json.dumps(result.record.to_json(), indent=2))
        return
    print_variant(result)


@app.command("trt")
def trt_command(
    artifact: Optional[Path] = typer.Argument(None, help="An .onnx from mmexport (any precision); or use --connector."),
    connector: Optional[str] = typer.Option(None, "--connector", "-c", help="One shot: export (and quantize) this connector first."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="One shot from a Hugging Face model folder."),
    vision_tower: bool = VisionTowerOpt,
    video: bool = VideoOpt,
    preset: Optional[str] = PresetOpt,
    weights: Optional[Path] = WeightsOpt,
    precision: str = typer.Option("fp16", "--precision", help="With --connector: " + ", ".join(PRECISION_CHOICES) + "."),
    calib: Optional[str] = CalibOpt,
    method: Optional[str] = MethodOpt,
    flavor: str = typer.Option("auto", "--flavor", help="auto, tensorrt or tensorrt-rtx."),
    shapes: Optional[list[str]] = typer.Option(
        None, "--shapes", help="NAME:MIN:OPT:MAX, e.g. vision_features:1x1x1024:1x576x1024:8x1152x1024; repeat an input for more profiles."
    ),
    arch: Optional[str] = typer.Option(
        None, "--arch", help="TensorRT-RTX targets, e.g. sm86,sm89 (default: sm80,sm86,sm89,sm120 without a GPU; fp8: sm89,sm120)."
    ),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="Timing cache file to read and update."),
    workspace: Optional[int] = typer.Option(None, "--workspace", min=1, help="Builder workspace limit in MB."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Engine path; default NAME.engine beside the ONNX."),
    as_json: bool = JsonOpt,
) -> None:
    """Build a TensorRT (or TensorRT-RTX) engine with its record; precision comes from the ONNX."""
    from rich.progress import Progress

    if (artifact is None) == (connector is None and model is None):
        raise typer.BadParameter("give an ONNX artifact or --connector/--model, one of them", param_hint="ARTIFACT")
    with Progress(console=ui.err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, step: int, steps: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=steps or None)
            bar.update(tasks[phase], completed=step)

        build: dict[str, Any] = {
            "flavor": flavor,
            "shapes": shapes,
            "archs": arch.split(",") if arch else None,
            "timing_cache": timing_cache,
            "workspace_mb": workspace,
            "output": output,
            "progress": progress,
        }
        if artifact is not None:
            result: api.BuildResult | None = api.build_engine(artifact, **build)
        else:
            base = output.with_suffix(".onnx") if output else None
            options = opt.quantize_options(calib, method)
            result = api.make(
                connector,
                opt.precision(precision),
                options,
                engine=build,
                model=model,
                vision_tower=vision_tower,
                video=video,
                preset=preset,
                weights=weights,
                output=base,
            ).engine
    assert result is not None
    if as_json:
        print(json.dumps(result.record.to_json(), indent=2))
        return
    print_engine(result)


@app.command("check")
def check_command(
    artifact: Path = typer.Argument(..., help="An .onnx or .engine made by mmexport (its manifest beside it)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights to rebuild the reference from; default: the manifest's."),
    device: str = DeviceOpt,
    max_rel: Optional[float] = MaxRelOpt,
    min_cosine: Optional[float] = MinCosOpt,
    min_token_cosine: Optional[float] = MinTokenOpt,
    shape: Optional[list[str]] = ShapeOpt,
    inputs: Optional[Path] = typer.Option(None, "--inputs", help="Check on these samples (.npz/.npy/folder, as --calib) instead of the gate's own."),
    as_json: bool = JsonOpt,
) -> None:
    """Re-run an artifact's parity gate (ONNX in ONNX Runtime, engines on a GPU) on the inputs it was gated on; exit 1 on failure."""
    if shape and inputs:
        raise UsageError("give --shape or --inputs, not both")
    with ui.status("checking parity"):
        _, report = api.check(artifact, weights, device, Limits(max_rel, min_cosine, min_token_cosine), opt.shapes(shape), inputs)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        ui.show_table(parity_table(report))
    if not report.passed:
        raise MmexportError(report.failure())
