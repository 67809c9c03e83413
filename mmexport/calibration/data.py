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

from ..errors import UsageError
from ..specs import TensorSpec
from .synthetic import DEFAULT_FAMILY, FAMILIES

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


def _arrays_in(path: Path, names: list[str], optional: tuple[str, ...] = ()) -> Iterator[dict[str, np.ndarray]]:
    """Name -> array for each file; a single-input connector takes a bare .npy or a sole array.
    `optional` inputs may be absent (their default is derived beside the graph)."""
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
                    missing = [n for n in names if n not in keys and n not in optional]
                    if missing:
                        raise UsageError(f"{path.name} lacks input(s) {', '.join(missing)} (it has {', '.join(keys) or 'nothing'})")
                    yield {n: archive[n] for n in names if n in keys}
        else:
            with safe_open(str(path), framework="numpy") as handle:
                keys = list(handle.keys())
                if len(names) == 1 and len(keys) == 1:
                    yield {names[0]: handle.get_tensor(keys[0])}
                else:
                    missing = [n for n in names if n not in keys and n not in optional]
                    if missing:
                        raise UsageError(f"{path.name} lacks input(s) {', '.join(missing)}")
                    yield {n: handle.get_tensor(n) for n in names if n in keys}
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
    # a file holds many requests along the batch axis: only its other axes are ranged
    spec.check_shape(array.shape, where, skip=(0,) if spec.batch_axis else (), hint="; wrong vision tower or layer?")


def _requests(path: Path, specs: list[TensorSpec]) -> Iterator[dict[str, np.ndarray]]:
    """One request (batch 1 where there is a batch axis) at a time, checked, from one file."""
    names = [s.name for s in specs]
    for arrays in _arrays_in(path, names, tuple(s.name for s in specs if s.optional)):
        given = [s for s in specs if s.name in arrays]
        for spec in given:
            _check(spec, arrays[spec.name], path.name)
        count = arrays[names[0]].shape[0] if specs[0].batch_axis else 1
        for i in range(count):
            sample = {s.name: arrays[s.name][i : i + 1] if s.batch_axis else arrays[s.name] for s in given}
            for spec in given:  # the same rule as a request's: the record's dtype, finite values
                spec.check_values(sample[spec.name], f"{path.name} (sample {i})")
            yield {name: np.ascontiguousarray(value) for name, value in sample.items()}


def load(specs: list[TensorSpec], source: str | Path, max_samples: int, min_samples: int = MIN_SAMPLES) -> CalibrationSet:
    """Up to `max_samples` requests for inputs `specs`; files past those are not opened (arrays stay memory-mapped)."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"calibration data not found: {source}")
    sha = hashlib.sha256()
    samples: list[dict[str, np.ndarray]] = []
    for path in _files(source):
        for sample in _requests(path, specs):
            for array in sample.values():
                sha.update(array.tobytes())
            samples.append(sample)
            if len(samples) == max_samples:
                break
        if len(samples) == max_samples:
            break
    if len(samples) < min_samples:
        raise UsageError(f"{source} holds {len(samples)} samples; at least {min_samples} are needed (some are held out to check the result)")
    return CalibrationSet(samples, str(source.resolve()), "sha256:" + sha.hexdigest())


def digest_of(samples: list[dict[str, np.ndarray]]) -> str:
    sha = hashlib.sha256()
    for sample in samples:
        for name in sorted(sample):
            sha.update(name.encode() + np.ascontiguousarray(sample[name]).tobytes())
    return "sha256:" + sha.hexdigest()


def synthetic_family(calib: str) -> str | None:
    """'synthetic' or 'synthetic:FAMILY' -> the family; anything else -> None (a path)."""
    if calib != "synthetic" and not calib.startswith("synthetic:"):
        return None
    family = calib.partition(":")[2] or DEFAULT_FAMILY
    if family not in FAMILIES:
        raise UsageError(f"unknown synthetic family '{family}'; choose one of: {', '.join(FAMILIES)}")
    return family
