"""`mmexport list`, `triton`, `serve`, `features` and `bench`: parse, call the API, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from .. import api, connectors
from ..bench.backends import BACKENDS
from ..report import connectors_table, coverage_table, models_table
from . import app as ui
from .app import app, out
from .options import ConnectorOpt, JsonOpt, ModelOpt, PresetOpt, VisionTowerOpt, WeightsOpt


@app.command("list")
def list_connectors(
    as_json: bool = JsonOpt,
    models: bool = typer.Option(False, "--models", help="Hugging Face model types and what works for each (--model DIR)."),
    every: bool = typer.Option(False, "--all", help="With --models: every image-text-to-text type of the installed transformers, with its status."),
) -> None:
    """List connectors, the systems that use them, their presets and I/O shapes (or, with --models, the model types read from folders)."""
    if every:
        from ..hf.catalog import coverage

        rows = coverage()
        print(json.dumps(rows, indent=2)) if as_json else ui.show_table(coverage_table(rows))
        return
    if models:
        from ..hf.catalog import catalog

        rows = catalog()
        print(json.dumps(rows, indent=2)) if as_json else ui.show_table(models_table(rows))
        return
    items = connectors.all_connectors()
    if not as_json:
        ui.show_table(connectors_table(items))
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
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="The model folder of a vision-side artifact: also serve encoded images (NAME_images)."),
) -> None:
    """Serve an artifact with a real Triton server (PyTriton): dynamic batching, HTTP and gRPC; with --model, images in (an encoder service)."""
    try:
        api.serve(
            artifact, name, host, http_port, grpc_port, metrics_port, max_batch, device, on_ready=lambda m: ui.err.print(m, highlight=False), model_folder=model
        )
    except KeyboardInterrupt:
        pass
    ui.err.print("server stopped")


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

    from ..calibration import features

    with Progress(console=ui.err, transient=True) as bar:
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


def _sizes(text: str, option: str, form: str, example: str) -> tuple[int, ...]:
    """`16x448x448` -> (16, 448, 448): as many positive integers as `form` names."""
    try:
        sizes = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        sizes = ()
    if len(sizes) != form.count("x") + 1:
        raise typer.BadParameter(f"'{text}' is not {form} (e.g. {example})", param_hint=option)
    if min(sizes) < 1:
        raise typer.BadParameter(f"'{text}': every size must be positive", param_hint=option)
    return sizes


@app.command("bench")
def bench_command(
    artifact: Optional[Path] = typer.Argument(None, help="An .onnx made by mmexport (fp32, or a variant): timed as it is; or use --connector / --model."),
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
    video: Optional[str] = typer.Option(
        None, "--video", help="With --model --vision-tower: time the video side on clips of FRAMESxHxW (e.g. 16x448x448), --batch clips per call."
    ),
    image: str = typer.Option(
        "448x448", "--image", help="With --model --vision-tower: the HxW photos are resized to before the folder's processor (896x896: 4096 patches of 14)."
    ),
) -> None:
    """Time PyTorch, torch.compile, ONNX Runtime (fp32 and each precision) and TensorRT side by side on a connector, a vision side or an artifact."""
    from ..artifacts import check_writable, write_json
    from ..bench.run import parse_backends
    from ..report import bench_table, skipped_lines

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
        from ..bench.plot import pyplot

        pyplot()
    if artifact is not None and (connector or model):
        raise typer.BadParameter("give an artifact or --connector/--model, one of them", param_hint="ARTIFACT")
    with ui.status("starting") as status:
        subject = None if artifact else api.subject_for(connector, model, {"preset": preset, "weights": weights}, vision_tower, video is not None)
        sizes = {"--video": _sizes(video, "--video", "FRAMESxHxW", "16x448x448")} if video is not None else {}
        if (vision_tower or artifact) and video is None:
            sizes["--image"] = _sizes(image, "--image", "HxW", "896x896")
        report = api.bench(
            connector,
            preset,
            weights,
            chosen,
            batches,
            tokens,
            warmup,
            iters,
            threads,
            calib,
            step=status.update,
            subject=subject,
            artifact=artifact,
            sizes=sizes,
        )
    for note in report.notes:
        ui.err.print(f"[yellow]note:[/] {escape(note)}")
    ui.show_table(bench_table(report))
    for line in skipped_lines(report):
        out.print(f"[dim]{escape(line)}[/]", soft_wrap=True)
    if json_out is not None:
        write_json(json_out, report.to_json())
        out.print(f"[green]wrote[/] {escape(str(json_out))}")
    if plot is not None:
        from ..bench.plot import write_plot

        write_plot(report, plot)
        out.print(f"[green]wrote[/] {escape(str(plot))}")
