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
    """One request per image: pixel_values from the processor, other inputs (an instruction's
    ids and mask) as the connector's test values."""
    from PIL import Image, UnidentifiedImageError

    files = image_files(source)[:max_samples]
    specs = connector.inputs(config)
    processor = _processor(model["folder"])
    sha = hashlib.sha256()
    samples = []
    for path in files:
        try:
            with Image.open(path) as image:
                pixels = processor(images=image.convert("RGB"), return_tensors="np")["pixel_values"]
        except (UnidentifiedImageError, OSError) as exc:
            raise UsageError(f"cannot read image {path.name}: {exc}") from exc
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        sizes = specs[0].check_shape(pixels.shape, path.name, hint="; does the processor match the model?")
        others = {k: v.numpy() for k, v in connector.dummy_inputs(config, sizes | _other_sizes(specs)).items() if k != specs[0].name}
        sha.update(pixels.tobytes())
        samples.append({specs[0].name: pixels} | others)
    if len(samples) < MIN_SAMPLES:
        raise UsageError(f"{source} holds {len(samples)} images; at least {MIN_SAMPLES} are needed (some are held out to check the result)")
    return CalibrationSet(samples, str(source.resolve()), "sha256:" + sha.hexdigest())


def _other_sizes(specs: list) -> dict[str, int]:
    return {a.name: a.opt for s in specs[1:] for a in s.axes.values() if a.name not in ("batch", "tiles")}
