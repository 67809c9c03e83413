"""The Typer app, its consoles and what every command shares (status line, warnings)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export the image side of multimodal LLMs (connectors, or a model folder's whole vision side) to verified ONNX and TensorRT artifacts.",
)


out = Console()

err = Console(stderr=True)


def show_table(table: Table, console: Console = out) -> None:
    """A table at the width it needs when the output is not a terminal (CI logs, `| tee`): rich
    would otherwise fit it to COLUMNS (80 when unset) and cut it to an ellipsis."""
    if console.is_terminal:
        console.print(table)
        return
    width = console.width
    console.width = max(width, console.measure(table, options=console.options.update(max_width=10_000)).maximum)
    try:
        console.print(table)
    finally:
        console.width = width


STATE = {"debug": False}


def status(message: str):
    return err.status(message)


def warn(lines: list[str]) -> None:
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
