"""Mistral 3 (Pixtral tower): from the processor's padded `pixel_values` [images, 3, H, W] and
`image_sizes` [images, 2] (height, width in pixels) to the patches each image keeps, their
(row, column) for the 2D rotary, one attention group per image, and the 2x2 neighbourhoods the
patch merger unfolds (the trailing odd row or column dropped, as unfold drops it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from .base import groups

MAX_PATCHES = 16384
MAX_IMAGES = 16


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    unit = params["patch"] * params["merge"]
    side = params.get("max_side", 1540) // unit * unit
    top = params.get("max_patches", MAX_PATCHES)
    return {
        "images": Axis("images", 1, 1, params.get("max_images", MAX_IMAGES)),
        "height": Axis("height", unit, min(side, 16 * unit), side, multiple_of=params["patch"]),
        "width": Axis("width", unit, min(side, 16 * unit), side, multiple_of=params["patch"]),
        "patches": Axis("patches", params["merge"] ** 2, min(top, 1024), top),
        "image_patches": Axis("image_patches", params["merge"] ** 2, min(top, 1024), top),
        "tokens": Axis("tokens", 1, min(top, 1024) // params["merge"] ** 2, top // params["merge"] ** 2),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [
        TensorSpec("pixel_values", (named["images"], 3, named["height"], named["width"])),
        TensorSpec("image_sizes", (named["images"], 2), "int64"),
    ]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    merge_unit = params["merge"] ** 2
    return [
        TensorSpec("pixel_values", (named["images"], 3, named["height"], named["width"])),
        TensorSpec("patch_index", (named["patches"],), "int64"),
        TensorSpec("position_ids", (named["patches"], 2), "int64"),
        TensorSpec("image_index", (named["images"], named["image_patches"]), "int64"),
        TensorSpec("image_valid", (named["images"], named["image_patches"]), "bool"),
        TensorSpec("image_inverse", (named["patches"],), "int64"),
        TensorSpec("merge_index", (named["tokens"], merge_unit), "int64"),
    ]


def patch_grids(sizes: np.ndarray, pixels_shape: tuple[int, ...], params: dict[str, Any]) -> np.ndarray:
    """[images, 2] rows and columns of patches each image keeps, checked against the padded batch."""
    patch, merge = params["patch"], params["merge"]
    if sizes.ndim != 2 or sizes.shape[1] != 2 or sizes.shape[0] != pixels_shape[0]:
        raise InputError(f"image_sizes must be [images, 2] with one row per image of pixel_values ({pixels_shape[0]}), got {list(sizes.shape)}")
    if (sizes <= 0).any():
        raise InputError(f"image_sizes has a size that is not positive: {sizes[(sizes <= 0).any(1)][0].tolist()}")
    if (sizes[:, 0] > pixels_shape[2]).any() or (sizes[:, 1] > pixels_shape[3]).any():
        raise InputError(f"image_sizes {sizes.tolist()} exceed the padded pixel_values ({pixels_shape[2]}x{pixels_shape[3]})")
    grid = sizes // patch
    if (grid < merge).any():
        raise InputError(f"an image of {sizes[(grid < merge).any(1)][0].tolist()} pixels is smaller than one merged token ({patch * merge} px)")
    return grid


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    pixels = feeds["pixel_values"]
    grid = patch_grids(np.asarray(feeds["image_sizes"]).astype(np.int64), tuple(pixels.shape), params)
    rows, cols = pixels.shape[2] // params["patch"], pixels.shape[3] // params["patch"]
    counts = grid.prod(1)
    image = np.repeat(np.arange(len(grid)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    row, col = local // grid[image, 1], local % grid[image, 1]
    out = {
        "pixel_values": pixels,
        "patch_index": (image * rows * cols + row * cols + col).astype(np.int64),
        "position_ids": np.stack([row, col], -1).astype(np.int64),
    }
    out["image_index"], out["image_valid"], out["image_inverse"] = groups(image)
    out["merge_index"] = merge_index(grid, params["merge"])
    return out


def merge_index(grid: np.ndarray, merge: int) -> np.ndarray:
    """[tokens, merge*merge]: packed patch positions of each merged token's neighbours, in the
    unfold's kernel order (row offset, then column offset); tokens row-major per image."""
    out = []
    offset = 0
    for rows, cols in grid.tolist():  # a few images: the loop is over images, not patches
        tr, tc = np.meshgrid(np.arange(rows // merge), np.arange(cols // merge), indexing="ij")
        kr, kc = np.meshgrid(np.arange(merge), np.arange(merge), indexing="ij")
        r = tr.reshape(-1, 1) * merge + kr.reshape(1, -1)
        c = tc.reshape(-1, 1) * merge + kc.reshape(1, -1)
        out.append(offset + r * cols + c)
        offset += rows * cols
    return np.concatenate(out).astype(np.int64)


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Merged tokens of each image (how transformers splits the output per image)."""
    unit = params["patch"] * params["merge"]
    return [int(n) for n in (np.asarray(feeds["image_sizes"]) // unit).prod(1)]
