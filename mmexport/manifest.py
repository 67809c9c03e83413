"""The JSON manifest beside every artifact: everything the next stage needs, so no stage guesses."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .artifacts import manifest_path
from .errors import UsageError

FORMAT = "mmexport.manifest/1"
TOOLS = ("mmexport", "torch", "onnx", "onnxscript", "onnxruntime", "tensorrt", "tensorrt_rtx")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def read(artifact: Path) -> dict[str, Any]:
    artifact = Path(artifact)
    if not artifact.is_file():
        raise UsageError(f"artifact not found: {artifact}")
    path = manifest_path(artifact)
    if not path.is_file():
        raise UsageError(f"no manifest beside {artifact} (expected {path.name}); was it made by mmexport?")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"manifest {path} is not valid JSON ({exc}); re-export the artifact") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UsageError(f"{path} is not an mmexport manifest (format {FORMAT} expected); re-export the artifact")
    for key in ("connector", "config", "weights", "inputs", "outputs"):
        if key not in manifest:
            raise UsageError(f"manifest {path} lacks '{key}'; re-export the artifact")
    return manifest
