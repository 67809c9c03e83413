"""Calibration from a folder of images, run through the model's own image processor (the one
saved in the model folder), for graphs that start from pixel_values (the whole image side)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..specs import TensorSpec

IMAGE_TYPES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def image_files(source: Path) -> list[Path]:
    return sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_TYPES) if source.is_dir() else []


def image_processor(model_folder: str | Path) -> Any:
    try:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(str(model_folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        if not (Path(model_folder) / "preprocessor_config.json").is_file():
            raise UsageError(f"needs an image processor: {model_folder} has no preprocessor_config.json") from exc
        first = str(exc).splitlines()[0].split(". ")[0]  # transformers' first sentence; the rest is about the hub
        raise UsageError(f"needs an image processor: {model_folder}/preprocessor_config.json does not load ({first})") from exc


def processed(model_folder: str | Path, specs: list[TensorSpec], source: Path, count: int) -> list[dict[str, np.ndarray]]:
    """One request per image: what the processor returns for it (pixel_values, and the grid,
    sizes or masks that go with them), checked against the inputs the graph takes; inputs that
    are not the processor's (an instruction) are left to the caller."""
    from PIL import Image, UnidentifiedImageError

    processor = image_processor(model_folder)
    samples = []
    for path in image_files(source)[:count]:
        try:
            with Image.open(path) as image:
                made = processor(images=image.convert("RGB"), return_tensors="np")
        except (UnidentifiedImageError, OSError) as exc:
            raise UsageError(f"cannot read image {path.name}: {exc}") from exc
        sample = {s.name: np.ascontiguousarray(made[s.name], dtype=s.dtype) for s in specs if s.name in made}
        for spec in specs:
            if spec.name in sample:
                spec.check_shape(sample[spec.name].shape, path.name, hint="; does the processor match the model?")
        samples.append(sample)
    return samples
