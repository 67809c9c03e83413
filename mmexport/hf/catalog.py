"""`mmexport list --models`: what works for each model type, generated from the family registry."""

from __future__ import annotations

from typing import Any

from .. import precisions
from . import family, model_types
from .family import Family


def entry(model_type: str, found: Family) -> dict[str, Any]:
    return {
        "model_type": model_type,
        "connector": " + ".join(found.connector) if found.connector else None,  # the connector-only graph: transformers' module(s) of that name
        "vision_side": True,
        "inputs": list(found.images.names),  # what the processor returns, by name
        "derived_beside_graph": found.images.derives,
        "reference": "get_image_features" if found.reference is None else "the family's path (no get_image_features to export)",
        "attach": {"connector": found.attach and found.connector is not None, "vision_side": found.attach and not found.attach_why_not},
        "precisions": ["fp32", *precisions.names()],
        "engines": ["tensorrt", "tensorrt-rtx"],
        "notes": list(found.notes) + ([] if found.attach else ["transformers' own forward fails in this version: use encoder_outputs"]),
    }


def catalog() -> list[dict[str, Any]]:
    rows = []
    for model_type in model_types():
        found = family(model_type)
        assert found is not None  # listed by the registry
        rows.append(entry(model_type, found))
    return rows
