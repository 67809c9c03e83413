"""Rich tables for the CLI (the API returns data; this only shows it)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .connectors import Connector, TensorSpec
from .parity import ParityReport, ParityRow


def connectors_table(connectors: list[Connector]) -> Table:
    table = Table(title="Connectors (default preset first)", title_justify="left", show_lines=True)
    for column in ("connector", "systems", "presets", "input -> output"):
        if column == "connector":  # names fit whole; long family names fold under them
            table.add_column(column, overflow="fold", min_width=17, max_width=19)
        else:
            table.add_column(column, overflow="fold", ratio=1)
    for c in connectors:
        config = c.preset(None)
        presets = [c.default_preset] + [p for p in c.presets if p != c.default_preset]
        table.add_row(
            f"{c.name}\n[dim]{c.family}[/]",
            escape("\n".join(c.systems)),
            "\n".join(presets),
            escape(_io_text(c.inputs(config), c.outputs(config))),
        )
    return table


def models_table(rows: list[dict]) -> Table:
    """`mmexport list --models`: every model type --model reads, and what works for it."""
    table = Table(title=f"Model types read from Hugging Face folders ({len(rows)})", title_justify="left")
    for column in ("model_type", "connector graph", "vision side takes", "derived beside the graph", "attach"):
        table.add_column(column, overflow="fold", ratio=1)
    for row in rows:
        attach = [part for part, ok in (("connector", row["attach"]["connector"]), ("vision side", row["attach"]["vision_side"])) if ok]
        table.add_row(
            row["model_type"], row["connector"] or "-", ", ".join(row["inputs"]), row["derived_beside_graph"] or "-", ", ".join(attach) or "- (see notes)"
        )
    table.caption = "every graph: fp16/int8/fp8 variants (" + ", ".join(rows[0]["precisions"][1:]) + "), TensorRT and TensorRT-RTX engines"
    return table


def coverage_table(rows: list[dict]) -> Table:
    """`mmexport list --models --all`: every image-text-to-text type and whether its vision side exports."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("declared", "automatic", "refused", "untried")}
    title = f"Image-text-to-text model types ({len(rows)}): " + ", ".join(f"{n} {s}" for s, n in counts.items())
    table = Table(title=title, title_justify="left")
    for column, ratio in (("model_type", 1), ("status", 1), ("cause", 4)):
        table.add_column(column, overflow="fold", ratio=ratio)
    for row in rows:
        table.add_row(row["model_type"], row["status"], row["cause"] or "")
    table.caption = "declared: a family in mmexport; automatic: transformers' own get_image_features, exported and gated on a tiny folder"
    return table


def shape_text(shape: list) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _io_text(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> str:
    def side(specs: list[TensorSpec]) -> str:
        if len(specs) == 1:
            return specs[0].describe()
        return "\n".join(f"{s.name} {s.describe()}" for s in specs)

    return f"{side(inputs)}\n-> {side(outputs)}"


def parity_table(report: ParityReport) -> Table:
    table = Table(
        title=f"Parity vs {report.reference} ({report.provider}) on {report.inputs}",
        title_justify="left",
        caption=f"pass: {report.tolerance.describe()}; max rel = max abs error / max |reference|; token p1 = 1st percentile of the per-token cosine",
        caption_justify="left",
    )
    for column in ("shape", "output", "max abs", "max rel", "cosine", "token p1", ""):
        table.add_column(column, justify="right" if column.startswith(("max", "cos", "tok")) else "left", overflow="fold")
    for row in report.rows:
        table.add_row(
            ", ".join(f"{k}={v}" for k, v in row.shape.items()),
            row.output,
            f"{row.max_abs:.3g}",
            f"{row.max_rel:.3g}" + _float64_text(row),
            f"{row.cosine:.8f}",
            f"{row.token_cosine_p1:.6f}",
            "[green]ok[/]" if row.passed else "[red]FAIL[/]",
        )
    return table


def _float64_text(row: ParityRow) -> str:
    if row.float64_max_rel is None:
        return ""
    return f" (vs float64 {row.float64_max_rel:.3g}; the original's fp32 {row.reference_float64_max_rel:.3g})"


def human_size(size: float) -> str:
    """Decimal units, as disk and download sizes are shown (1 MB = 10^6 bytes)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def bench_table(report) -> Table:
    """One row per backend and batch size, with its ratio to PyTorch eager on the same inputs."""
    m = report.machine
    s = report.settings
    int8 = f" (int8: {m['int8_instructions']})" if m.get("int8_instructions") else ""
    where = f"{m['cpu']}{int8}, {s['threads']} threads" + (f", {m['gpu']}" if m.get("gpu") else "")
    connector = report.results[0].connector + " " + report.results[0].preset if report.results else ""
    table = Table(
        title=f"{connector} on {where}: median of {s['iters']} interleaved runs after {s['warmup']} warm-up",
        title_justify="left",
        caption="x torch: median latency / PyTorch eager fp32 at the same batch; cosine: output vs PyTorch eager fp32; "
        "memory: what the backend added (RSS on CPU, device memory on CUDA)",
        caption_justify="left",
    )
    for column in ("backend", "dtype", "batch", "timed", "median ms", "p90 ms", "items/s", "x torch", "mem MiB", "cosine", "token p1", ""):
        # fold, never cut: a narrow terminal wraps a cell instead of hiding it
        table.add_column(column, justify="left" if column in ("backend", "dtype", "timed", "") else "right", no_wrap=column == "backend", overflow="fold")
    for r in sorted(report.results, key=lambda r: r.batch):
        ratio = report.ratio(r)
        table.add_row(
            r.backend,
            r.precision,
            str(r.batch),
            r.sizes,
            _figure(r.median_ms, ".2f"),
            _figure(r.p90_ms, ".2f"),
            _figure(r.throughput_per_s, ".1f"),
            "-" if ratio is None else f"{ratio:.2f}x",
            f"{r.peak_mem_mb:.0f}",
            f"{r.cosine:.5f}",
            f"{r.token_cosine_p1:.4f}",
            _against_source(report, r),
        )
    return table


def _against_source(report, result) -> str:
    """A variant's time against the fp32 graph it was made from: what it is for; slower is flagged."""
    if result.precision == "fp32" or not result.backend.startswith("ort-"):
        return ""
    ratio = report.ratio(result, baseline="ort")
    if ratio is None:
        return ""
    return f"[red]SLOWER than ort fp32 ({ratio:.2f}x)[/]" if ratio > 1.0 else f"{ratio:.2f}x ort fp32"


def _figure(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def skipped_lines(report) -> list[str]:
    return [f"skipped {s.backend}: {s.reason}" for s in report.skipped]
