"""The `mmexport` command: parses options, calls the API (api.py), prints. Errors become one line
and an exit code (2: usage, 1: failure); --debug shows the traceback."""

from __future__ import annotations

import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__, api, connectors, precisions
from .bench.backends import BACKENDS
from .errors import MmexportError, UsageError
from .precisions import QuantizeOptions
from .report import connectors_table, human_size, parity_table
from .specs import Limits

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export multimodal-LLM connectors to verified ONNX (and TensorRT) artifacts.",
)
out = Console()
err = Console(stderr=True)
STATE = {"debug": False}
PRECISION_CHOICES = ("fp32", *precisions.names())

ConnectorOpt = typer.Option(None, "--connector", "-c", help="Connector name (see `mmexport list`); or --model.")
ModelOpt = typer.Option(None, "--model", "-m", help="A Hugging Face model folder: the connector, dims and weights come from it.")
VisionTowerOpt = typer.Option(False, "--vision-tower", help="With --model: the whole vision side, from pixel_values to the LLM's embeddings.")
PresetOpt = typer.Option(None, "--preset", "-p", help="Released-model dims; default: the connector's first preset (dims then come from --weights).")
WeightsOpt = typer.Option(None, "--weights", "-w", help=".safetensors, .bin/.pt (weights only) or a Hugging Face folder.")
DeviceOpt = typer.Option("cpu", "--device", help="ONNX Runtime device for the parity gate: cpu or cuda.")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON on stdout (for CI).")
MaxRelOpt = typer.Option(None, "--max-rel", help="Parity limit on max abs error / max |reference|.")
MinCosOpt = typer.Option(None, "--min-cosine", help="Parity limit on cosine similarity.")
MinTokenOpt = typer.Option(None, "--min-token-cosine", help="Parity limit on the 1st percentile of the per-token cosine.")
ShapeOpt = typer.Option(None, "--shape", help="Parity shape as AXIS=SIZE,... (repeatable), e.g. batch=2,tokens=1001.")
CalibOpt = typer.Option(None, "--calib", help="Calibration features: .npz (keyed by input), .npy, a folder of them, or synthetic[:FAMILY].")
MethodOpt = typer.Option(None, "--method", help="Activation ranges: minmax, mse, percentile or entropy; default: searched.")
PercentileOpt = typer.Option(99.99, "--percentile", help="Percentile for --method percentile.")
SamplesOpt = typer.Option(64, "--samples", min=1, help="Calibration samples to read (some are held out for the gate).")
SmoothOpt = typer.Option(None, "--smooth", min=0.0, max=1.0, help="SmoothQuant alpha; 0 turns it off; default: searched.")
IoOpt = typer.Option("fp32", "--io", help="Input/output dtype of the variant: fp32 or fp16.")
HighPrecisionOpt = typer.Option(None, "--high-precision", help="Dtype of what is not int8/fp8: fp16 or fp32; default: what --target wants.")
TargetOpt = typer.Option("tensorrt", "--target", help="What the variant is for: tensorrt (fp16 around int8/fp8) or cpu (ONNX Runtime, fp32 around).")


def _shapes(values: list[str] | None) -> list[dict[str, int]] | None:
    if not values:
        return None
    shapes = []
    for value in values:
        try:
            shapes.append({k.strip(): int(v) for k, v in (item.split("=") for item in value.split(","))})
        except ValueError:
            raise typer.BadParameter(f"'{value}' is not AXIS=SIZE,...", param_hint="--shape") from None
    return shapes


def _precision(value: str) -> str:
    if value not in PRECISION_CHOICES:
        raise typer.BadParameter(f"'{value}' is not one of {', '.join(PRECISION_CHOICES)}", param_hint="--precision")
    return value


def _options(calib, method, percentile=99.99, samples=64, smooth=None, io="fp32", high_precision=None, target="tensorrt") -> QuantizeOptions:
    return QuantizeOptions(calib, method, percentile, samples, smooth, io, high_precision, target)


def _status(message: str):
    return err.status(message)


def _warn(lines: list[str]) -> None:
    for line in lines:
        err.print(f"[yellow]warning:[/] {escape(line)}")


