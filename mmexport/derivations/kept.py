"""Gemma 4 Unified: merged patches of each image padded to the batch's count, with
image_position_ids (-1 for padding) as Gemma 4's (derivations/pooled.py), but no pooling: each
patch is a soft token. Derived here: which rows of the padded batch are an image's, in the
processor's order, so the graph gathers them instead of transformers' data-dependent mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..specs import TensorSpec
from .pooled import axes, checked_positions, frames_per_video, inputs, names, tower_inputs

__all__ = ["axes", "derive", "inputs", "specs", "split"]


def specs(params: dict[str, Any]) -> list[TensorSpec]:
    return [*tower_inputs(params), TensorSpec("keep_index", (axes(params)["tokens"],), "int64")]


def derive(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    called = names(params)
    positions = checked_positions(feeds, params)
    if positions.max(initial=0) >= params["max_position"]:
        raise InputError(f"{called['positions']} reach {positions.max()}; the position table has {params['max_position']} rows; pass the processor's tensors")
    valid = (positions != -1).all(-1)
    frames_per_video(feeds, params, len(valid))
    keep = np.flatnonzero(valid.reshape(-1)).astype(np.int64)
    return {called["pixels"]: feeds[called["pixels"]], called["positions"]: positions, "keep_index": keep}


def split(feeds: dict[str, np.ndarray], params: dict[str, Any]) -> list[int]:
    """Soft tokens of each image (of each clip, its frames' together)."""
    tokens = (checked_positions(feeds, params) != -1).all(-1).sum(-1)
    ends = np.cumsum(frames_per_video(feeds, params, len(tokens)))
    return [int(part.sum()) for part in np.split(tokens, ends[:-1])]
