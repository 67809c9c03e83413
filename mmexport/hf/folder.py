"""Read a Hugging Face model folder: config.json says the model type, and with it the family."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import family, model_types
from .family import Family


@dataclass
class Detected:
    family: Family
    model_type: str
    hf_config: Any  # the transformers config

    @property
    def settings(self) -> dict[str, Any]:
        """What the record keeps of config.json: the settings that decide the vision side."""
        values = {name: _plain(getattr(self.hf_config, name, None)) for name in self.family.settings}
        return {k: v for k, v in values.items() if v is not None}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def unsupported(model_type: str) -> UsageError:
    return UsageError(
        f"model_type '{model_type}' is unknown to the installed transformers and has no declaration; "
        f"mmexport declares {', '.join(model_types())} (mmexport list --models --all)"
    )


def from_config(hf_config: Any, folder: str | Path | None = None) -> Detected:
    """From a loaded transformers config (a model's `.config`); a type with no declaration gets
    transformers' own path (automatic.py), or one line saying why it cannot."""
    model_type = getattr(hf_config, "model_type", None) or "?"
    found = family(model_type)
    if found is None:
        from .automatic import family_for

        found = family_for(hf_config, str(folder) if folder else None)
    return Detected(found, model_type, hf_config)


def detect(folder: str | Path) -> Detected:
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise UsageError(f"no config.json in {folder}; --model takes a Hugging Face model folder")
    try:
        model_type = json.loads(path.read_text()).get("model_type")
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"{path} is not a JSON object: {exc}") from exc
    declared = family(str(model_type))  # first: a plug-in family registers its model classes with transformers as it loads
    try:
        from transformers import AutoConfig
    except ImportError as exc:
        raise UsageError("--model needs transformers: pip install 'mmexport[features]'") from exc
    try:
        hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        if declared is None:
            raise unsupported(str(model_type)) from exc
        raise UsageError(f"transformers cannot read {path}: {str(exc).splitlines()[0]}") from exc
    return from_config(hf_config, folder)
