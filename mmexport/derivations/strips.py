"""MiniCPM-V 4.6 (and 4.7, MiniCPM-o OCR): the patches of every slice of every image side by side in
one strip [1, C, P, patches * P], each slice's (rows, columns) in `target_sizes`. Derived here:
each patch's nearest row of the learned position table (transformers' bucketize, run by torch
itself so the buckets are its own), one attention group per slice, the 2x2 windows its insert
merger attends within and averages (16x mode), the groups of the merged slices, and the 2x2
neighbourhoods its final merger concatenates."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..specs import Axis, TensorSpec
from . import pixtral
from .base import groups

MAX_PATCHES = 16384
MAX_SLICES = 64
IMAGES = {"pixels": "pixel_values", "sizes": "target_sizes"}


def names(params: dict[str, Any]) -> dict[str, str]:
    """The processor's names (its video processor's: pixel_values_videos, target_sizes_videos)."""
    return params.get("names", IMAGES)


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    unit, patch = params["unit"], params["patch"]
    top = params.get("max_patches", MAX_PATCHES)
    return {
        "strip": Axis("strip", unit * patch, min(1024, top) * patch, top * patch, multiple_of=unit * patch),
        "slices": Axis("slices", 1, 1, params.get("max_slices", MAX_SLICES)),
        "patches": Axis("patches", unit, min(1024, top), top, multiple_of=unit),
        "groups": Axis("groups", 1, 1, params.get("max_slices", MAX_SLICES)),
        "group_patches": Axis("group_patches", unit, min(1024, top), top),
        "windows": Axis("windows", 1, min(1024, top) // 4, top // 4),
        "merged": Axis("merged", 1, min(1024, top) // 4, top // 4),
        "merged_patches": Axis("merged_patches", 1, min(1024, top) // 4, top // 4),
        "tokens": Axis("tokens", 1, min(1024, top) // unit, top // 4),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named, called = axes(params), names(params)
    return [
        TensorSpec(called["pixels"], (1, params["channels"], params["patch"], named["strip"])),
        TensorSpec(called["sizes"], (named["slices"], 2), "int32"),
    ]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    patches = named["patches"]
    graph = [
        inputs(params)[0],
        TensorSpec("position_ids", (patches,), "int64"),
        TensorSpec("frame_index", (named["groups"], named["group_patches"]), "int64"),
        TensorSpec("frame_valid", (named["groups"], named["group_patches"]), "bool"),
        TensorSpec("frame_inverse", (patches,), "int64"),
    ]
    if params["window_merge"]:
        graph += [
            TensorSpec("window_index", (patches,), "int64"),
            TensorSpec("window_groups", (named["windows"], 4), "int64"),
            TensorSpec("merged_index", (named["groups"], named["merged_patches"]), "int64"),
            TensorSpec("merged_valid", (named["groups"], named["merged_patches"]), "bool"),
            TensorSpec("merged_inverse", (named["merged"],), "int64"),
        ]
    return graph + [TensorSpec("merge_index", (named["tokens"], 4), "int64")]


def _sizes(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    called = names(params)
    sizes = np.asarray(feeds[called["sizes"]]).astype(np.int64)
    strip, unit = feeds[called["pixels"]], params["unit"]
    side = int(np.sqrt(unit))
    if sizes.ndim != 2 or sizes.shape[1] != 2 or (sizes <= 0).any():
        raise InputError(f"{called['sizes']} must be [slices, 2] positive (rows, columns of patches), got {sizes.tolist()}")
    if (sizes % side).any():
        raise InputError(f"{called['sizes']} {sizes.tolist()}: rows and columns must be multiples of {side}, as the processor sizes slices")
    if int(sizes.prod(1).sum()) * params["patch"] != strip.shape[-1]:
        raise InputError(
            f"{called['pixels']} holds {strip.shape[-1] // params['patch']} patches but {called['sizes']} describes {int(sizes.prod(1).sum())}; "
            "pass the processor's tensors together"
        )
    return sizes


def nearest_positions(sizes: np.ndarray, side: int) -> np.ndarray:
    """transformers' get_vision_nearest_position_ids, with torch's own arange and bucketize."""
    boundaries = torch.arange(1 / side, 1.0, 1 / side)
    out = []
    for rows, cols in sizes.tolist():
        bucket_h = torch.bucketize(torch.arange(rows) / rows, boundaries, right=True)
        bucket_w = torch.bucketize(torch.arange(cols) / cols, boundaries, right=True)
        out.append((bucket_h[:, None] * side + bucket_w).flatten().numpy())
    return np.concatenate(out).astype(np.int64)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    sizes = _sizes(feeds, params)
    slice_of = np.repeat(np.arange(len(sizes)), sizes.prod(1))
    pixels = names(params)["pixels"]
    out: dict[str, np.ndarray] = {pixels: feeds[pixels], "position_ids": nearest_positions(sizes, params["side"])}
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(slice_of)
    if params["window_merge"]:  # 2x2 windows, raster within and across: the final merger's neighbourhoods at full size
        out["window_index"] = pixtral.merge_index(sizes, 2).reshape(-1)
        out["window_groups"] = np.arange(len(out["window_index"]), dtype=np.int64).reshape(-1, 4)
        sizes = sizes // 2
        out["merged_index"], out["merged_valid"], out["merged_inverse"] = groups(np.repeat(np.arange(len(sizes)), sizes.prod(1)))
    return out | {"merge_index": pixtral.merge_index(sizes, 2)}


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Tokens of each slice."""
    return [int(n) for n in _sizes(feeds, params).prod(1) // params["unit"]]
