"""`mmexport.runtime.load(artifact, device)`: the one call a serving process needs, the same for every
artifact: a thread-safe callable that checks inputs against the record (names, dtypes, ranks,
fixed sizes, dynamic ranges) before running."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import InputError, UsageError
from .record import ArtifactRecord, kind_of, read, reading
from .specs import TensorSpec, check_shared_axes


class TargetWarning(UserWarning):
    """An artifact runs somewhere it was not made for (it works, but slower than it could)."""


def validate(specs: list[TensorSpec], feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    """Names, dtypes, finite values, ranks and ranges, one clear InputError for the first wrong one
    (an optional input may be left out: its default is derived beside the graph)."""
    names = [s.name for s in specs]
    unknown = sorted(set(feeds) - set(names))
    missing = [s.name for s in specs if s.name not in feeds and not s.optional]
    if unknown or missing:
        raise InputError(
            f"inputs must be {', '.join(s.name + (' (optional)' if s.optional else '') for s in specs)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )
    arrays = {name: value if isinstance(value, np.ndarray) else np.asarray(value) for name, value in feeds.items()}
    try:
        for spec in (s for s in specs if s.name in arrays):
            spec.check_values(arrays[spec.name], "request")
        check_shared_axes(specs, {name: a.shape for name, a in arrays.items()}, "request")
    except UsageError as exc:
        raise InputError(str(exc)) from None
    return arrays


class Runtime:
    """`model(vision_features=x)` or `model(x)` -> {output name: numpy array}."""

    def __init__(self, path: Path, record: ArtifactRecord, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], notes: list[str]):
        self.path = path
        self.record = record
        self.inputs = record.inputs
        self.outputs = record.outputs
        self.dtypes = {s.name: s.dtype for s in record.inputs}
        self.notes = notes  # e.g. an artifact made for another target
        self._run = run

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        if len(args) > len(self.inputs):
            raise InputError(f"{len(args)} positional inputs given; the artifact takes {len(self.inputs)}")
        feeds = validate(self.inputs, dict(zip((s.name for s in self.inputs), args)) | kwargs)
        return self._run(self.record.derivation(feeds))  # what the graph takes: derived beside it, or the inputs as they are


def target_notes(record: ArtifactRecord, runs_on: str) -> list[str]:
    """Say when a variant made for one target runs on another (it works, but slower)."""
    if record.target is None or record.target == runs_on:
        return []
    return [
        f"{record.artifact} is a {record.precision} variant made for {record.target} (layers around the "
        f"{record.precision} ones in {'fp16' if record.target == 'tensorrt' else 'fp32'}); on {runs_on} "
        f"it runs slower than it could: make one with `mmexport quantize ... --target {runs_on}`"
    ]


def load(artifact: str | Path, device: str = "cpu") -> Runtime:
    """An .onnx (ONNX Runtime, CPU or CUDA) or an .engine/.plan (TensorRT, GPU) made by mmexport."""
    path = Path(artifact)
    if device not in ("cpu", "cuda"):
        raise UsageError(f"device must be cpu or cuda, not '{device}'")
    kind_of(path)
    record = read(path)
    if record.kind == "engine":
        from .engines.runner import EngineRunner

        runner = EngineRunner(path, record)
        return Runtime(path, record, runner.run, [])
    from .parity import OrtRunner

    with reading(path, record):
        ort_runner = OrtRunner(path, device)  # run() is thread-safe
    notes = target_notes(record, "cpu" if device == "cpu" else "tensorrt")  # on a GPU, fp16 surroundings are right
    for note in notes:
        warnings.warn(note, TargetWarning, stacklevel=2)
    return Runtime(path, record, ort_runner.run, notes)


__all__ = ["InputError", "Runtime", "TargetWarning", "load"]
