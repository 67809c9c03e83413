"""Gemma 4: flat patches of each image padded to the batch's patch count, with image_position_ids
[images, patches, 2] holding each patch's (column, row), -1 for padding. The tower reads them as
they are; derived here: the soft token each patch averages into (its k x k block, numbered
row-major over the image's blocks, as transformers numbers them) and which soft tokens of the
padded batch are an image's, so the graph pools with a matmul and gathers instead of
transformers' data-dependent selection."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec

MAX_IMAGES = 64


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    unit, top = params["kernel"] ** 2, params["max_patches"]
    images = params.get("max_images", MAX_IMAGES)
    return {
        "images": Axis("images", 1, 1, images),
        "patches": Axis("patches", unit, min(top, params.get("opt_patches", top)), top, multiple_of=unit),
        "tokens": Axis("tokens", 1, max(1, min(top, 2520) // unit), images * top // unit),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [
        TensorSpec("pixel_values", (named["images"], named["patches"], params["patch_dim"])),
        TensorSpec("image_position_ids", (named["images"], named["patches"], 2), "int64"),
    ]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [*inputs(params), TensorSpec("pool_index", (named["images"], named["patches"]), "int64"), TensorSpec("keep_index", (named["tokens"],), "int64")]


def _positions(feeds: dict[str, np.ndarray], unit: int) -> np.ndarray:
    positions = np.asarray(feeds["image_position_ids"]).astype(np.int64)
    pixels = feeds["pixel_values"]
    if positions.ndim != 3 or positions.shape != (*pixels.shape[:2], 2):
        raise InputError(f"image_position_ids must be [images, patches, 2] beside pixel_values {list(pixels.shape)}, got {list(positions.shape)}")
    if pixels.shape[1] % unit:
        raise InputError(f"{pixels.shape[1]} patches per image: the processor pads to a multiple of {unit} (pooling kernel squared)")
    if ((positions < 0) & (positions != -1)).any():
        raise InputError("image_position_ids: positions are (column, row) >= 0, and -1 for padding; pass the processor's tensors")
    return positions


def _slots(positions: np.ndarray, kernel: int) -> np.ndarray:
    """[images, patches]: the soft token of each patch (padding, clamped to (0, 0), lands in slot 0
    with zero states, as in transformers)."""
    clamped = np.maximum(positions, 0)
    width = clamped[..., 0].max(axis=1, keepdims=True) + 1
    return clamped[..., 0] // kernel + (width // kernel) * (clamped[..., 1] // kernel)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    kernel = params["kernel"]
    positions = _positions(feeds, kernel**2)
    slots = _slots(positions, kernel)
    length = positions.shape[1] // kernel**2
    if (slots >= length).any():
        raise InputError(f"image_position_ids place patches past the {length} soft tokens their padding allows; pass the processor's tensors")
    keep = [image * length + np.unique(row) for image, row in enumerate(slots)]
    return {"pixel_values": feeds["pixel_values"], "image_position_ids": positions, "pool_index": slots, "keep_index": np.concatenate(keep)}


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Soft tokens of each image."""
    slots = _slots(_positions(feeds, params["kernel"] ** 2), params["kernel"])
    return [len(np.unique(row)) for row in slots]
