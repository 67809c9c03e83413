"""`mmexport list --models`: what works for each model type, generated from the family registry;
with `--all`, every image-text-to-text type of the installed transformers: declared, verified
through transformers' own path, or refused with its cause (coverage.json, which
scripts/coverage.py writes from tiny folders of each type)."""

from __future__ import annotations

import json
from pathlib import Path
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


COVERAGE = Path(__file__).with_name("coverage.json")


def _verified() -> tuple[str | None, dict[str, dict[str, Any]]]:
    if not COVERAGE.is_file():
        return None, {}
    data = json.loads(COVERAGE.read_text())
    return data.get("transformers"), {row["model_type"]: row for row in data["rows"]}


def coverage() -> list[dict[str, Any]]:
    """One row per type: status declared / automatic / refused / untried, and the cause where not verified."""
    from .automatic import image_text_types

    version, verified = _verified()
    rows = []
    for model_type in sorted(set(image_text_types()) | set(model_types())):
        if family(model_type) is not None:
            rows.append({"model_type": model_type, "status": "declared", "cause": None})
            continue
        row = verified.get(model_type)
        if row is None or row["status"] == "declared":  # a type new since the table, or a declaration this build lacks
            cause = f"not in the coverage table (made with transformers {version}); try: mmexport onnx --model DIR --vision-tower"
            rows.append({"model_type": model_type, "status": "untried", "cause": cause})
            continue
        rows.append({"model_type": model_type, "status": row["status"], "cause": row.get("cause")})
    return rows
