"""Resampling a learned position table to an image's grid as gathers: per axis, the source rows
each target row reads and their weights (bilinear: 2 taps, bicubic: Keys' a = -0.75, 4 taps;
out-of-range taps clamped to the border), in float32 as transformers computes them."""

from __future__ import annotations

import numpy as np

CUBIC_A = np.float32(-0.75)


def axis_taps(index: np.ndarray, size: np.ndarray, side: int, mode: str, align_corners: bool, size_offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(taps [n, k], weights [n, k]) for target positions `index` on axes of length `size`.
    `size_offset`: the table is scaled by (size + offset) / side, the output still `size` long
    (HY-V4-VL's explicit scale_factor, which shifts the sampling grid)."""
    position = index.astype(np.float32)
    size = size.astype(np.float32)
    if align_corners:
        source = position * np.float32(side - 1) / np.maximum(size - np.float32(1), np.float32(1))
    else:
        source = (position + np.float32(0.5)) * np.float32(side) / (size + np.float32(size_offset)) - np.float32(0.5)
    floor = np.floor(source)
    offsets = np.arange(0, 2) if mode == "bilinear" else np.arange(-1, 3)
    taps = floor.astype(np.int64)[:, None] + offsets
    distance = np.abs(source[:, None] - floor[:, None] - offsets.astype(np.float32))
    if mode == "bilinear":
        weights = np.maximum(np.float32(1) - distance, np.float32(0))
    else:
        a = CUBIC_A
        near = ((a + 2) * distance - (a + 3)) * distance * distance + 1
        far = ((a * distance - 5 * a) * distance + 8 * a) * distance - 4 * a
        weights = np.where(distance <= 1, near, far)
    return np.clip(taps, 0, side - 1), weights.astype(np.float32)


def antialiased_weights(size: int, side: int) -> np.ndarray:
    """[size, side]: torch's bilinear interpolation with antialias=True (align_corners=False) from
    `side` rows to `size`, as a dense matrix: a triangle filter widened by the downscale factor,
    normalised per output row (upscaling: plain bilinear, clamped at the borders)."""
    scale = side / size
    support = scale if scale >= 1.0 else 1.0
    stretch = 1.0 / scale if scale >= 1.0 else 1.0
    out = np.zeros((size, side), np.float64)
    for i in range(size):
        center = scale * (i + 0.5)
        low, high = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), side)
        taps = np.arange(low, high)
        weights = np.maximum(0.0, 1.0 - np.abs((taps - center + 0.5) * stretch))
        out[i, low:high] = weights / weights.sum()
    return out.astype(np.float32)
