"""Cosmos3-Edge (SigLIP2 over Qwen-style packed patches): patches of every image or clip packed
block-major, each item's grid in `image_grid_thw`, its learned square position table resized to
each grid with antialiased bilinear interpolation. Derived here: each frame's attention group, and
the resize as two dense weight matrices per item (rows, columns; padded to the call's largest
grid) plus each patch's cell of the resized grids: the graph resamples with two matmuls and a
gather, exact for any downscale (antialiasing widens the filter past fixed taps)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..specs import Axis, TensorSpec
from . import qwen
from .base import groups
from .taps import antialiased_weights

names, inputs, check_grid = qwen.names, qwen.inputs, qwen.check_grid


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    named = qwen.axes(params)
    top = named["patches"].max
    return named | {"rows": Axis("grid_rows", 1, 32, top), "columns": Axis("grid_columns", 1, 32, top)}


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named, side = axes(params), params["side"]
    patches = named["patches"]
    return [
        qwen.inputs(params)[0],
        TensorSpec("frame_index", (named["frames"], named["frame_patches"]), "int64"),
        TensorSpec("frame_valid", (named["frames"], named["frame_patches"]), "bool"),
        TensorSpec("frame_inverse", (patches,), "int64"),
        TensorSpec("row_weights", (named["images"], named["rows"], side)),
        TensorSpec("column_weights", (named["images"], named["columns"], side)),
        TensorSpec("position_cell", (patches,), "int64"),
    ]


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    merge, called, side = params["merge"], names(params), params["side"]
    grid = np.asarray(feeds[called["grid"]]).astype(np.int64)
    check_grid(grid, int(feeds[called["pixels"]].shape[0]), merge, called)
    at = qwen.patch_coordinates(grid, merge)
    out: dict[str, np.ndarray] = {called["pixels"]: feeds[called["pixels"]]}
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(at["frame"])
    rows, columns = int(grid[:, 1].max()), int(grid[:, 2].max())
    out["row_weights"] = np.zeros((len(grid), rows, side), np.float32)
    out["column_weights"] = np.zeros((len(grid), columns, side), np.float32)
    for i, (_, h, w) in enumerate(grid.tolist()):
        out["row_weights"][i, :h] = antialiased_weights(h, side)
        out["column_weights"][i, :w] = antialiased_weights(w, side)
    out["position_cell"] = ((at["image"] * rows + at["row"]) * columns + at["col"]).astype(np.int64)
    return out


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    return qwen.split(feeds, params)
