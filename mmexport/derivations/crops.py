"""Idefics2, Idefics3 and SmolVLM: the processor pads every sample to the same number of crops
with all-zero crops, which transformers drops before the tower. Which crops are real is read
here, beside the graph (the graph then gathers them: its shapes follow this index, not the data)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    size, patch = params["size"], params["patch"]
    return {
        "height": Axis("height", patch, size, size, multiple_of=patch),
        "width": Axis("width", patch, size, size, multiple_of=patch),
        "batch": Axis("batch", 1, 1, params.get("max_batch", 16)),
        "crops": Axis("crops", 1, params.get("opt_crops", 1), params.get("max_crops", 17)),
        "real_crops": Axis("real_crops", 1, params.get("opt_crops", 1), params.get("max_batch", 16) * params.get("max_crops", 17)),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    """What the processor gives: Idefics2 pads a batch to its largest image, of any size (the tower
    reads whole patches; the rest is cut beside the graph, which takes whole patches only)."""
    named = axes(params)
    if params.get("any_size"):
        named = {k: dataclasses.replace(v, multiple_of=1) if k in ("height", "width") else v for k, v in named.items()}
    return _given(params, named)


def _given(params: dict[str, Any], named: dict[str, Axis]) -> list[TensorSpec]:
    height, width = (named["height"], named["width"]) if params.get("any_size") else (params["size"], params["size"])
    return [
        TensorSpec("pixel_values", (named["batch"], named["crops"], 3, height, width)),
        TensorSpec("pixel_attention_mask", (named["batch"], named["crops"], height, width), "int64", optional=True),
    ]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    given = [dataclasses.replace(s, optional=False) for s in _given(params, axes(params))]  # the graph always takes a mask, whole patches
    return [*given, TensorSpec("real_crops", (axes(params)["real_crops"],), "int64")]


def real(pixels: np.ndarray, keep_one: bool) -> np.ndarray:
    """[batch * crops] bool: a crop is padding when every value is exactly 0 (transformers' rule)."""
    flat = pixels.reshape(pixels.shape[0] * pixels.shape[1], -1)
    found = (flat != 0).any(1)
    if not found.any():
        if not keep_one:
            raise InputError("every crop of pixel_values is padding (all zeros); there is no image to encode")
        found[0] = True  # SmolVLM keeps the first crop of an all-padding batch
    return found


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    pixels = feeds["pixel_values"]
    mask = feeds.get("pixel_attention_mask")
    if mask is None:  # as transformers: every pixel of every crop is real
        mask = np.ones(tuple(pixels.shape[:2]) + tuple(pixels.shape[3:]), np.int64)
    if tuple(mask.shape) != tuple(pixels.shape[:2]) + tuple(pixels.shape[3:]):
        raise InputError(f"pixel_attention_mask has shape {list(mask.shape)}; it must be [batch, crops, H, W] of pixel_values {list(pixels.shape)}")
    found = real(pixels, params.get("keep_one", False))
    height, width = (pixels.shape[3] // params["patch"] * params["patch"], pixels.shape[4] // params["patch"] * params["patch"])
    if height < 1 or width < 1:
        raise InputError(f"pixel_values crops of {pixels.shape[3]}x{pixels.shape[4]} hold no whole {params['patch']}-pixel patch")
    pixels, mask = pixels[..., :height, :width], mask[..., :height, :width]  # what transformers' patch embedding and mask unfold read
    return {"pixel_values": pixels, "pixel_attention_mask": mask, "real_crops": np.flatnonzero(found).astype(np.int64)}


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Tokens transformers hands the LLM per sample (its real crops times tokens per crop)."""
    pixels = feeds["pixel_values"]
    found = real(pixels, params.get("keep_one", False)).reshape(pixels.shape[0], pixels.shape[1])
    return [int(n) * params["tokens_per_crop"] for n in found.sum(1)]
