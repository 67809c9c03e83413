"""Graph inputs mmexport derives beside the graph from what a model's processor returns (image
grids, sizes, padding crops): one module per kind of derivation, one registry line each here.
The graph then has only static-form operators (Gather, MatMul, Softmax), which TensorRT takes."""

from __future__ import annotations

from types import ModuleType

from ..registry import Registry
from .base import Derivation, Derived, Feeds, Identity, groups

# kind -> module in this package defining derive(feeds, params), specs(params) and split(feeds, params)
REGISTRY: Registry[ModuleType] = Registry(
    "grid derivation",
    __name__,
    None,
    {
        "qwen": "qwen",
        "pixtral": "pixtral",
        "crops": "crops",
        "navit": "navit",
        "naflex": "naflex",
        "pooled": "pooled",
        "kept": "kept",
        "merge_sized": "merge_sized",
        "newlines": "newlines",
        "strips": "strips",
        "resampled": "resampled",
        "prefixed": "prefixed",
        "hd_crops": "hd_crops",
        "moonvit": "moonvit",
        "tubelets": "tubelets",
    },
)

__all__ = ["REGISTRY", "Derivation", "Derived", "Feeds", "Identity", "groups"]
