"""Calibration features from images: a local Hugging Face vision tower (CLIP, SigLIP,
EVA-style; loaded offline from a folder) over a folder of images, written as the connector
expects them (hidden layer, CLS kept or dropped)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..artifacts import Staging
from ..errors import MmexportError, UsageError

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _tower(folder: Path):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
    try:
        from transformers import AutoImageProcessor, AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise UsageError("`mmexport features` needs transformers and pillow: pip install 'mmexport[features]'") from exc
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # the CLI shows its own
    if not (folder / "config.json").is_file():
        raise UsageError(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=None)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot load the vision tower in {folder}: {str(exc).splitlines()[0]}") from exc
    model = getattr(model, "vision_model", model)  # full CLIP/SigLIP models: take the tower
    return processor, model.eval()


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_TYPES)
    if not files:
        raise UsageError(f"no images ({', '.join(IMAGE_TYPES)}) in {folder}")
    return files


def extract(
    vision_tower: str | Path,
    images: str | Path,
    output: str | Path,
    layer: int = -2,
    drop_cls: bool = False,
    name: str = "vision_features",
    batch_size: int = 8,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[Path, tuple[int, ...]]:
    import torch
    from PIL import Image, UnidentifiedImageError

    output = Path(output)
    if output.suffix not in (".npz", ".npy"):
        raise UsageError(f"output must be .npz or .npy: {output}")
    files = _images(Path(images))
    processor, model = _tower(Path(vision_tower))
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(files), batch_size):
            batch = []
            for path in files[start : start + batch_size]:
                try:
                    with Image.open(path) as image:
                        batch.append(image.convert("RGB"))
                except (UnidentifiedImageError, OSError) as exc:
                    raise UsageError(f"cannot read image {path.name}: {exc}") from exc
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
            hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states
            if not -len(hidden) <= layer < len(hidden):
                raise UsageError(f"--layer {layer} is out of range; the tower has {len(hidden)} hidden states")
            features = hidden[layer]
            chunks.append((features[:, 1:] if drop_cls else features).float().numpy())
            progress(min(start + batch_size, len(files)), len(files))
    array = np.concatenate(chunks)
    if not np.isfinite(array).all():
        raise MmexportError("the vision tower produced NaN or Inf features; check the weights")
    with Staging(output) as staging:
        if output.suffix == ".npz":
            arrays: dict[str, Any] = {name: array}
            np.savez(staging.path(), **arrays)
        else:
            np.save(staging.path(), array)
        staging.commit([output.name])
    return output, array.shape
