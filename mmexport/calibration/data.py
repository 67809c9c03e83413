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
from ..specs import axes_of
from .synthetic import DEFAULT_FAMILY, FAMILIES, features, generated_pixels

MIN_SAMPLES = 8  # fewer cannot calibrate and hold out a check set
FILE_TYPES = (".npy", ".npz", ".safetensors")


@dataclass
class CalibrationSet:
    samples: list[dict[str, np.ndarray]]  # one request each (batch 1 where there is a batch axis)
    source: str
    digest: str
    synthetic: bool = False
    family: str | None = None  # the synthetic family, if synthetic
    notes: list[str] = field(default_factory=list)


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
    if spec.dtype.startswith("float"):
        if not np.issubdtype(array.dtype, np.floating):
            raise UsageError(f"{where}: '{spec.name}' is {array.dtype}, expected floating point features")
    elif not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
        raise UsageError(f"{where}: '{spec.name}' is {array.dtype}, expected {spec.dtype} (ids or a mask)")
    # a file holds many requests along the batch axis: only its other axes are ranged
    spec.check_shape(array.shape, where, skip=(0,) if spec.batch_axis else (), hint="; wrong vision tower or layer?")


def _requests(path: Path, specs: list[TensorSpec]) -> Iterator[dict[str, np.ndarray]]:
    """One request (batch 1 where there is a batch axis) at a time, checked, from one file."""
    names = [s.name for s in specs]
    for arrays in _arrays_in(path, names):
        for spec in specs:
            _check(spec, arrays[spec.name], path.name)
        count = arrays[names[0]].shape[0] if specs[0].batch_axis else 1
        for i in range(count):
            yield {s.name: np.ascontiguousarray(arrays[s.name][i : i + 1] if s.batch_axis else arrays[s.name], dtype=s.dtype) for s in specs}


def load(connector: Connector, config: Any, source: str | Path, max_samples: int, min_samples: int = MIN_SAMPLES) -> CalibrationSet:
    """Up to `max_samples` requests; files past those are not opened (arrays stay memory-mapped)."""
    specs = connector.inputs(config)
    source = Path(source)
    if not source.exists():
        raise UsageError(f"calibration data not found: {source}")
    sha = hashlib.sha256()
    samples: list[dict[str, np.ndarray]] = []
    for path in _files(source):
        for sample in _requests(path, specs):
            for name, array in sample.items():
                if array.dtype.kind == "f" and not np.isfinite(array).all():
                    raise UsageError(f"{path.name}: '{name}' has NaN or Inf values (sample {len(samples)}); clean the features first")
                sha.update(array.tobytes())
            samples.append(sample)
            if len(samples) == max_samples:
                break
        if len(samples) == max_samples:
            break
    if len(samples) < min_samples:
        raise UsageError(f"{source} holds {len(samples)} samples; at least {min_samples} are needed (some are held out to check the result)")
    return CalibrationSet(samples, str(source.resolve()), "sha256:" + sha.hexdigest())


def synthetic_family(calib: str) -> str | None:
    """'synthetic' or 'synthetic:FAMILY' -> the family; anything else -> None (a path)."""
    if calib != "synthetic" and not calib.startswith("synthetic:"):
        return None
    family = calib.partition(":")[2] or DEFAULT_FAMILY
    if family not in FAMILIES:
        raise UsageError(f"unknown synthetic family '{family}'; choose one of: {', '.join(FAMILIES)}")
    return family


def _synthetic_input(spec: TensorSpec, family: str, sizes: dict[str, int], seed: int) -> np.ndarray:
    """Features of the family; for pixel_values, generated images (the family is about features)."""
    shape = spec.shape(sizes)
    return generated_pixels(shape, seed) if spec.name == "pixel_values" else features(family, shape, seed=seed)


def synthetic(connector: Connector, config: Any, count: int, family: str = DEFAULT_FAMILY, first_seed: int = 0) -> CalibrationSet:
    """Synthetic features of one family at each input's release size, deterministic; a model
    folder's vision side gets generated images in its processor's layout instead."""
    if connector.request is not None:
        samples = [{k: v.numpy() for k, v in connector.request(config, 1, first_seed + i).items()} for i in range(count)]
        sha = hashlib.sha256(f"synthetic/{connector.name}/{first_seed}/{count}".encode())
        return CalibrationSet(samples, f"synthetic:{family}", "sha256:" + sha.hexdigest(), synthetic=True, family=family)
    sizes = {name: (1 if name in BATCH_AXES else axis.opt) for name, axis in axes_of(connector.inputs(config)).items()}
    others = {k: v.numpy() for k, v in connector.dummy_inputs(config, sizes).items()}  # ids, masks
    samples = [
        {
            s.name: _synthetic_input(s, family, sizes, (first_seed + i) * 7919 + j) if s.dtype.startswith("float") else others[s.name]
            for j, s in enumerate(connector.inputs(config))
        }
        for i in range(count)
    ]
    sha = hashlib.sha256(f"synthetic/{family}/{first_seed}/{count}/{sorted(sizes.items())}".encode())
    return CalibrationSet(samples, f"synthetic:{family}", "sha256:" + sha.hexdigest(), synthetic=True, family=family)
