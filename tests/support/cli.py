"""Running the CLI as a user would (in this process, or the installed console script) and what a
refusal must look like."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mmexport.cli import main


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_in_process(capsys, *args: object) -> CliResult:
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def run_subprocess(*args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None) -> CliResult:
    """Run the installed console script as a user would."""
    environment = dict(os.environ, COLUMNS="120") | (env or {})
    proc = subprocess.run(["mmexport", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line(result: CliResult, code: int, *phrases: str) -> None:
    """Exit `code`, no traceback, exactly one 'error:' line on stderr that names `phrases`."""
    assert result.code == code, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), result
    for phrase in phrases:
        assert phrase in lines[0], result


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def export(cli, tmp_path: Path, connector: str, weights: Path, *extra: object) -> tuple[Path, dict]:
    """`mmexport onnx` with weights; returns the ONNX path and its manifest."""
    import json

    out = tmp_path / f"{connector}.onnx"
    result = cli("onnx", "--connector", connector, "--weights", weights, "-o", out, *extra)
    assert result.code == 0, result
    return out, json.loads((tmp_path / f"{connector}.onnx.json").read_text())
