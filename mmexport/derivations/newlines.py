"""HunYuan-VL: patches of every image packed in raster order (NaViT packing), each image's grid in
`image_grid_thw`. Derived here: one attention group per image, the bilinear taps that resample
the learned position table to each grid, the 2x2 neighbourhoods its merger's strided convolution
reads, where its newline ends each row of merged tokens, and where its begin and end tokens
wrap each image (transformers builds all of these per image in Python)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from . import navit, pixtral, qwen
from .base import groups

WRAP = 2  # a begin and an end token per image


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    named = navit.axes(params)
    top, images = named["patches"].max, named["images"].max
    lined = Axis("lined_tokens", 2, max(2, min(1024, top) // 2), top // 2)  # merged tokens and a newline per row
    return named | {"lined_tokens": lined, "image_tokens": Axis("image_tokens", 4, lined.opt + WRAP, lined.max + WRAP * images)}


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    pixels = TensorSpec("pixel_values", (named["patches"], params["channels"] * params["patch"] ** 2))
    return [pixels, TensorSpec("image_grid_thw", (named["images"], 3), "int64")]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    patches, taps = named["patches"], navit.TAPS[params["taps"]["mode"]]
    return [
        inputs(params)[0],
        TensorSpec("frame_index", (named["frames"], named["frame_patches"]), "int64"),
        TensorSpec("frame_valid", (named["frames"], named["frame_patches"]), "bool"),
        TensorSpec("frame_inverse", (patches,), "int64"),
        TensorSpec("pos_index", (patches, taps), "int64"),
        TensorSpec("pos_weight", (patches, taps)),
        TensorSpec("merge_index", (named["tokens"], params["merge"] ** 2), "int64"),
        TensorSpec("line_index", (named["lined_tokens"],), "int64"),
        TensorSpec("wrap_index", (named["image_tokens"],), "int64"),
    ]


def _grid(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    grid = np.asarray(feeds["image_grid_thw"]).astype(np.int64)
    qwen.check_grid(grid, int(feeds["pixel_values"].shape[0]), params["merge"])
    if (grid[:, 0] != 1).any():
        raise InputError(f"image_grid_thw {grid.tolist()}: images only (1 frame each), as the processor grids them; pass the processor's tensors")
    return grid


def _lines(grid: np.ndarray, merge: int) -> tuple[np.ndarray, np.ndarray]:
    """Merged tokens row by row with the newline (index: all merged tokens) after each row; then
    each image's lined tokens between its begin and end (indices: all lined tokens, and one more)."""
    rows, cols = grid[:, 1] // merge, grid[:, 2] // merge
    merged, lined = int((rows * cols).sum()), int((rows * (cols + 1)).sum())
    line, wrap, first_merged, first_lined = [], [], 0, 0
    for r, c in zip(rows.tolist(), cols.tolist()):
        tokens = first_merged + np.arange(r * c).reshape(r, c)
        line.append(np.concatenate([tokens, np.full((r, 1), merged)], 1).reshape(-1))
        wrap.append(np.concatenate([[lined], first_lined + np.arange(r * (c + 1)), [lined + 1]]))
        first_merged, first_lined = first_merged + r * c, first_lined + r * (c + 1)
    return np.concatenate(line).astype(np.int64), np.concatenate(wrap).astype(np.int64)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    merge, grid = params["merge"], _grid(feeds, params)
    at = qwen.patch_coordinates(grid, 1)  # raster order, as the processor packs them
    out: dict[str, np.ndarray] = {"pixel_values": feeds["pixel_values"]}
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(at["image"])
    out["pos_index"], out["pos_weight"] = qwen.position_taps(grid, at, params["taps"])
    out["merge_index"] = pixtral.merge_index(grid[:, 1:], merge)
    out["line_index"], out["wrap_index"] = _lines(grid, merge)
    return out


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Tokens of each image: its merged rows, each with a newline, between begin and end."""
    grid, merge = _grid(feeds, params), params["merge"]
    return [int(n) for n in (grid[:, 1] // merge) * (grid[:, 2] // merge + 1) + WRAP]
