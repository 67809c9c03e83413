"""Graph inputs mmexport derives beside the graph from what a model's processor returns (image
grids, sizes, padding crops): one module per kind of derivation, one registry line each here.
The graph then has only static-form operators (Gather, MatMul, Softmax), which TensorRT takes."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import UsageError
from .base import GridInputs, groups

# kind -> module in this package defining derive(feeds, params) and specs(params)
_MODULES = {
    "qwen": "qwen",
    "pixtral": "pixtral",
    "crops": "crops",
}


def get(kind: str) -> ModuleType:
    if kind not in _MODULES:
        raise UsageError(f"unknown grid derivation '{kind}' in the record; re-export the artifact with this mmexport")
    return importlib.import_module(f"{__name__}.{_MODULES[kind]}")


__all__ = ["GridInputs", "get", "groups"]
