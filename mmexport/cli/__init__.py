"""The `mmexport` command: parses options, calls the API (api.py), prints. Errors become one line
and an exit code (2: usage, 1: failure); --debug shows the traceback."""

from __future__ import annotations

import signal
import sys
import traceback
from typing import Any

import typer

from ..errors import MmexportError
from . import deploy, make  # noqa: F401  (they register their commands on the app)
from .app import STATE, app, err


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


__all__ = ["app", "main", "run"]
