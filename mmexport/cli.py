"""The `mmexport` command: a thin Typer layer over the API; errors become one line and an exit code."""

from __future__ import annotations

import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__, connectors
from .connectors import Tolerance
from .errors import MmexportError
from .calibration import variants
from .exporter import pipeline
from .bench.backends import BACKENDS as _BACKENDS
from .report import connectors_table, human_size, parity_table, shape_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export multimodal-LLM connectors to verified ONNX (and TensorRT) artifacts.",
)
out = Console()
err = Console(stderr=True)

ConnectorOpt = typer.Option(..., "--connector", "-c", help="Connector name (see `mmexport list`).")
PresetOpt = typer.Option(None, "--preset", "-p", help="Released-model dims; default: the connector's first preset.")
WeightsOpt = typer.Option(None, "--weights", "-w", help=".safetensors, .bin/.pt (weights only) or a Hugging Face folder.")
DeviceOpt = typer.Option("cpu", "--device", help="ONNX Runtime device for the parity gate: cpu or cuda.")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON on stdout (for CI).")
MaxRelOpt = typer.Option(None, "--max-rel", help="Parity limit on max abs error / max |reference|.")
MinCosOpt = typer.Option(None, "--min-cosine", help="Parity limit on cosine similarity.")
ShapeOpt = typer.Option(None, "--shape", help="Parity shape as AXIS=SIZE,... (repeatable), e.g. batch=2,tokens=1001.")
CalibOpt = typer.Option(None, "--calib", help="Calibration features: .npz (keyed by input), .npy, a folder of them, or 'synthetic'.")
MethodOpt = typer.Option(variants.DEFAULT_METHOD, "--method", help="int8 range calibration: entropy, percentile or minmax.")
PercentileOpt = typer.Option(99.99, "--percentile", help="Percentile for --method percentile.")
SamplesOpt = typer.Option(variants.DEFAULT_SAMPLES, "--samples", min=1, help="Calibration samples to read (some are held out).")
SmoothOpt = typer.Option(None, "--smooth", min=0.0, max=1.0, help="SmoothQuant alpha; 0 turns it off; default: 0.5, then 0.65 and 0.8 if the gate misses.")
IoOpt = typer.Option("fp32", "--io", help="Input/output dtype of the variant: fp32 or fp16.")
BACKEND_NAMES = list(_BACKENDS)
HighPrecisionOpt = typer.Option("fp16", "--high-precision", help="Dtype of what is not int8: fp16 or fp32.")



def _parse_shapes(values: list[str] | None) -> list[dict[str, int]] | None:
    if not values:
        return None
    shapes = []
    for value in values:
        try:
            shapes.append({k.strip(): int(v) for k, v in (item.split("=") for item in value.split(","))})
        except ValueError:
            raise typer.BadParameter(f"'{value}' is not AXIS=SIZE,...", param_hint="--shape") from None
    return shapes


def _tolerance(connector_name: str, max_rel: float | None, min_cosine: float | None) -> Tolerance | None:
    if max_rel is None and min_cosine is None:
        return None
    base = connectors.get(connector_name).tolerance
    return Tolerance(max_rel if max_rel is not None else base.max_rel, min_cosine if min_cosine is not None else base.min_cosine)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"mmexport {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
) -> None:
    pass


@app.command("list")
def list_connectors(as_json: bool = JsonOpt) -> None:
    """List connectors, the systems that use them, their presets and I/O shapes."""
    items = connectors.all_connectors()
    if as_json:
        rows = []
        for c in items:
            config = c.preset(None)
            rows.append({
                "connector": c.name, "family": c.family, "systems": list(c.systems),
                "default_preset": c.default_preset, "presets": list(c.presets),
                "inputs": [s.to_json() for s in c.inputs(config)], "outputs": [s.to_json() for s in c.outputs(config)],
            })
        print(json.dumps(rows, indent=2))
        return
    out.print(connectors_table(items))


