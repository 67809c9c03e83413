"""The Typer app, its consoles and what every command shares (status line, warnings)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from .. import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Export multimodal-LLM connectors to verified ONNX (and TensorRT) artifacts.",
)

out = Console()

err = Console(stderr=True)

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
