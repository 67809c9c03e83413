"""Latency against batch size, one line per backend, as a PNG (matplotlib, the `bench` extra)."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import Staging
from ..errors import UsageError
from .run import BenchReport


def pyplot():
    """matplotlib's pyplot without a display, or a clear error saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on build machines
        from matplotlib import pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'mmexport[bench]'") from None
    return plt


def write_plot(report: BenchReport, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for backend in dict.fromkeys(r.backend for r in report.results):
        rows = sorted((r for r in report.results if r.backend == backend and r.median_ms is not None), key=lambda r: r.batch)
        if not rows:
            continue  # not timed here
        axes.plot([r.batch for r in rows], [r.median_ms for r in rows], marker="o", label=f"{backend} ({rows[0].precision})")
    first = report.results[0] if report.results else None
    title = f"{first.connector} {first.preset}" if first else "no results"
    axes.set(xlabel="batch size", ylabel="median latency (ms)", title=f"{title} - {report.machine['cpu']}, {report.settings['threads']} threads")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    batches = sorted({r.batch for r in report.results})
    axes.set_xticks(batches, [str(b) for b in batches])
    axes.yaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(plt.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with Staging(path) as staging:
        figure.savefig(staging.path(), format="png")
        staging.commit([path.name])
    plt.close(figure)
