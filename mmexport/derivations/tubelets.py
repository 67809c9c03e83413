"""Nemotron-H Omni's video: pixel_values_videos [clips, tubelets, T*C, H, W], each tubelet T
consecutive frames stacked along the channels, every clip of a call one size and length (one
tensor). transformers runs the tower densely on each tubelet; that is the packed image path
(derivations/prefixed.py) with one grid per tubelet, so the tubelets are cut into patch rows
here (channel-major, as the image processor lays them out) and the rest is derived as for images."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec
from . import prefixed

NAME = "pixel_values_videos"


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    unit = 2 * params["patch"]  # whole 2x2 shuffle blocks
    top = params["side"] * params["patch"]
    return prefixed.axes(params) | {
        "clips": Axis("clips", 1, 1, params.get("max_clips", 16)),
        "tubelets": Axis("tubelets", 1, 8, params.get("max_tubelets", 64)),
        "height": Axis("height", unit, min(448 // unit * unit, top), top, multiple_of=unit),
        "width": Axis("width", unit, min(448 // unit * unit, top), top, multiple_of=unit),
    }


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [TensorSpec(NAME, (named["clips"], named["tubelets"], params["channels"], named["height"], named["width"]))]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    rows = TensorSpec(NAME, (axes(params)["patches"], params["patch_dim"]))
    return [rows, *prefixed.specs(params)[1:]]


def _packed(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    video = np.asarray(feeds[NAME])
    patch = params["patch"]
    if video.ndim != 5 or video.shape[2] != params["channels"]:
        raise InputError(f"{NAME} must be [clips, tubelets, {params['channels']}, H, W] (frames stacked in tubelets); got {list(video.shape)}")
    clips, tubelets, channels, height, width = video.shape
    if height % (2 * patch) or width % (2 * patch):
        raise InputError(f"{NAME} frames of {height}x{width}: sides must be multiples of {2 * patch} (whole 2x2 blocks of patches)")
    rows, cols = height // patch, width // patch
    patches = video.reshape(clips * tubelets, channels, rows, patch, cols, patch).transpose(0, 2, 4, 1, 3, 5)
    grid = np.tile([rows, cols], (clips * tubelets, 1)).astype(np.int64)
    return {"pixel_values": patches.reshape(-1, channels * patch * patch), "image_grid_hw": grid}


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    out = prefixed.derive(_packed(feeds, params), params)
    out[NAME] = out.pop("pixel_values")
    return out


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Tokens of each clip (its tubelets' together), as get_video_features hands them on."""
    clips, tubelets, _, height, width = np.asarray(feeds[NAME]).shape
    return [tubelets * (height // params["patch"]) * (width // params["patch"]) // 4] * clips
