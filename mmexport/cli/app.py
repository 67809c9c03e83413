"""The Typer app, its consoles and what every command shares (status line, warnings)."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export the image side of multimodal LLMs (connectors, or a model folder's whole vision side) to verified ONNX and TensorRT artifacts.",
)


def _console(stderr: bool = False) -> Console:
    """Piped (CI logs, `| tee`), rich would cut tables to 80 columns: keep every column instead."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console


PIPED_WIDTH = 200
out = _console()

err = _console(stderr=True)

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
