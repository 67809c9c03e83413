"""Qwen2-VL, Qwen2.5-VL, Qwen3-VL and GLM-4V: from `image_grid_thw` [images, 3] (frames, rows,
columns in patches) to what their towers compute in Python: each patch's (row, column) for the
2D rotary, the frames whose patches attend to each other, Qwen2.5-VL's windows, and the taps
and weights that resample a learned position table to each image's grid (Qwen3-VL bilinear,
GLM-4V bicubic). Patches come in the processor's order: merge-size blocks, row-major."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from .base import groups
from .taps import axis_taps

MAX_PATCHES = 16384
MAX_IMAGES = 64
IMAGES = {"pixels": "pixel_values", "grid": "image_grid_thw"}  # what the processor calls them; videos: params["names"]


def names(params: dict[str, Any]) -> dict[str, str]:
    return params.get("names", IMAGES)


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    merge_unit = params["merge"] ** 2
    top = params.get("max_patches", MAX_PATCHES)
    window = params.get("window", 0)
    named = {
        "patches": Axis("patches", merge_unit, min(1024, top), top, multiple_of=merge_unit),
        "images": Axis("images", 1, 1, params.get("max_images", MAX_IMAGES)),
        "frames": Axis("frames", 1, 1, params.get("max_images", MAX_IMAGES)),
        "frame_patches": Axis("frame_patches", merge_unit, min(1024, top), top),
    }
    if window:
        named["windows"] = Axis("windows", 1, max(1, min(1024, top) // (window * window * merge_unit)), top // merge_unit)
    return named


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    """What the processor returns: flattened patches and the grid of each image."""
    named = axes(params)
    called = names(params)
    return [TensorSpec(called["pixels"], (named["patches"], params["patch_dim"])), TensorSpec(called["grid"], (named["images"], 3), "int64")]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    """What the graph takes: the patches, and the tensors derived from the grid."""
    named = axes(params)
    patches = named["patches"]
    graph = [
        TensorSpec(names(params)["pixels"], (patches, params["patch_dim"])),
        TensorSpec("position_ids", (patches, 3 if params.get("temporal_positions") else 2), "int64"),
        TensorSpec("frame_index", (named["frames"], named["frame_patches"]), "int64"),
        TensorSpec("frame_valid", (named["frames"], named["frame_patches"]), "bool"),
        TensorSpec("frame_inverse", (patches,), "int64"),
    ]
    window = params.get("window", 0)
    if window:
        size = window * window * params["merge"] ** 2
        graph += [
            TensorSpec("window_index", (named["windows"], size), "int64"),
            TensorSpec("window_valid", (named["windows"], size), "bool"),
            TensorSpec("window_inverse", (patches,), "int64"),
        ]
    if params.get("taps"):
        count = {"bilinear": 4, "bicubic": 16}[params["taps"]["mode"]]
        graph += [TensorSpec("pos_index", (patches, count), "int64"), TensorSpec("pos_weight", (patches, count))]
    if params.get("pairs"):
        unit = params["merge"] ** 2
        graph.append(TensorSpec("pair_index", (Axis("tokens", 1, min(1024, patches.max) // unit, patches.max // unit), 2), "int64"))
    if params.get("conv"):
        graph.append(TensorSpec("conv_index", (patches, params["conv"] ** 2), "int64"))
    return graph


def check_grid(grid: np.ndarray, patches: int, merge: int, called: dict[str, str] = IMAGES) -> None:
    """One clear error for a grid the tower cannot take, before anything runs."""
    name, pixels = called["grid"], called["pixels"]
    if grid.ndim != 2 or grid.shape[1] != 3:
        raise InputError(f"{name} must be [{'videos' if 'video' in name else 'images'}, 3] (frames, rows, columns), got shape {list(grid.shape)}")
    if (grid <= 0).any():
        raise InputError(f"{name} has a row that is not positive: {grid[(grid <= 0).any(1)][0].tolist()}")
    if ((grid[:, 1:] % merge) != 0).any():
        bad = grid[((grid[:, 1:] % merge) != 0).any(1)][0].tolist()
        raise InputError(f"{name} row {bad}: rows and columns must be multiples of the merge size {merge} (patches are merged {merge}x{merge})")
    expected = int(grid.prod(1).sum())
    if expected != patches:
        raise InputError(f"{pixels} has {patches} patches but {name} describes {expected}; pass the processor's tensors together")


def patch_coordinates(grid: np.ndarray, merge: int) -> dict[str, np.ndarray]:
    """Per patch, in the processor's order: its image, frame, row and column."""
    counts = grid.prod(1)
    image = np.repeat(np.arange(len(grid)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    frame_size = (grid[:, 1] * grid[:, 2])[image]
    within = local % frame_size
    blocks_w = (grid[:, 2] // merge)[image]
    row = (within // (merge * merge * blocks_w)) * merge + (within // merge) % merge
    col = ((within // (merge * merge)) % blocks_w) * merge + within % merge
    frame = np.repeat(np.cumsum(grid[:, 0]) - grid[:, 0], counts) + local // frame_size  # global frame number
    return {"image": image, "frame": frame, "row": row, "col": col}


def window_ids(grid: np.ndarray, at: dict[str, np.ndarray], merge: int, window: int) -> np.ndarray:
    """Qwen2.5-VL: windows of `window` x `window` merged tokens per frame (partial at the edges)."""
    per_row = -(-(grid[:, 2] // merge) // window)
    per_frame = per_row * -(-(grid[:, 1] // merge) // window)
    first: np.ndarray = np.cumsum(grid[:, 0] * per_frame) - grid[:, 0] * per_frame  # first window of each image
    image = at["image"]
    frame_in_image = at["frame"] - (np.cumsum(grid[:, 0]) - grid[:, 0])[image]
    local = (at["row"] // merge // window) * per_row[image] + at["col"] // merge // window
    return first[image] + frame_in_image * per_frame[image] + local


def position_taps(grid: np.ndarray, at: dict[str, np.ndarray], taps: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the flattened side x side position table and their weights, per patch."""
    side = taps["side"]
    heights, widths = grid[at["image"], 1], grid[at["image"], 2]
    offset = taps.get("size_offset", 0.0)
    h_index, h_weight = axis_taps(at["row"], heights, side, taps["mode"], taps["align_corners"], offset)
    w_index, w_weight = axis_taps(at["col"], widths, side, taps["mode"], taps["align_corners"], offset)
    n = h_index.shape[1]
    index = (h_index[:, :, None] * side + w_index[:, None, :]).reshape(-1, n * n)
    weight = (h_weight[:, :, None] * w_weight[:, None, :]).reshape(-1, n * n)
    return index.astype(np.int64), weight.astype(np.float32)


def _positions(grid: np.ndarray, at: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    """(row, column) per patch; with `temporal_positions` (MiniMax-M3-VL's 3D rotary) its frame within the clip first."""
    if not params.get("temporal_positions"):
        return np.stack([at["row"], at["col"]], -1).astype(np.int64)
    first_frame = (np.cumsum(grid[:, 0]) - grid[:, 0])[at["image"]]
    return np.stack([at["frame"] - first_frame, at["row"], at["col"]], -1).astype(np.int64)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    merge, called = params["merge"], names(params)
    grid = np.asarray(feeds[called["grid"]]).astype(np.int64)
    pixels = feeds[called["pixels"]]
    check_grid(grid, int(pixels.shape[0]), merge, called)
    if params.get("frames_as_images"):  # GLM-4V's video path: each frame its own [1, rows, columns]
        frames = np.repeat(grid[:, 1:], grid[:, 0], axis=0)
        grid = np.concatenate([np.ones((len(frames), 1), np.int64), frames], axis=1)
    at = patch_coordinates(grid, merge)
    out: dict[str, np.ndarray] = {called["pixels"]: pixels, "position_ids": _positions(grid, at, params)}
    out["frame_index"], out["frame_valid"], out["frame_inverse"] = groups(at["image" if params.get("clip_attention") else "frame"])
    window = params.get("window", 0)
    if window:
        size = window * window * merge * merge
        out["window_index"], out["window_valid"], out["window_inverse"] = groups(window_ids(grid, at, merge, window), size)
    if params.get("taps"):
        out["pos_index"], out["pos_weight"] = position_taps(grid, at, params["taps"])
    if params.get("pairs"):
        if "names" in params and (grid[:, 0] % 2).any():  # transformers splits a clip's output as if its frames paired up
            raise InputError(f"{called['grid']} {grid.tolist()}: clips need an even frame count (the video processor repeats the last frame); pass its tensors")
        out["pair_index"] = frame_pairs(grid, merge)
    if params.get("conv"):
        out["conv_index"] = conv_neighbours(grid, at, merge, params["conv"])
    return out


def conv_neighbours(grid: np.ndarray, at: dict[str, np.ndarray], merge: int, kernel: int) -> np.ndarray:
    """[patches, kernel**2]: the packed patch under each tap of a same-padded kernel x kernel
    convolution over the patch's frame (taps row-major, as Conv2d's weight), or the row past the
    last patch (zeros) where the tap falls outside the frame (LFM3-VL's depthwise convolution)."""
    frame = at["frame"]
    counts = np.bincount(frame)
    start = np.cumsum(counts) - counts
    heights, widths = np.repeat(grid[:, 1], grid[:, 0])[frame], np.repeat(grid[:, 2], grid[:, 0])[frame]
    offsets = np.arange(kernel) - kernel // 2
    rows = at["row"][:, None, None] + offsets[None, :, None]
    cols = at["col"][:, None, None] + offsets[None, None, :]
    inside = (rows >= 0) & (rows < heights[:, None, None]) & (cols >= 0) & (cols < widths[:, None, None])
    r, c = np.clip(rows, 0, None), np.clip(cols, 0, None)
    blocks_w = (widths // merge)[:, None, None]
    within = ((r // merge) * blocks_w + c // merge) * merge * merge + (r % merge) * merge + c % merge  # block-major, as packed
    index = np.where(inside, start[frame][:, None, None] + within, len(frame))
    return index.reshape(len(frame), kernel * kernel).astype(np.int64)


def _paired_frames(frames: np.ndarray) -> np.ndarray:
    """ERNIE-4.5-VL merges frames (0, 1), (2, 3), ... of a clip; an image is paired with itself and
    an odd clip's last frame is dropped (transformers' zip of the even and odd frames)."""
    return np.where(frames > 1, frames // 2, 1)


def frame_pairs(grid: np.ndarray, merge: int) -> np.ndarray:
    """[tokens, 2]: the two merged tokens (same place, paired frames) each output token concatenates."""
    per_frame = grid[:, 1] * grid[:, 2] // merge**2
    starts = np.cumsum(grid[:, 0] * per_frame) - grid[:, 0] * per_frame
    out = []
    for frames, size, start in zip(grid[:, 0].tolist(), per_frame.tolist(), starts.tolist()):
        first = np.arange(0, frames, 2)[: int(_paired_frames(np.array(frames)))]
        second = first + 1 if frames > 1 else first
        place = np.arange(size)
        out.append(np.stack([(start + first[:, None] * size + place).reshape(-1), (start + second[:, None] * size + place).reshape(-1)], -1))
    return np.concatenate(out).astype(np.int64)


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Merged tokens of each image (how transformers splits the output per image)."""
    grid = np.asarray(feeds[names(params)["grid"]]).astype(np.int64)
    frames = _paired_frames(grid[:, 0]) if params.get("pairs") else grid[:, 0]
    return [int(n) for n in frames * grid[:, 1] * grid[:, 2] // (params["merge"] ** 2)]
