"""The held-out samples a variant's gate ran on, saved beside it (`NAME.heldout.npz`, its
sha256 in the record) so that `mmexport check` reruns the very same gate, in any folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..record import HeldOut, file_sha256

_KEY = re.compile(r"s(\d+)\.(.+)")


def write(path: Path, samples: list[dict[str, np.ndarray]]) -> HeldOut:
    arrays: dict[str, Any] = {f"s{i}.{name}": array for i, sample in enumerate(samples) for name, array in sample.items()}
    np.savez(path, **arrays)
    return HeldOut(path.name, file_sha256(path), len(samples))


def read(folder: Path, heldout: HeldOut) -> list[dict[str, np.ndarray]]:
    path = folder / heldout.file
    if not path.is_file():
        raise UsageError(f"the gate's held-out samples {heldout.file} are not beside the artifact; copy them along (or check at --shape sizes)")
    if file_sha256(path) != heldout.sha256:
        raise UsageError(f"{path} is not the file the gate ran on (sha256 differs); copy the original along")
    samples: dict[int, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            match = _KEY.fullmatch(key)
            if match is None:
                raise UsageError(f"{path} holds an unexpected array '{key}'")
            samples.setdefault(int(match.group(1)), {})[match.group(2)] = archive[key]
    return [samples[i] for i in sorted(samples)]
