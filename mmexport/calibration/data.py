"""Calibration samples: from .npz/.npy files or a folder of them (or .safetensors), read
without pickle and memory-mapped where the format allows, checked against the connector's inputs."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import safe_open

from ..connectors import BATCH_AXES, Connector, TensorSpec
from ..errors import UsageError
from .synthetic import outlier_features

MIN_SAMPLES = 8  # fewer cannot calibrate and hold out a check set
FILE_TYPES = (".npy", ".npz", ".safetensors")


@dataclass
class CalibrationSet:
    samples: list[dict[str, np.ndarray]]  # one request each (batch 1 where there is a batch axis)
    source: str
    digest: str
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    def split(self, held_out: int) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
        """(calibration, held-out): the held-out samples are never used to calibrate."""
        return self.samples[:-held_out], self.samples[-held_out:]


def _batch_axis(spec: TensorSpec) -> bool:
    first = spec.dims[0]
    return not isinstance(first, (int, str)) and first.name in BATCH_AXES


def _arrays_in(path: Path, names: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Name -> array for each file; a single-input connector takes a bare .npy or a sole array."""
    try:
        if path.suffix == ".npy":
            if len(names) != 1:
                raise UsageError(f"{path.name}: a .npy holds one array but the connector has inputs {', '.join(names)}; use .npz keyed by input name")
            yield {names[0]: np.load(path, mmap_mode="r", allow_pickle=False)}
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if len(names) == 1 and len(keys) == 1:
                    yield {names[0]: archive[keys[0]]}
                else:
                    missing = [n for n in names if n not in keys]
                    if missing:
                        raise UsageError(f"{path.name} lacks input(s) {', '.join(missing)} (it has {', '.join(keys) or 'nothing'})")
                    yield {n: archive[n] for n in names}
        else:
            with safe_open(str(path), framework="numpy") as handle:
                keys = list(handle.keys())
                if len(names) == 1 and len(keys) == 1:
                    yield {names[0]: handle.get_tensor(keys[0])}
                else:
                    missing = [n for n in names if n not in keys]
                    if missing:
                        raise UsageError(f"{path.name} lacks input(s) {', '.join(missing)}")
                    yield {n: handle.get_tensor(n) for n in names}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UsageError(f"{path.name} holds Python objects (a pickled array); refusing to load it, save plain numeric arrays") from exc
        raise UsageError(f"cannot read calibration file {path.name}: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile, SafetensorError) as exc:
        raise UsageError(f"cannot read calibration file {path.name}: {exc}; it may be truncated") from exc


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix in FILE_TYPES)
        if not files:
            raise UsageError(f"no {'/'.join(FILE_TYPES)} files in {source}")
        return files
    if source.suffix not in FILE_TYPES:
        raise UsageError(f"calibration data must be .npz, .npy, .safetensors or a folder of them: {source}")
    return [source]


def _check(spec: TensorSpec, array: Any, where: str) -> None:
    rank = len(spec.dims)
    if array.ndim != rank:
        raise UsageError(f"{where}: '{spec.name}' has rank {array.ndim}, expected {rank} {spec.describe()}")
    if spec.dtype.startswith("float"):
        if not np.issubdtype(array.dtype, np.floating):
            raise UsageError(f"{where}: '{spec.name}' is {array.dtype}, expected floating point features")
    elif not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise UsageError(f"{where}: '{spec.name}' is {array.dtype}, expected {spec.dtype} (ids or a mask)")
    for i, dim in enumerate(spec.dims):
        if isinstance(dim, int) and array.shape[i] != dim:
            raise UsageError(f"{where}: '{spec.name}' has size {array.shape[i]} on axis {i}, expected {dim} {spec.describe()}; wrong vision tower or layer?")
        if not isinstance(dim, (int, str)) and not (i == 0 and _batch_axis(spec)):
            dim.check(array.shape[i], f"{where}: '{spec.name}'")


def load(connector: Connector, config: Any, source: str | Path, max_samples: int) -> CalibrationSet:
    """Up to `max_samples` requests. Only those are read into memory (arrays stay memory-mapped)."""
    specs = connector.inputs(config)
    names = [s.name for s in specs]
    source = Path(source)
    if not source.exists():
        raise UsageError(f"calibration data not found: {source}")
    sha = hashlib.sha256()
    samples: list[dict[str, np.ndarray]] = []
    for path in _files(source):
        for arrays in _arrays_in(path, names):
            for spec in specs:
                _check(spec, arrays[spec.name], path.name)
            per_file = arrays[names[0]].shape[0] if _batch_axis(specs[0]) else 1
            for i in range(per_file):
                if len(samples) == max_samples:
                    break
                sample = {
                    s.name: np.ascontiguousarray(arrays[s.name][i : i + 1] if _batch_axis(s) else arrays[s.name], dtype=s.dtype)
                    for s in specs
                }
                for name, array in sample.items():
                    if array.dtype.kind == "f" and not np.isfinite(array).all():
                        raise UsageError(f"{path.name}: '{name}' has NaN or Inf values (sample {len(samples)}); clean the features first")
                    sha.update(array.tobytes())
                samples.append(sample)
    if len(samples) < MIN_SAMPLES:
        raise UsageError(f"{source} holds {len(samples)} samples; at least {MIN_SAMPLES} are needed (some are held out to check the result)")
    return CalibrationSet(samples, str(source.resolve()), "sha256:" + sha.hexdigest())


def synthetic(connector: Connector, config: Any, count: int) -> CalibrationSet:
    """Outlier-heavy synthetic features at each input's release size, deterministic."""
    sizes = {name: (1 if name in BATCH_AXES else size) for name, size in connector.example_sizes(config).items()}
    for spec in connector.inputs(config):
        for axis in spec.axes.values():
            if axis.name not in BATCH_AXES:
                sizes[axis.name] = axis.opt
    others = {k: v.numpy() for k, v in connector.dummy_inputs(config, sizes).items()}  # ids, masks
    samples = [
        {
            s.name: outlier_features(s.shape(sizes), seed=i * 7919 + j) if s.dtype.startswith("float") else others[s.name]
            for j, s in enumerate(connector.inputs(config))
        }
        for i in range(count)
    ]
    sha = hashlib.sha256(f"synthetic/{count}/{sorted(sizes.items())}".encode())
    return CalibrationSet(samples, "synthetic", "sha256:" + sha.hexdigest(), synthetic=True)