def _version(value: bool) -> None:
    if value:
        out.print(f"mmexport {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_version),
) -> None:
    STATE["debug"] = debug


@app.command("list")
def list_connectors(as_json: bool = JsonOpt) -> None:
    """List connectors, the systems that use them, their presets and I/O shapes."""
    items = connectors.all_connectors()
    if not as_json:
        out.print(connectors_table(items))
        return
    rows = []
    for c in items:
        config = c.preset(None)
        rows.append(
            {
                "connector": c.name,
                "family": c.family,
                "systems": list(c.systems),
                "default_preset": c.default_preset,
                "presets": list(c.presets),
                "inputs": [s.to_json() for s in c.inputs(config)],
                "outputs": [s.to_json() for s in c.outputs(config)],
            }
        )
    print(json.dumps(rows, indent=2))


@app.command("onnx")
def onnx_command(
    connector: Optional[str] = ConnectorOpt,
    model: Optional[Path] = ModelOpt,
    vision_tower: bool = VisionTowerOpt,
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
    """Export a connector to ONNX with dynamic axes, then gate it on parity with PyTorch."""
    _precision(precision)
    if precision != "fp32" and precisions.get(precision).needs_calibration and not calib:
        raise typer.BadParameter(f"{precision} needs --calib FEATURES (or --calib synthetic)", param_hint="--calib")
    with _status("starting") as status:
        made = api.make(
            connector,
            precision,
            _options(calib, method, target=target),
            step=status.update,
            model=model,
            vision_tower=vision_tower,
            preset=preset,
            weights=weights,
            output=output,
            opset=opset,
            check=not no_check,
            device=device,
            limits=Limits(max_rel, min_cosine),
            shapes=_shapes(shape),
            layer=layer,
        )
    _warn(made.exported.warnings)
    if as_json:
        print(json.dumps((made.variant or made.exported).record.to_json(), indent=2))
        return
    _print_export(made.exported)
    if made.variant:
        _print_variant(made.variant)


def _print_export(result: api.ExportResult) -> None:
    w = result.reference.weights
    if w:
        out.print(f"weights: {escape(w.path)} ({w.layout} layout, {len(w.state_dict)} connector tensors, {w.ignored_keys} other keys ignored)")
    for kind, specs in (("input ", result.record.inputs), ("output", result.record.outputs)):
        for spec in specs:
            out.print(f"  {kind} {spec.name} {escape(spec.describe())} {spec.dtype}", highlight=False)
    if result.parity:
        out.print(parity_table(result.parity))
    size = human_size(result.path.stat().st_size)
    out.print(f"[green]wrote[/] {escape(str(result.path))} ({size}) and its manifest {escape(result.path.name)}.json in {result.seconds:.1f} s", soft_wrap=True)


def _print_variant(result: api.VariantResult) -> None:
    _warn(result.warnings)
    out.print(parity_table(result.parity))
    q = result.record.quantization or {}
    facts = [f"size {result.record.size_ratio_vs_fp32:.2f}x fp32"]
    if "quantized_mac_share" in q:
        facts.append(
            f"{q['quantized_mac_share']:.0%} of weight MACs in {result.record.precision} ({q['quantized_layers']} layers), "
            f"ranges {q['method']}, SmoothQuant alpha {q['smooth_alpha'] or 'off'}, the rest {q['high_precision']} (--target {result.record.target})"
        )
        facts += [f"{name}: {why}" for name, why in q["kept"].items()]
    if q.get("kept_fp32"):
        facts.append("kept in fp32: " + ", ".join(q["kept_fp32"]))
    for fact in facts:
        out.print(f"  {escape(fact)}", highlight=False)
    out.print(f"[green]wrote[/] {escape(str(result.path))} and its manifest in {result.seconds:.1f} s", soft_wrap=True)


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
    options = _options(calib, method, percentile, samples, smooth, io, high_precision, target)
    with _status("starting") as status:
        result = api.quantize(artifact, precision, options, output, weights, Limits(None, min_cosine, min_token_cosine), step=status.update)
    if as_json:
        _warn(result.warnings)
        print(json.dumps(result.record.to_json(), indent=2))
        return
    _print_variant(result)


@app.command("trt")
def trt_command(
    artifact: Optional[Path] = typer.Argument(None, help="An .onnx from mmexport (any precision); or use --connector."),
    connector: Optional[str] = typer.Option(None, "--connector", "-c", help="One shot: export (and quantize) this connector first."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="One shot from a Hugging Face model folder."),
    vision_tower: bool = VisionTowerOpt,
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
    with Progress(console=err, transient=True) as bar:
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
            options = _options(calib, method)
            result = api.make(
                connector, _precision(precision), options, engine=build, model=model, vision_tower=vision_tower, preset=preset, weights=weights, output=base
            ).engine
    assert result is not None
    if as_json:
        print(json.dumps(result.record.to_json(), indent=2))
        return
    e = result.record.engine
    assert e is not None
    out.print(f"{e.flavor} {e.tensorrt_version}, {result.record.precision}, targets {', '.join(e.targets)}", highlight=False)
    for profile in e.profiles:
        for name, bounds in profile.items():
            out.print(f"  {name}: min {bounds['min']} opt {bounds['opt']} max {bounds['max']}", highlight=False)
    out.print(f"[green]wrote[/] {escape(str(result.path))} ({human_size(e.engine_bytes)}) and its manifest in {result.seconds:.1f} s", soft_wrap=True)


@app.command("triton")
def triton_command(
    artifact: Path = typer.Argument(..., help="An .onnx or .engine made by mmexport."),
    repo: Path = typer.Option(..., "--repo", help="Triton model repository folder (created if missing)."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name; default: the artifact's base name."),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="max_batch_size; default: what the artifact takes."),
    instances: int = typer.Option(1, "--instances", help="Model instances."),
    kind: str = typer.Option("cpu", "--kind", help="cpu or gpu instances."),
) -> None:
    """Write a Triton model repository entry (config.pbtxt + model) for an artifact."""
    path = api.write_triton(artifact, repo, name, max_batch, instances, kind)
    out.print(f"[green]wrote[/] {escape(str(path))}/config.pbtxt and {escape(str(path))}/1/", soft_wrap=True)


@app.command("serve")
def serve_command(
    artifact: Path = typer.Argument(..., help="An .onnx or .engine made by mmexport."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name; default: the artifact's base name."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    http_port: int = typer.Option(8000, "--http-port", min=1, max=65535),
    grpc_port: int = typer.Option(8001, "--grpc-port", min=1, max=65535),
    metrics_port: int = typer.Option(8002, "--metrics-port"),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="Dynamic batching limit; default min(16, what the artifact takes)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (ONNX); engines run on the GPU."),
) -> None:
    """Serve an artifact with a real Triton server (PyTriton): dynamic batching, HTTP and gRPC."""
    try:
        api.serve(artifact, name, host, http_port, grpc_port, metrics_port, max_batch, device, on_ready=lambda m: err.print(m, highlight=False))
    except KeyboardInterrupt:
        pass
    err.print("server stopped")


@app.command("features")
def features_command(
    vision_tower: Path = typer.Option(..., "--vision-tower", help="Local Hugging Face vision tower folder (CLIP, SigLIP, ...)."),
    images: Path = typer.Option(..., "--images", help="Folder of images."),
    output: Path = typer.Option(..., "--output", "-o", help="Features file: .npz (keyed by --name) or .npy."),
    layer: int = typer.Option(-2, "--layer", help="Hidden state to take (-2: penultimate, as LLaVA)."),
    drop_cls: bool = typer.Option(False, "--drop-cls", help="Drop the CLS token (LLaVA, InternVL); BLIP-2 keeps it."),
    name: str = typer.Option("vision_features", "--name", help="Key in the .npz: the connector's input name."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
) -> None:
    """Run a vision tower over images and save the features a connector takes (for --calib)."""
    from rich.progress import Progress

    from .calibration import features

    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("extracting features", total=None)
        path, shape = features.extract(
            vision_tower,
            images,
            output,
            layer,
            drop_cls,
            name,
            batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    out.print(f"[green]wrote[/] {escape(str(path))}: {shape[0]} images, features {list(shape[1:])}", highlight=False)


@app.command("bench")
def bench_command(
    connector: Optional[str] = ConnectorOpt,
    model: Optional[Path] = ModelOpt,
    vision_tower: bool = VisionTowerOpt,
    preset: Optional[str] = PresetOpt,
    weights: Optional[Path] = WeightsOpt,
    backends: Optional[str] = typer.Option(None, "--backends", help="Comma-separated; default all: " + ",".join(BACKENDS) + "."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, comma-separated, e.g. 1,4,16."),
    tokens: Optional[int] = typer.Option(None, "--tokens", help="Vision tokens per image, for connectors whose token count is dynamic."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed runs per backend and batch size."),
    iters: int = typer.Option(20, "--iters", min=1, help="Timed runs per backend and batch size."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for every backend; default: PyTorch's default."),
    calib: str = typer.Option("synthetic", "--calib", help="Calibration features for the int8/fp8 variants (as in `quantize`)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results to this .json file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write latency against batch size to this .png file."),
) -> None:
    """Time PyTorch, torch.compile, ONNX Runtime (fp32/fp16/int8) and TensorRT side by side on one connector."""
    from .artifacts import check_writable, write_json
    from .bench.run import parse_backends
    from .report import bench_table, skipped_lines

    try:
        batches = [int(b) for b in batch.split(",") if b.strip()]
    except ValueError:
        raise typer.BadParameter(f"'{batch}' is not a comma-separated list of integers", param_hint="--batch") from None
    chosen = parse_backends(backends)
    for path, suffix, option in ((json_out, ".json", "--json"), (plot, ".png", "--plot")):
        if path is not None:
            if path.suffix.lower() != suffix:
                raise typer.BadParameter(f"'{path}' must end in {suffix}", param_hint=option)
            check_writable(path, option)
    if plot is not None:
        from .bench.plot import pyplot

        pyplot()
    with _status("starting") as status:
        reference = api.reference_for(connector, model, {"preset": preset, "weights": weights}, vision_tower)
        report = api.bench(connector, preset, weights, chosen, batches, tokens, warmup, iters, threads, calib, step=status.update, reference=reference)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    out.print(bench_table(report))
    for line in skipped_lines(report):
        out.print(f"[dim]{escape(line)}[/]", soft_wrap=True)
    if json_out is not None:
        write_json(json_out, report.to_json())
        out.print(f"[green]wrote[/] {escape(str(json_out))}")
    if plot is not None:
        from .bench.plot import write_plot

        write_plot(report, plot)
        out.print(f"[green]wrote[/] {escape(str(plot))}")


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
    with _status("checking parity"):
        _, report = api.check(artifact, weights, device, Limits(max_rel, min_cosine, min_token_cosine), _shapes(shape), inputs)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        out.print(parity_table(report))
    if not report.passed:
        raise MmexportError(report.failure())


def _is_usage_error(exc: BaseException) -> bool:
    # Typer vendors its own click; match its UsageError (and click's) by class name.
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__)


def _usage_line(exc: Any) -> str:
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return f"error: {exc.format_message()}{hint}"


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so staging folders are removed


def _one_line(exc: BaseException) -> tuple[str, int]:
    """The error line and exit code for anything that ends a command."""
    if isinstance(exc, MmexportError):
        return f"error: {exc}", exc.exit_code
    if _is_usage_error(exc):
        return _usage_line(exc), 2
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"error: unexpected {type(exc).__name__}: {detail} (run with --debug for the traceback)", 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    STATE["debug"] = False
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C works even when started as `mmexport ... &` from a script, which inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = app(args=argv, prog_name="mmexport", standalone_mode=False)
        if result == 130:  # Typer turns KeyboardInterrupt into exit code 130 without a word
            raise KeyboardInterrupt
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        # Plain write: an interrupt can land inside rich's live display and leave its buffer open.
        print("interrupted; nothing was written", file=sys.__stderr__)
        return 130
    except Exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 2  # the help is already printed
        if STATE["debug"]:
            traceback.print_exc()
        line, code = _one_line(exc)
        err.print(line, markup=False, highlight=False, soft_wrap=True)
        return code


def run() -> None:
    sys.exit(main())
