"""Nemotron-H Omni (C-RADIO tower): patches of every image packed in raster order, each image's
grid in `image_grid_hw` [images, 2]. Derived here: the bilinear taps that resample RADIO's
position table to a max(h, w) square and crop it to each grid (its cropped position embedding),
the attention groups of each image's patches with its class and register tokens (appended after
all patches in the graph; attention without rotary does not see order), and the 2x2
neighbourhoods its pixel shuffle concatenates."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from . import pixtral, qwen
from .base import groups
from .taps import axis_taps

MAX_PATCHES = qwen.MAX_PATCHES
MAX_IMAGES = qwen.MAX_IMAGES


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    top, prefix, images = params.get("max_patches", MAX_PATCHES), params["prefix"], params.get("max_images", MAX_IMAGES)
    return {
        "patches": Axis("patches", 4, 1024, top, multiple_of=4),
        "images": Axis("images", 1, 1, images),
        "rows": Axis("rows", 4 + prefix, 1024 + prefix, top + prefix * images),
        "group_rows": Axis("group_rows", 4 + prefix, 1024 + prefix, top + prefix),
        "tokens": Axis("tokens", 1, 256, top // 4),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [TensorSpec("pixel_values", (named["patches"], params["patch_dim"])), TensorSpec("image_grid_hw", (named["images"], 2), "int64")]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [
        inputs(params)[0],
        TensorSpec("pos_index", (named["patches"], 4), "int64"),
        TensorSpec("pos_weight", (named["patches"], 4)),
        TensorSpec("frame_index", (named["images"], named["group_rows"]), "int64"),
        TensorSpec("frame_valid", (named["images"], named["group_rows"]), "bool"),
        TensorSpec("frame_inverse", (named["rows"],), "int64"),
        TensorSpec("merge_index", (named["tokens"], 4), "int64"),
    ]


def _grid(feeds: dict[str, np.ndarray]) -> np.ndarray:
    sizes = np.asarray(feeds["image_grid_hw"]).astype(np.int64)
    if sizes.ndim != 2 or sizes.shape[1] != 2 or (sizes <= 0).any() or (sizes % 2).any():
        raise InputError(f"image_grid_hw must be [images, 2] (rows, columns of patches), even and positive; got {sizes.tolist()}")
    if int(sizes.prod(1).sum()) != feeds["pixel_values"].shape[0]:
        raise InputError(
            f"pixel_values has {feeds['pixel_values'].shape[0]} patches but image_grid_hw describes {int(sizes.prod(1).sum())}; pass the processor's tensors together"
        )
    return sizes


def _cropped_taps(at: dict[str, np.ndarray], square: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Per patch, the 4 taps into the side x side table of its place in the table resized
    (bilinear, half-pixel) to its image's max(h, w) square: the crop keeps the top-left rows and columns."""
    h_index, h_weight = axis_taps(at["row"], square, side, "bilinear", False)
    w_index, w_weight = axis_taps(at["col"], square, side, "bilinear", False)
    index = (h_index[:, :, None] * side + w_index[:, None, :]).reshape(-1, 4)
    return index.astype(np.int64), (h_weight[:, :, None] * w_weight[:, None, :]).reshape(-1, 4).astype(np.float32)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    sizes = _grid(feeds)
    grid = np.concatenate([np.ones((len(sizes), 1), np.int64), sizes], 1)
    at = qwen.patch_coordinates(grid, 1)
    out: dict[str, np.ndarray] = {"pixel_values": feeds["pixel_values"]}
    out["pos_index"], out["pos_weight"] = _cropped_taps(at, np.repeat(sizes.max(1), sizes.prod(1)), params["side"])
    owners = np.concatenate([at["image"], np.repeat(np.arange(len(sizes)), params["prefix"])])
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(owners)
    out["merge_index"] = pixtral.merge_index(sizes, 2)
    return out


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    return [int(n) for n in _grid(feeds).prod(1) // 4]
