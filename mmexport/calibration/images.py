"""Calibration from a folder of images, run through the model's own image processor (the one
saved in the model folder), for graphs that start from pixel_values (the whole vision side)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .data import MIN_SAMPLES, CalibrationSet

IMAGE_TYPES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def image_files(source: Path) -> list[Path]:
    return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_TYPES) if source.is_dir() else []


def _processor(model_folder: str) -> Any:
    try:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(model_folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UsageError(f"no image processor in {model_folder} (preprocessor_config.json): {str(exc).splitlines()[0]}") from exc


def load(connector: Any, config: Any, model: dict[str, Any], source: Path, max_samples: int) -> CalibrationSet:
    """One request per image: what the processor returns for it (pixel_values, and the grid,
    sizes or masks that go with them), other inputs (an instruction's ids and mask) as the
    connector's test values."""
    from PIL import Image, UnidentifiedImageError

    files = image_files(source)[:max_samples]
    specs = connector.inputs(config)
    processor = _processor(model["folder"])
    sha = hashlib.sha256()
    samples = []
    for path in files:
        try:
            with Image.open(path) as image:
                made = processor(images=image.convert("RGB"), return_tensors="np")
        except (UnidentifiedImageError, OSError) as exc:
            raise UsageError(f"cannot read image {path.name}: {exc}") from exc
        given = {s.name: np.ascontiguousarray(made[s.name], dtype=s.dtype) for s in specs if s.name in made}
        sizes: dict[str, int] = {}
        for spec in specs:
            if spec.name in given:
                sizes |= spec.check_shape(given[spec.name].shape, path.name, hint="; does the processor match the model?")
        missing = [s for s in specs if s.name not in given]
        others = {k: v.numpy() for k, v in connector.dummy_inputs(config, sizes | _other_sizes(missing)).items() if k in {s.name for s in missing}}
        sha.update(given["pixel_values"].tobytes())
        samples.append(given | others)
    if len(samples) < MIN_SAMPLES:
        raise UsageError(f"{source} holds {len(samples)} images; at least {MIN_SAMPLES} are needed (some are held out to check the result)")
    return CalibrationSet(samples, str(source.resolve()), "sha256:" + sha.hexdigest())


def _other_sizes(specs: list) -> dict[str, int]:
    return {a.name: a.opt for s in specs for a in s.axes.values() if a.name not in ("batch", "tiles")}
