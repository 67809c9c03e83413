"""Kimi-K2.5 (MoonViT): NaViT packing as PaddleOCR-VL's (derivations/navit.py), plus its time axis.
A grid row of t frames (an image, or a chunk of a clip as its video processor cuts them) attends
as one group, adds a sinusoid per frame (row 0 of the table, zeros, where t == 1), and its 2x2
neighbourhoods are averaged over its frames (the temporal merge) before the projector. Derived
here: navit's rotary positions, groups and position taps, each patch's row of the time table, and
for each merged token its neighbours in every frame with 1/t weights (padding: a zero row, weight 0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from . import navit, pixtral, qwen
from .base import groups


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    return navit.axes(params) | {"chunk_frames": Axis("chunk_frames", 1, 1, params["max_time"])}


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named, patch, called = axes(params), params["patch"], qwen.names(params)
    pixels = TensorSpec(called["pixels"], (named["patches"], params["channels"], patch, patch))
    return [pixels, TensorSpec(called["grid"], (named["images"], 3), "int64")]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    """navit's graph inputs under the processor's names, with the time rows and the temporal merge in place of its 2x2 gather."""
    named = axes(params)
    tokens, frames = named["tokens"], named["chunk_frames"]
    return [
        inputs(params)[0],
        *navit.specs(params)[1:-1],  # rotary positions, groups, position taps
        TensorSpec("time_index", (named["patches"],), "int64"),
        TensorSpec("merge_index", (tokens, params["merge"] ** 2, frames), "int64"),
        TensorSpec("merge_weight", (tokens, frames)),
    ]


def _grid(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    called = qwen.names(params)
    grid = np.asarray(feeds[called["grid"]]).astype(np.int64)
    qwen.check_grid(grid, int(feeds[called["pixels"]].shape[0]), params["merge"], called)
    if (grid[:, 0] > params["max_time"]).any():
        raise InputError(
            f"{called['grid']} has a row of {int(grid[:, 0].max())} frames; the tower's time table takes at most {params['max_time']} per row: "
            "cut clips into chunks as the video processor does"
        )
    return grid


def _temporal_merge(grid: np.ndarray, merge: int) -> tuple[np.ndarray, np.ndarray]:
    """[tokens, merge^2, F] neighbours of each merged token in each frame of its row, [tokens, F] 1/t."""
    width, total = int(grid[:, 0].max()), int(grid.prod(1).sum())
    index, weight, offset = [], [], 0
    for t, h, w in grid.tolist():
        first = pixtral.merge_index(np.array([[h, w]]), merge)  # in the row's first frame
        frames = np.full((*first.shape, width), total)  # padding reads the zero row after the patches
        frames[..., :t] = offset + first[..., None] + np.arange(t) * h * w
        index.append(frames)
        weight.append(np.repeat(np.pad(np.full(t, 1.0 / t), (0, width - t))[None], len(first), 0))
        offset += t * h * w
    return np.concatenate(index).astype(np.int64), np.concatenate(weight).astype(np.float32)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    grid = _grid(feeds, params)
    at = qwen.patch_coordinates(grid, 1)  # raster order, frame-major within a row
    out: dict[str, np.ndarray] = {qwen.names(params)["pixels"]: feeds[qwen.names(params)["pixels"]]}
    out["position_ids"] = np.stack([at["row"], at["col"]], -1).astype(np.int64)
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(at["image"])  # a row's frames attend together
    out["pos_index"], out["pos_weight"] = qwen.position_taps(grid, at, params["taps"])
    frame_in_row = at["frame"] - (np.cumsum(grid[:, 0]) - grid[:, 0])[at["image"]]
    out["time_index"] = np.where(grid[at["image"], 0] > 1, frame_in_row + 1, 0).astype(np.int64)
    out["merge_index"], out["merge_weight"] = _temporal_merge(grid, params["merge"])
    return out


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Merged tokens of each grid row (an image, or a chunk of a clip): its frames are pooled."""
    grid = np.asarray(feeds[qwen.names(params)["grid"]])
    return [int(n) for n in grid[:, 1:].prod(1) // (params["merge"] ** 2)]
