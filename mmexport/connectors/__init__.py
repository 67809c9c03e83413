"""The connector registry: one module per family, one line each here."""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import BATCH_AXES, Axis, Connector, KeyLayout, TensorSpec, Tolerance

# CLI name -> module in this package that defines CONNECTOR.
_MODULES = {
    "linear": "linear",
    "mlp": "mlp",
    "qformer": "qformer",
    "instructblip": "instructblip",
    "minigpt4": "minigpt4",
    "perceiver": "perceiver",
    "gated-xattn": "gated_xattn",
    "qwen-vl-resampler": "qwen_vl_resampler",
    "idefics2": "idefics2",
    "owl-abstractor": "owl_abstractor",
    "glu": "glu",
    "concat-linear": "concat_linear",
    "h-reducer": "h_reducer",
    "c-abstractor": "c_abstractor",
    "ldp": "ldp",
    "pixel-shuffle": "pixel_shuffle",
    "patch-merger": "patch_merger",
}


def names() -> list[str]:
    return list(_MODULES)


def get(name: str) -> Connector:
    if name not in _MODULES:
        raise UsageError(f"unknown connector '{name}'; choose one of: {', '.join(_MODULES)}")
    return importlib.import_module(f"{__name__}.{_MODULES[name]}").CONNECTOR


def all_connectors() -> list[Connector]:
    return [get(name) for name in _MODULES]


__all__ = ["BATCH_AXES", "Axis", "Connector", "KeyLayout", "TensorSpec", "Tolerance", "all_connectors", "get", "names"]
