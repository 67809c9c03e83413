"""Hugging Face model folders: detect the connector from config.json (one family per module,
one registry line each), export it with the dims and settings the folder holds, and attach an
artifact inside a loaded transformers model."""

from __future__ import annotations

import importlib

from .base import Family

# model_type -> (module in this package, attribute holding its Family)
_FAMILIES = {
    "llava": ("llava", "FAMILY"),
    "llava_next": ("llava", "FAMILY"),
    "llava_onevision": ("llava", "FAMILY"),
    "blip-2": ("blip2", "BLIP2"),
    "instructblip": ("blip2", "INSTRUCTBLIP"),
    "paligemma": ("paligemma", "FAMILY"),
    "idefics2": ("idefics2", "FAMILY"),
    "qwen2_vl": ("qwen2_vl", "FAMILY"),
    "qwen2_5_vl": ("qwen2_vl", "FAMILY"),
    "internvl": ("internvl", "FAMILY"),
}


def model_types() -> list[str]:
    return list(_FAMILIES)


def family(model_type: str) -> Family | None:
    if model_type not in _FAMILIES:
        return None
    module, name = _FAMILIES[model_type]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["Family", "family", "model_types"]
