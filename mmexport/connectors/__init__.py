"""The connector registry: one module per family, one line each here."""

from __future__ import annotations

from ..registry import Registry
from .base import BATCH_AXES, Axis, Connector, KeyLayout, TensorSpec, Tolerance

# CLI name -> module in this package that defines CONNECTOR.
REGISTRY: Registry[Connector] = Registry(
    "connector",
    __name__,
    "CONNECTOR",
    {
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
    },
)
names, get, all_connectors = REGISTRY.names, REGISTRY.get, REGISTRY.all

__all__ = ["BATCH_AXES", "Axis", "Connector", "KeyLayout", "TensorSpec", "Tolerance", "all_connectors", "get", "names"]
