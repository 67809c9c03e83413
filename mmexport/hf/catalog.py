"""`mmexport list --models`: what works for each model type, generated from the family registry."""

from __future__ import annotations

from typing import Any

from .. import precisions
from . import family, model_types


def _connector(found: Any) -> str | None:
    if found.connector is None:
        return None
    return " + ".join(found.connector) if isinstance(found.connector, tuple) else found.connector


def entry(model_type: str) -> dict[str, Any]:
    found = family(model_type)
    assert found is not None
    return {
        "model_type": model_type,
        "connector": _connector(found),  # the connector-only graph: transformers' module(s) of that name
        "vision_side": True,
        "inputs": list(found.images.names),  # what the processor returns, by name
        "derived_beside_graph": getattr(found.images, "derives", None),
        "reference": "get_image_features" if found.reference is None else "the family's path (no get_image_features to export)",
        "attach": {"connector": found.attach and found.connector is not None, "vision_side": found.attach and not found.attach_why_not},
        "precisions": ["fp32", *precisions.names()],
        "engines": ["tensorrt", "tensorrt-rtx"],
        "notes": list(found.notes) + ([] if found.attach else ["transformers' own forward fails in this version: use encoder_outputs"]),
    }


def catalog() -> list[dict[str, Any]]:
    return [entry(model_type) for model_type in model_types()]
