"""The fp32 PyTorch reference an artifact is checked against, rebuilt from its record: a model
folder's from that folder (mmexport.hf), a connector's from its name, dims and weights."""

from __future__ import annotations

from pathlib import Path

from .record import ArtifactRecord
from .reference import Reference, from_record


def reference_of(artifact: Path, record: ArtifactRecord, weights: str | Path | None = None) -> Reference:
    if record.model:
        from .hf.side import from_folder_record

        return from_folder_record(artifact, record)
    return from_record(artifact, record, weights)
