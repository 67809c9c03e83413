"""Gemma 4: flat patches of each image padded to the batch's patch count, with image_position_ids
[images, patches, 2] holding each patch's (column, row), -1 for padding. The tower reads them as
they are; derived here: the soft token each patch averages into (its k x k block, numbered
row-major over the image's blocks, as transformers numbers them) and which soft tokens of the
padded batch are an image's, so the graph pools with a matmul and gathers instead of
transformers' data-dependent selection. Videos (`names`: pixel_values_videos, video_position_ids): the
same tower on every frame, a frame being an image here; num_frames_per_video only groups the
frames' soft tokens per clip, as get_video_features splits them."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import Axis, TensorSpec

MAX_IMAGES = 64
IMAGES = {"pixels": "pixel_values", "positions": "image_position_ids"}  # what the processor calls them; videos: params["names"]


def names(params: dict[str, Any]) -> dict[str, str]:
    return params.get("names", IMAGES)


def axes(params: dict[str, Any]) -> dict[str, Axis]:
    unit, top = params["kernel"] ** 2, params["max_patches"]
    images = params.get("max_images", MAX_IMAGES)
    rows = "frames" if names(params).get("videos") else "images"  # a video's row is a frame of a clip
    return {
        "images": Axis(rows, 1, 1, images),
        "patches": Axis("patches", unit, min(top, params.get("opt_patches", top)), top, multiple_of=unit),
        "tokens": Axis("tokens", 1, max(1, min(top, 2520) // unit), images * top // unit),
    }


def tower_inputs(params: dict[str, Any]) -> list[TensorSpec]:
    named, called = axes(params), names(params)
    return [
        TensorSpec(called["pixels"], (named["images"], named["patches"], params["patch_dim"])),
        TensorSpec(called["positions"], (named["images"], named["patches"], 2), "int64"),
    ]


def inputs(params: dict[str, Any]) -> list[TensorSpec]:
    """What the processor gives (a video's frame counts too: they only group its soft tokens)."""
    videos = names(params).get("videos")
    counts = [TensorSpec(videos, (Axis("videos", 1, 1, axes(params)["images"].max),), "int64")] if videos else []
    return tower_inputs(params) + counts


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    named = axes(params)
    return [
        *tower_inputs(params),
        TensorSpec("pool_index", (named["images"], named["patches"]), "int64"),
        TensorSpec("keep_index", (named["tokens"],), "int64"),
    ]


def checked_positions(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    called, unit = names(params), params["kernel"] ** 2
    positions = np.asarray(feeds[called["positions"]]).astype(np.int64)
    pixels = feeds[called["pixels"]]
    if positions.ndim != 3 or positions.shape != (*pixels.shape[:2], 2):
        raise InputError(f"{called['positions']} must be [images, patches, 2] beside {called['pixels']} {list(pixels.shape)}, got {list(positions.shape)}")
    if pixels.shape[1] % unit:
        raise InputError(f"{pixels.shape[1]} patches per image: the processor pads to a multiple of {unit} (pooling kernel squared)")
    if ((positions < 0) & (positions != -1)).any():
        raise InputError(f"{called['positions']}: positions are (column, row) >= 0, and -1 for padding; pass the processor's tensors")
    return positions


def _slots(positions: np.ndarray, kernel: int) -> np.ndarray:
    """[images, patches]: the soft token of each patch (padding, clamped to (0, 0), lands in slot 0
    with zero states, as in transformers)."""
    clamped = np.maximum(positions, 0)
    width = clamped[..., 0].max(axis=1, keepdims=True) + 1
    return clamped[..., 0] // kernel + (width // kernel) * (clamped[..., 1] // kernel)


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    kernel, called = params["kernel"], names(params)
    positions = checked_positions(feeds, params)
    slots = _slots(positions, kernel)
    length = positions.shape[1] // kernel**2
    if (slots >= length).any():
        raise InputError(f"image_position_ids place patches past the {length} soft tokens their padding allows; pass the processor's tensors")
    keep = [image * length + np.unique(row) for image, row in enumerate(slots)]
    frames_per_video(feeds, params, len(positions))
    return {called["pixels"]: feeds[called["pixels"]], called["positions"]: positions, "pool_index": slots, "keep_index": np.concatenate(keep)}


def frames_per_video(feeds: dict[str, np.ndarray], params: dict[str, Any], frames: int) -> list[int]:
    """Frames of each clip (videos), or one per image; they must add up to the frames given."""
    videos = names(params).get("videos")
    if videos is None or videos not in feeds:
        return [1] * frames if videos is None else [frames]
    counts = [int(n) for n in np.asarray(feeds[videos]).reshape(-1)]
    if min(counts, default=0) < 1 or sum(counts) != frames:
        raise InputError(f"{videos} {counts} must be positive and add up to the {frames} frames given; pass the video processor's tensors")
    return counts


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Soft tokens of each image (of each clip, its frames' together)."""
    slots = _slots(checked_positions(feeds, params), params["kernel"])
    tokens = np.array([len(np.unique(row)) for row in slots])
    ends = np.cumsum(frames_per_video(feeds, params, len(slots)))
    return [int(part.sum()) for part in np.split(tokens, ends[:-1])]
