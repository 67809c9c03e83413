"""Read a Hugging Face model folder: config.json says the family, the connector and its dims."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import family, model_types
from .base import Family


@dataclass
class Detected:
    family: Family
    model_type: str
    config: Any  # the connector's config
    settings: dict[str, Any]
    hf_config: Any = None  # the transformers config it was read from

    def record(self, folder: Path | None = None) -> dict[str, Any]:
        """The artifact record's `model` entry."""
        entry = {"model_type": self.model_type, "settings": self.settings, "feeds": self.family.feeds}
        return entry | ({"folder": str(folder.resolve())} if folder else {})


def unsupported(model_type: str) -> UsageError:
    return UsageError(f"model_type '{model_type}' is not supported; mmexport reads: {', '.join(model_types())}")


def from_config(hf_config: Any) -> Detected:
    """From a loaded transformers config (a model's `.config`)."""
    model_type = getattr(hf_config, "model_type", None) or "?"
    found = family(model_type)
    if found is None:
        raise unsupported(model_type)
    return Detected(found, model_type, found.config(hf_config), {"model_type": model_type} | found.settings(hf_config), hf_config)


def detect(folder: str | Path) -> Detected:
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise UsageError(f"no config.json in {folder}; --model takes a Hugging Face model folder")
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"{path} is not a JSON object: {exc}") from exc
    if family(str(model_type)) is None:
        raise unsupported(str(model_type))
    try:
        from transformers import AutoConfig
    except ImportError as exc:
        raise UsageError("--model needs transformers: pip install 'mmexport[features]'") from exc
    try:
        hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"transformers cannot read {path}: {str(exc).splitlines()[0]}") from exc
    return from_config(hf_config)
