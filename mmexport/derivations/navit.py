"""PaddleOCR-VL and Kimi-K2.5 (NaViT-packed SigLIP / MoonViT): patches of every image packed in raster order, each image's
grid in `image_grid_thw`. Derived here: each patch's (row, column) for the 2D rotary, one attention
group per image, the bilinear (Kimi: bicubic) taps that resample the learned position table to each grid, and the
2x2 neighbourhoods the projector concatenates (merging happens after the encoder, not inside)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..specs import Axis, TensorSpec
from . import pixtral, qwen
from .base import groups

MAX_PATCHES = qwen.MAX_PATCHES
TAPS = {"bilinear": 4, "bicubic": 16}  # position-table taps per patch


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    named = qwen.axes(params)
    unit = params["merge"] ** 2
    top = params.get("max_patches", MAX_PATCHES)
    return named | {"tokens": Axis("tokens", 1, min(1024, top) // unit, top // unit)}


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named, patch = axes(params), params["patch"]
    pixels = TensorSpec("pixel_values", (named["patches"], params["channels"], patch, patch))
    return [pixels, TensorSpec("image_grid_thw", (named["images"], 3), "int64")]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    patches = named["patches"]
    return [
        inputs(params)[0],
        TensorSpec("position_ids", (patches, 2), "int64"),
        TensorSpec("frame_index", (named["frames"], named["frame_patches"]), "int64"),
        TensorSpec("frame_valid", (named["frames"], named["frame_patches"]), "bool"),
        TensorSpec("frame_inverse", (patches,), "int64"),
        TensorSpec("pos_index", (patches, TAPS[params["taps"]["mode"]]), "int64"),
        TensorSpec("pos_weight", (patches, TAPS[params["taps"]["mode"]])),
        TensorSpec("merge_index", (named["tokens"], params["merge"] ** 2), "int64"),
    ]


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    merge = params["merge"]
    grid = np.asarray(feeds["image_grid_thw"]).astype(np.int64)
    pixels = feeds["pixel_values"]
    qwen.check_grid(grid, int(pixels.shape[0]), merge)
    at = qwen.patch_coordinates(grid, 1)  # raster order: the encoder sees the patches as the processor packed them
    out: dict[str, np.ndarray] = {"pixel_values": pixels, "position_ids": np.stack([at["row"], at["col"]], -1).astype(np.int64)}
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(at["image"])
    out["pos_index"], out["pos_weight"] = qwen.position_taps(grid, at, params["taps"])
    frames = np.repeat(grid[:, 1:], grid[:, 0], axis=0)  # each frame's rows and columns of patches
    out["merge_index"] = pixtral.merge_index(frames, merge)
    return out


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Merged tokens of each image."""
    return [int(n) for n in np.asarray(feeds["image_grid_thw"]).prod(1) // (params["merge"] ** 2)]
