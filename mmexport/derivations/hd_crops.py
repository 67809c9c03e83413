"""Phi-4-multimodal's dynamic HD crops: per image a global crop (the image resized to one crop)
then its sub-crops in raster order, every sample padded to the batch's most crops (zero pixels,
an all-ones mask), `image_sizes` the padded HD canvas and `image_attention_mask` [batch, crops,
side, side] zero on the canvas's padding patches. Derived here, as transformers' per-image loop
reads them: which crops are real (the global one and height/crop x width/crop sub-crops), and
where each of the LLM's image tokens comes from among the pooled crop features and the two
learned separators (a newline after each row, one between the sub-crop canvas and the global
crop), the canvas cut to its unpadded pooled rows and columns."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec

MAX_BATCH, MAX_CROPS, MAX_REAL = 16, 37, 64  # the processor's dynamic_hd is 36 sub-crops


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    pooled = params["pooled"]
    tokens = MAX_REAL * pooled * (pooled + 1) + MAX_BATCH
    return {
        "batch": Axis("batch", 1, 1, MAX_BATCH),
        "crops": Axis("crops", 1, 2, MAX_CROPS),
        "real_crops": Axis("real_crops", 1, 2, MAX_REAL),
        "tokens": Axis("tokens", 1, 2 * pooled * (pooled + 1) + 1, tokens),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named, size, side = axes(params), params["size"], params["side"]
    return [
        TensorSpec("image_pixel_values", (named["batch"], named["crops"], 3, size, size)),
        TensorSpec("image_sizes", (named["batch"], 2), "int64"),
        TensorSpec("image_attention_mask", (named["batch"], named["crops"], side, side)),
    ]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    given = inputs(params)
    named = axes(params)
    return [given[0], given[2], TensorSpec("real_crops", (named["real_crops"],), "int64"), TensorSpec("token_index", (named["tokens"],), "int64")]


def _canvases(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """[images, 2] sub-crop rows and columns, and [images, 2] the unpadded pooled rows and columns."""
    pixels, mask = feeds["image_pixel_values"], np.asarray(feeds["image_attention_mask"])
    sizes = np.asarray(feeds["image_sizes"]).astype(np.int64).reshape(-1, 2)
    size, side, pooled = params["size"], params["side"], params["pooled"]
    if mask.shape != (*pixels.shape[:2], side, side) or len(sizes) != pixels.shape[0]:
        raise InputError(
            f"image_attention_mask {list(mask.shape)} and image_sizes {list(sizes.shape)} do not describe image_pixel_values {list(pixels.shape)}; pass the processor's tensors together"
        )
    if (sizes < size).any() or (sizes % size).any():
        raise InputError(f"image_sizes must be multiples of the {size}-pixel crop (the processor's HD canvas); got {sizes.tolist()}")
    grids = sizes // size
    if (grids.prod(1) + 1 > pixels.shape[1]).any():
        raise InputError(
            f"image_sizes {sizes.tolist()} need more crops than image_pixel_values holds ({pixels.shape[1]}); pass the processor's tensors together"
        )
    useful = []
    for image, (rows, cols) in enumerate(grids):
        kept = mask[image, 1 : rows * cols + 1, 0::2, 0::2] != 0  # the pooled cell keeps its top-left patch's mask
        canvas = kept.reshape(rows, cols, pooled, pooled).transpose(0, 2, 1, 3).reshape(rows * pooled, cols * pooled)
        useful.append((int(canvas[:, 0].sum()), int(canvas[0, :].sum())))
    return grids, np.array(useful, np.int64).reshape(-1, 2)


def _image_rows(first: int, grid: np.ndarray, useful: np.ndarray, pooled: int, newline: int, between: int) -> np.ndarray:
    """One image's tokens as rows of the pooled table: the canvas (a newline after each row), the
    separator, the global crop (a newline after each row)."""
    cell = pooled * pooled
    y, x = np.meshgrid(np.arange(useful[0]), np.arange(useful[1]), indexing="ij")
    crop = first + 1 + (y // pooled) * grid[1] + x // pooled
    canvas = crop * cell + (y % pooled) * pooled + x % pooled
    canvas = np.concatenate([canvas, np.full((useful[0], 1), newline)], 1).reshape(-1)
    glob = first * cell + np.arange(cell).reshape(pooled, pooled)
    glob = np.concatenate([glob, np.full((pooled, 1), newline)], 1).reshape(-1)
    return np.concatenate([canvas, [between], glob])


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    pixels = feeds["image_pixel_values"]
    grids, useful = _canvases(feeds, params)
    counts = grids.prod(1) + 1
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    real = np.concatenate([image * pixels.shape[1] + np.arange(n) for image, n in enumerate(counts)]).astype(np.int64)
    newline = int(counts.sum()) * params["pooled"] ** 2  # the table: pooled rows of the real crops, then the two separators
    rows = [_image_rows(int(f), g, u, params["pooled"], newline, newline + 1) for f, g, u in zip(firsts, grids, useful)]
    return {
        "image_pixel_values": pixels,
        "image_attention_mask": np.asarray(feeds["image_attention_mask"]),
        "real_crops": real,
        "token_index": np.concatenate(rows).astype(np.int64),
    }


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Tokens of each image: the cut canvas with its newlines, the separator, the global crop with its newlines."""
    _, useful = _canvases(feeds, params)
    pooled = params["pooled"]
    return [int(h * (w + 1) + 1 + pooled * (pooled + 1)) for h, w in useful]
