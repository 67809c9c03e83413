"""HunYuan-VL and HY-V4-VL: patches of every image (or frame of a clip) packed in raster order
(NaViT packing), each item's grid in `image_grid_thw`. Derived here: one attention group per frame,
the bilinear taps that resample the learned position table to each grid, the 2x2 neighbourhoods
its merger's strided convolution reads, where its newline ends each row of merged tokens, and
(HunYuan-VL, `wrap`) where its begin and end tokens wrap each image: transformers builds all of
these per image in Python. HY-V4-VL merges each frame of a clip on its own (`frames`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from . import navit, pixtral, qwen
from .base import groups

WRAP = 2  # a begin and an end token per image, where params["wrap"]


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    named = navit.axes(params)
    top, images = named["patches"].max, named["images"].max
    lined = Axis("lined_tokens", 2, max(2, min(1024, top) // 2), top // 2)  # merged tokens and a newline per row
    return named | {"lined_tokens": lined, "image_tokens": Axis("image_tokens", 4, lined.opt + WRAP, lined.max + WRAP * images)}


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named, called = axes(params), qwen.names(params)
    pixels = TensorSpec(called["pixels"], (named["patches"], params["channels"] * params["patch"] ** 2))
    return [pixels, TensorSpec(called["grid"], (named["images"], 3), "int64")]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    patches, taps = named["patches"], navit.TAPS[params["taps"]["mode"]]
    wrapped = [TensorSpec("wrap_index", (named["image_tokens"],), "int64")] if params.get("wrap", True) else []
    return [
        inputs(params)[0],
        TensorSpec("frame_index", (named["frames"], named["frame_patches"]), "int64"),
        TensorSpec("frame_valid", (named["frames"], named["frame_patches"]), "bool"),
        TensorSpec("frame_inverse", (patches,), "int64"),
        TensorSpec("pos_index", (patches, taps), "int64"),
        TensorSpec("pos_weight", (patches, taps)),
        TensorSpec("merge_index", (named["tokens"], params["merge"] ** 2), "int64"),
        TensorSpec("line_index", (named["lined_tokens"],), "int64"),
        *wrapped,
    ]


def _grid(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    called = qwen.names(params)
    grid = np.asarray(feeds[called["grid"]]).astype(np.int64)
    qwen.check_grid(grid, int(feeds[called["pixels"]].shape[0]), params["merge"], called)
    if not params.get("frames") and (grid[:, 0] != 1).any():
        raise InputError(f"{called['grid']} {grid.tolist()}: images only (1 frame each), as the processor grids them; pass the processor's tensors")
    return grid


def _lines(grid: np.ndarray, merge: int) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's merged tokens row by row with the newline (index: all merged tokens) after
    each row; then each image's lined tokens between its begin and end (indices: all lined
    tokens, and one more)."""
    frames = np.repeat(grid[:, 1:] // merge, grid[:, 0], axis=0)
    merged = int(frames.prod(1).sum())
    line, first = [], 0
    for r, c in frames.tolist():
        line.append(np.concatenate([first + np.arange(r * c).reshape(r, c), np.full((r, 1), merged)], 1).reshape(-1))
        first += r * c
    per_item = grid[:, 0] * (grid[:, 1] // merge) * (grid[:, 2] // merge + 1)
    lined, starts = int(per_item.sum()), np.cumsum(per_item) - per_item
    wrap = [np.concatenate([[lined], start + np.arange(n), [lined + 1]]) for start, n in zip(starts.tolist(), per_item.tolist())]
    return np.concatenate(line).astype(np.int64), np.concatenate(wrap).astype(np.int64)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    merge, grid, pixels = params["merge"], _grid(feeds, params), qwen.names(params)["pixels"]
    at = qwen.patch_coordinates(grid, 1)  # raster order, as the processor packs them
    out: dict[str, np.ndarray] = {pixels: feeds[pixels]}
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(at["frame"])
    out["pos_index"], out["pos_weight"] = qwen.position_taps(grid, at, params["taps"])
    out["merge_index"] = pixtral.merge_index(np.repeat(grid[:, 1:], grid[:, 0], axis=0), merge)
    out["line_index"], wrap = _lines(grid, merge)
    return out | ({"wrap_index": wrap} if params.get("wrap", True) else {})


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Tokens of each item: its frames' merged rows, each with a newline (between begin and end)."""
    grid, merge = _grid(feeds, params), params["merge"]
    wrap = WRAP if params.get("wrap", True) else 0
    return [int(n) for n in grid[:, 0] * (grid[:, 1] // merge) * (grid[:, 2] // merge + 1) + wrap]
