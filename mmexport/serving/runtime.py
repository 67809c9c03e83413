"""One call signature for every artifact: `load(path)` returns a thread-safe callable that checks
inputs against the manifest (names, dtypes, ranks, fixed sizes, dynamic ranges) before running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import manifest
from ..errors import UsageError

class InputError(UsageError):
    """A request that does not fit the artifact's inputs."""


def _validate(specs: list[dict[str, Any]], feeds: dict[str, Any]) -> dict[str, np.ndarray]:
    names = [s["name"] for s in specs]
    unknown = sorted(set(feeds) - set(names))
    missing = [n for n in names if n not in feeds]
    if unknown or missing:
        raise InputError(f"inputs must be {', '.join(names)}" + (f"; missing {', '.join(missing)}" if missing else "") + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    checked = {}
    seen: dict[str, tuple[str, int]] = {}  # axis name -> (input, size): shared axes must agree
    for spec in specs:
        value = feeds[spec["name"]]
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        if array.dtype != np.dtype(spec["dtype"]):
            raise InputError(f"'{spec['name']}' must be {spec['dtype']}, got {array.dtype}")
        shape = spec["shape"]
        if array.ndim != len(shape):
            raise InputError(f"'{spec['name']}' must have rank {len(shape)} {shape}, got shape {list(array.shape)}")
        axes = {int(i): a for i, a in spec["dynamic_axes"].items()}
        for i, size in enumerate(array.shape):
            if i in axes:
                a = axes[i]
                if not a["min"] <= size <= a["max"] or size % a.get("multiple_of", 1):
                    rule = f"in [{a['min']}, {a['max']}]" + (f", a multiple of {a['multiple_of']}" if a.get("multiple_of", 1) > 1 else "")
                    raise InputError(f"'{spec['name']}' axis '{a['name']}' = {size} must be {rule}")
                first = seen.setdefault(a["name"], (spec["name"], size))
                if first[1] != size:
                    raise InputError(f"'{spec['name']}' axis '{a['name']}' = {size} but '{first[0]}' has {first[1]}; they must match")
            elif size != shape[i]:
                raise InputError(f"'{spec['name']}' axis {i} must be {shape[i]} {shape}, got {size}")
        checked[spec["name"]] = array
    return checked


class Runtime:
    """`model(vision_features=x)` or `model(x)` -> {output name: numpy array}."""

    def __init__(self, path: Path, record: dict[str, Any], run):
        self.path = path
        self.manifest = record
        self.inputs = record["inputs"]
        self.outputs = record["outputs"]
        self._run = run

    def __call__(self, *args, **kwargs) -> dict[str, np.ndarray]:
        if len(args) > len(self.inputs):
            raise InputError(f"{len(args)} positional inputs given; the artifact takes {len(self.inputs)}")
        feeds = _validate(self.inputs, dict(zip((s["name"] for s in self.inputs), args)) | kwargs)
        return self._run(feeds)


def _onnx(path: Path, device: str) -> Runtime:
    from ..exporter.parity import session as ort_session

    record = manifest.read(path)
    session = ort_session(path, device)  # run() is thread-safe
    names = [o.name for o in session.get_outputs()]
    return Runtime(path, record, lambda feeds: dict(zip(names, session.run(names, feeds))))


def _engine(path: Path) -> Runtime:
    from ..engines.runner import EngineRunner, read_sidecar

    sidecar = read_sidecar(path)
    runner = EngineRunner(path)
    return Runtime(path, sidecar, lambda feeds: runner(**feeds))


def load(artifact: str | Path, device: str = "cpu") -> Runtime:
    """An .onnx (ONNX Runtime, CPU or CUDA) or an .engine/.plan (TensorRT, GPU) made by mmexport."""
    path = Path(artifact)
    if device not in ("cpu", "cuda"):
        raise UsageError(f"device must be cpu or cuda, not '{device}'")
    if path.suffix in (".engine", ".plan"):
        return _engine(path)
    if path.suffix == ".onnx":
        return _onnx(path, device)
    raise UsageError(f"{path} is neither an .onnx nor an .engine made by mmexport")
