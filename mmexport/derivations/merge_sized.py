"""VideoLLaMA3: patches of every image (or clip) packed as Qwen2-VL's processor packs them,
block-major by each item's own merge size (`image_merge_sizes`: 1 for images, 2 for videos by
default), each frame attending alone. Derived here: each patch's (row, column) for the 2D rotary,
one attention group per frame, and the m x m blocks each output token averages (transformers'
bilinear halving of the grid is exactly that average; at m = 1 a token is its patch)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from . import qwen
from .base import groups

IMAGES = {"pixels": "pixel_values", "grid": "image_grid_thw", "merges": "image_merge_sizes"}  # videos: params["names"]
MERGES = (1, 2)  # what bilinear halving equals an average for; the processors' sizes
WIDTH = max(MERGES) ** 2  # patches per output token, a token of a smaller merge repeating its own


def names(params: dict[str, Any]) -> dict[str, str]:
    return params.get("names", IMAGES)


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    named = qwen.axes(params)
    top = params.get("max_patches", qwen.MAX_PATCHES)
    return named | {"tokens": Axis("tokens", 1, min(1024, top) // WIDTH, top)}


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    """What the processor returns: flattened patches, each item's grid and its merge size."""
    return [*qwen.inputs(params), TensorSpec(names(params)["merges"], (axes(params)["images"],), "int64")]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    patches = named["patches"]
    return [
        qwen.inputs(params)[0],
        TensorSpec("position_ids", (patches, 2), "int64"),
        TensorSpec("frame_index", (named["frames"], named["frame_patches"]), "int64"),
        TensorSpec("frame_valid", (named["frames"], named["frame_patches"]), "bool"),
        TensorSpec("frame_inverse", (patches,), "int64"),
        TensorSpec("merge_index", (named["tokens"], WIDTH), "int64"),
    ]


def _checked(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    called = names(params)
    grid = np.asarray(feeds[called["grid"]]).astype(np.int64)
    merges = np.asarray(feeds[called["merges"]]).astype(np.int64).reshape(-1)
    qwen.check_grid(grid, int(feeds[called["pixels"]].shape[0]), 1, called)
    if len(merges) != len(grid) or not np.isin(merges, MERGES).all():
        raise InputError(
            f"{called['merges']} {merges.tolist()} must give each of the {len(grid)} grid rows a merge size of 1 or 2; pass the processor's tensors"
        )
    if ((grid[:, 1:] % merges[:, None]) != 0).any():
        raise InputError(f"{called['grid']}: rows and columns must be multiples of each item's merge size {merges.tolist()}; pass the processor's tensors")
    return grid, merges


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    grid, merges = _checked(feeds, params)
    positions, frames, blocks = [], [], []
    first_frame, first_patch = 0, 0
    for (t, h, w), m in zip(grid.tolist(), merges.tolist()):
        at = qwen.patch_coordinates(np.array([[t, h, w]]), m)
        positions.append(np.stack([at["row"], at["col"]], -1))
        frames.append(at["frame"] + first_frame)
        own = first_patch + np.arange(t * h * w).reshape(-1, m * m)  # block-major: a token's patches are contiguous
        blocks.append(np.tile(own, (1, WIDTH // (m * m))))
        first_frame, first_patch = first_frame + t, first_patch + t * h * w
    pixels = names(params)["pixels"]
    out = {pixels: feeds[pixels], "position_ids": np.concatenate(positions).astype(np.int64)}
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(np.concatenate(frames))
    return out | {"merge_index": np.concatenate(blocks).astype(np.int64)}


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Output tokens of each image (of each clip)."""
    grid, merges = _checked(feeds, params)
    return [int(n) for n in grid.prod(1) // merges**2]