@app.command("onnx")
def onnx_command(
    connector: str = ConnectorOpt,
    preset: Optional[str] = PresetOpt,
    weights: Optional[Path] = WeightsOpt,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .onnx path; default CONNECTOR-PRESET.onnx."),
    opset: int = typer.Option(pipeline.DEFAULT_OPSET, "--opset", min=17, max=23, help="ONNX opset."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the parity gate (not recommended)."),
    device: str = DeviceOpt,
    max_rel: Optional[float] = MaxRelOpt,
    min_cosine: Optional[float] = MinCosOpt,
    shape: Optional[list[str]] = ShapeOpt,
    precision: str = typer.Option("fp32", "--precision", help="fp32, or also make an fp16/int8 variant (see `quantize`)."),
    calib: Optional[str] = CalibOpt,
    method: str = MethodOpt,
    layer: Optional[int] = typer.Option(None, "--layer", min=0, help="For per-layer connectors (gated-xattn): which layer of the checkpoint; default the first."),
    as_json: bool = JsonOpt,
) -> None:
    """Export a connector to ONNX with dynamic axes, then gate it on parity with PyTorch."""
    if precision not in ("fp32", *variants.PRECISIONS):
        raise typer.BadParameter(f"'{precision}' is not fp32, fp16 or int8", param_hint="--precision")
    if precision == "int8" and not calib:
        raise typer.BadParameter("int8 needs --calib FEATURES (or --calib synthetic)", param_hint="--calib")
    tolerance = _tolerance(connector, max_rel, min_cosine)
    with err.status("starting") as status:
        result = pipeline.export(
            connector, preset, weights, output, opset, check=not no_check, device=device,
            tolerance=tolerance, shapes=_parse_shapes(shape), step=lambda message: status.update(message), layer=layer,
        )
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    if as_json:
        variant = variants.quantize(result.path, precision, calib, method, weights=weights) if precision != "fp32" else None
        print(json.dumps(variant.manifest if variant else result.manifest, indent=2))
        return
    record = result.manifest
    if result.weights:
        w = result.weights
        out.print(f"weights: {escape(w.path)} ({w.layout} layout, {len(w.state_dict)} connector tensors, {w.ignored_keys} other keys ignored)")
    for spec in record["inputs"] + record["outputs"]:
        kind = "input " if spec in record["inputs"] else "output"
        out.print(f"  {kind} {spec['name']} {escape(shape_text(spec['shape']))} {spec['dtype']}", highlight=False)
    if result.parity:
        out.print(parity_table(result.parity))
    size = result.path.stat().st_size
    out.print(
        f"[green]wrote[/] {escape(str(result.path))} ({human_size(size)}) and its manifest {escape(result.path.name)}.json "
        f"in {result.seconds:.1f} s",
        soft_wrap=True,
    )
    if precision != "fp32":
        with err.status("starting") as status:
            variant = variants.quantize(result.path, precision, calib, method, weights=weights, step=lambda message: status.update(message))
        _print_variant(variant, as_json=False)


def _print_variant(result: variants.VariantResult, as_json: bool) -> None:
    for warning in result.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if as_json:
        print(json.dumps(result.manifest, indent=2))
        return
    out.print(parity_table(result.parity))
    q = result.manifest["quantization"]
    facts = [f"size {result.manifest['size_ratio_vs_fp32']:.2f}x fp32"]
    if "int8_mac_share" in q:
        facts.append(f"{q['int8_mac_share']:.0%} of weight MACs in int8 ({q['int8_layers']} layers)")
        facts += [f"{name}: {why}" for name, why in q["kept"].items()]
    if q.get("kept_fp32"):
        facts.append("kept in fp32: " + ", ".join(q["kept_fp32"]))
    for fact in facts:
        out.print(f"  {escape(fact)}", highlight=False)
    out.print(f"[green]wrote[/] {escape(str(result.path))} and its manifest in {result.seconds:.1f} s", soft_wrap=True)


@app.command("quantize")
def quantize_command(
    artifact: Path = typer.Argument(..., help="An fp32 .onnx exported by mmexport."),
    precision: str = typer.Option(..., "--precision", help="fp16 or int8."),
    calib: Optional[str] = CalibOpt,
    method: str = MethodOpt,
    percentile: float = PercentileOpt,
    samples: int = SamplesOpt,
    smooth: Optional[float] = SmoothOpt,
    io: str = IoOpt,
    high_precision: str = HighPrecisionOpt,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output .onnx; default NAME.PRECISION.onnx."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights for the fp32 reference; default: the manifest's."),
    min_cosine: Optional[float] = MinCosOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make the fp16 or calibrated int8 (TensorRT-ready QDQ) variant, gated on held-out samples."""
    record = pipeline.manifest.read(artifact)
    tolerance = None
    if min_cosine is not None:
        base = connectors.get(record["connector"]).tolerance_for(precision if precision in variants.PRECISIONS else "fp32")
        tolerance = Tolerance(base.max_rel, min_cosine)
    with err.status("starting") as status:
        result = variants.quantize(
            artifact, precision, calib, method, percentile, samples, smooth, io, high_precision,
            output, weights, tolerance, step=lambda message: status.update(message),
        )
    _print_variant(result, as_json)


@app.command("trt")
def trt_command(
    artifact: Optional[Path] = typer.Argument(None, help="An .onnx from mmexport (fp32, fp16 or int8); or use --connector."),
    connector: Optional[str] = typer.Option(None, "--connector", "-c", help="One shot: export (and quantize) this connector first."),
    preset: Optional[str] = PresetOpt,
    weights: Optional[Path] = WeightsOpt,
    precision: str = typer.Option("fp16", "--precision", help="With --connector: fp32, fp16 or int8."),
    calib: Optional[str] = CalibOpt,
    method: str = MethodOpt,
    flavor: str = typer.Option("auto", "--flavor", help="auto, tensorrt or tensorrt-rtx."),
    shapes: Optional[list[str]] = typer.Option(None, "--shapes", help="NAME:MIN:OPT:MAX, e.g. vision_features:1x1x1024:1x576x1024:8x1152x1024; repeat an input for more profiles."),
    arch: Optional[str] = typer.Option(None, "--arch", help="TensorRT-RTX targets, e.g. sm86,sm89 (default: sm80,sm86,sm89,sm120 without a GPU)."),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="Timing cache file to read and update."),
    workspace: Optional[int] = typer.Option(None, "--workspace", min=1, help="Builder workspace limit in MB."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Engine path; default NAME.engine beside the ONNX."),
    as_json: bool = JsonOpt,
) -> None:
    """Build a TensorRT (or TensorRT-RTX) engine with a sidecar; precision comes from the ONNX."""
    from rich.progress import Progress

    from . import engines

    if (artifact is None) == (connector is None):
        raise typer.BadParameter("give an ONNX artifact or --connector, not both", param_hint="ARTIFACT")
    if artifact is None:
        if precision not in ("fp32", *variants.PRECISIONS):
            raise typer.BadParameter(f"'{precision}' is not fp32, fp16 or int8", param_hint="--precision")
        with err.status("exporting") as status:
            base = output.with_suffix(".onnx") if output else None
            exported = pipeline.export(connector, preset, weights, base, step=lambda m: status.update(m))
            artifact = exported.path
            if precision != "fp32":
                artifact = variants.quantize(artifact, precision, calib, method, weights=weights, step=lambda m: status.update(m)).path
    with Progress(console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, step: int, steps: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=steps or None)
            bar.update(tasks[phase], completed=step)

        result = engines.build(artifact, flavor, shapes, arch.split(",") if arch else None, timing_cache, workspace, output, progress)
    if as_json:
        print(json.dumps(result.sidecar, indent=2))
        return
    s = result.sidecar
    out.print(f"{s['flavor']} {s['tensorrt_version']}, {s['precision']}, targets {', '.join(s['targets'])}", highlight=False)
    for spec in s["inputs"]:
        for p in spec["profiles"]:
            out.print(f"  {spec['name']}: min {p['min']} opt {p['opt']} max {p['max']}", highlight=False)
    out.print(f"[green]wrote[/] {escape(str(result.path))} ({human_size(s['engine_bytes'])}) and its sidecar in {result.seconds:.1f} s", soft_wrap=True)


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
    from .serving.triton import write_repository

    path = write_repository(artifact, repo, name, max_batch, instances, kind)
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
    from .serving.server import serve

    try:
        serve(artifact, name, host, http_port, grpc_port, metrics_port, max_batch, device, on_ready=lambda m: err.print(m, highlight=False))
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
            vision_tower, images, output, layer, drop_cls, name, batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    out.print(f"[green]wrote[/] {escape(str(path))}: {shape[0]} images, features {list(shape[1:])}", highlight=False)


@app.command("bench")
def bench_command(
    connector: str = ConnectorOpt,
    preset: Optional[str] = PresetOpt,
    weights: Optional[Path] = WeightsOpt,
    backends: Optional[str] = typer.Option(None, "--backends", help="Comma-separated; default all: " + ",".join(BACKEND_NAMES) + "."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes, comma-separated, e.g. 1,4,16."),
    tokens: Optional[int] = typer.Option(None, "--tokens", help="Vision tokens per image, for connectors whose token count is dynamic."),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed runs per backend and batch size."),
    iters: int = typer.Option(20, "--iters", min=1, help="Timed runs per backend and batch size."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for every backend; default: PyTorch's default."),
    calib: str = typer.Option("synthetic", "--calib", help="Calibration features for ort-int8 (as in `quantize`)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results to this .json file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write latency against batch size to this .png file."),
) -> None:
    """Time PyTorch, torch.compile, ONNX Runtime (fp32/fp16/int8) and TensorRT side by side on one connector."""
    from .artifacts import check_writable, write_json
    from .bench import bench
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
    with err.status("starting") as status:
        report = bench(connector, preset, weights, chosen, batches, tokens, warmup, iters, threads, calib, step=lambda m: status.update(m))
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
    artifact: Path = typer.Argument(..., help="An .onnx file exported by mmexport (its manifest must sit beside it)."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights to rebuild the reference from; default: the manifest's."),
    device: str = DeviceOpt,
    max_rel: Optional[float] = MaxRelOpt,
    min_cosine: Optional[float] = MinCosOpt,
    shape: Optional[list[str]] = ShapeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Re-run the parity gate on an artifact (.onnx in ONNX Runtime; .engine on a GPU); exit 1 on failure."""
    if artifact.suffix in (".engine", ".plan"):
        from .engines.check import check_engine

        with err.status("checking the engine on the GPU"):
            report = check_engine(artifact, weights)
        out.print(parity_table(report)) if not as_json else print(json.dumps(report.to_json(), indent=2))
        if not report.passed:
            raise MmexportError(report.failure())
        return
    record = pipeline.manifest.read(artifact)
    tolerance = _tolerance(record["connector"], max_rel, min_cosine)
    with err.status("checking parity"):
        _, report = pipeline.check(artifact, weights, device, tolerance, _parse_shapes(shape))
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        out.print(parity_table(report))
    if not report.passed:
        raise MmexportError(report.failure())


def _is_usage_error(exc: BaseException) -> bool:
    # Typer vendors its own click; match its UsageError (and click's) by class name.
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__)


def _usage_line(exc) -> str:
    hint = ""
    if exc.ctx is not None:
        hint = f" (see '{exc.ctx.command_path} --help')"
    return f"error: {exc.format_message()}{hint}"


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so staging folders are removed


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    signal.signal(signal.SIGTERM, _terminate)
    try:
        result = app(args=argv, prog_name="mmexport", standalone_mode=False)
        if result == 130:  # Typer turns KeyboardInterrupt into exit code 130 without a word
            raise KeyboardInterrupt
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        # Plain write: an interrupt can land inside rich's live display and leave its buffer open.
        sys.__stderr__.write("interrupted; nothing was written\n")
        return 130
    except MmexportError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except Exception as exc:  # a bug or an unforeseen environment problem: still one line
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 2  # the help is already printed
        if _is_usage_error(exc):
            if debug:
                traceback.print_exc()
            err.print(_usage_line(exc), markup=False, highlight=False, soft_wrap=True)
            return 2
        if debug:
            traceback.print_exc()
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err.print(f"error: unexpected {type(exc).__name__}: {detail} (run with --debug for the traceback)", markup=False, highlight=False, soft_wrap=True)
        return 1


def run() -> None:
    sys.exit(main())
