"""LFM2-VL (SigLIP2 NaFlex): each tile's patches padded to the batch's patch count, with
`pixel_attention_mask` marking the real ones and `spatial_shapes` their (rows, columns). The tower
reads them as they are; derived here: the patches each pixel-unshuffled token concatenates (its
factor x factor block, row offset then column offset), for every tile, so the graph gathers them
instead of transformers' padded grid and data-dependent selection."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec

MAX_TILES = 64


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    unit = params["factor"] ** 2
    top = params["max_patches"]
    return {
        "tiles": Axis("tiles", 1, 1, params.get("max_tiles", MAX_TILES)),
        "patches": Axis("patches", unit, min(top, params.get("opt_patches", top)), top, multiple_of=unit),
        "tokens": Axis("tokens", 1, max(1, min(top, 256) // unit), params.get("max_tiles", MAX_TILES) * top // unit),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [
        TensorSpec("pixel_values", (named["tiles"], named["patches"], params["patch_dim"])),
        TensorSpec("pixel_attention_mask", (named["tiles"], named["patches"]), "int64"),
        TensorSpec("spatial_shapes", (named["tiles"], 2), "int64"),
    ]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    return [*inputs(params), TensorSpec("unshuffle_index", (axes(params)["tokens"], params["factor"] ** 2), "int64")]


def _shapes(feeds: dict[str, np.ndarray], factor: int) -> np.ndarray:
    shapes = np.asarray(feeds["spatial_shapes"]).astype(np.int64)
    mask, patches = np.asarray(feeds["pixel_attention_mask"]), feeds["pixel_values"].shape[1]
    if shapes.ndim != 2 or shapes.shape != (feeds["pixel_values"].shape[0], 2):
        raise InputError(f"spatial_shapes must be [tiles, 2] with one row per tile of pixel_values, got {list(shapes.shape)}")
    if (shapes <= 0).any() or (shapes % factor).any():
        raise InputError(f"spatial_shapes {shapes.tolist()}: rows and columns must be positive multiples of the downsample factor {factor}")
    if (shapes.prod(1) > patches).any() or not np.array_equal(mask.sum(1), shapes.prod(1)):
        raise InputError("pixel_attention_mask must mark each tile's rows x columns patches (spatial_shapes); pass the processor's tensors together")
    return shapes


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    factor = params["factor"]
    shapes = _shapes(feeds, factor)
    patches = feeds["pixel_values"].shape[1]
    out = []
    for tile, (rows, cols) in enumerate(shapes.tolist()):  # a loop over tiles, not patches
        tr, tc = np.meshgrid(np.arange(rows // factor), np.arange(cols // factor), indexing="ij")
        kr, kc = np.meshgrid(np.arange(factor), np.arange(factor), indexing="ij")
        r = tr.reshape(-1, 1) * factor + kr.reshape(1, -1)
        c = tc.reshape(-1, 1) * factor + kc.reshape(1, -1)
        out.append(tile * patches + r * cols + c)
    return {name: feeds[name] for name in ("pixel_values", "pixel_attention_mask", "spatial_shapes")} | {
        "unshuffle_index": np.concatenate(out).astype(np.int64)
    }


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Tokens of each tile."""
    return [int(n) for n in (np.asarray(feeds["spatial_shapes"]) // params["factor"]).prod(1)]
