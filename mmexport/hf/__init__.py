"""Hugging Face model folders: a family per module (a short declaration, hf/family.py), one
registry line per model type here; what families share is in side.py, model.py and attach.py."""

from __future__ import annotations

import importlib

from .family import Family

# model_type -> module in this package holding its FAMILY
_FAMILIES = {
    "llava": "llava",
    "llava_next": "llava_next",
    "llava_onevision": "llava_next",
    "vipllava": "vipllava",
    "paligemma": "paligemma",
    "gemma3": "gemma3",
    "shieldgemma2": "gemma3",
    "blip-2": "blip2",
    "instructblip": "instructblip",
    "idefics2": "idefics2",
    "idefics3": "idefics3",
    "smolvlm": "smolvlm",
    "internvl": "internvl",
    "aya_vision": "aya_vision",
    "cohere2_vision": "cohere2_vision",
    "llama4": "llama4",
    "mllama": "mllama",
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",
    "glm4v": "glm4v",
    "mistral3": "mistral3",
}


def model_types() -> list[str]:
    return list(_FAMILIES)


def family(model_type: str) -> Family | None:
    if model_type not in _FAMILIES:
        return None
    return importlib.import_module(f"{__name__}.{_FAMILIES[model_type]}").FAMILY


__all__ = ["Family", "family", "model_types"]
