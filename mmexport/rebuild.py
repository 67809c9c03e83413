"""The subject an artifact covers, rebuilt from its record: the one place that reads which kind of
record section it has (a model folder's part is rebuilt from that folder by mmexport.hf; a
connector from its name, dims and weights)."""

from __future__ import annotations

from pathlib import Path

from .record import ArtifactRecord
from .subjects import Subject
from .subjects.connector import from_record


def subject_of(artifact: Path, record: ArtifactRecord, weights: str | Path | None = None) -> Subject:
    if record.model is not None:
        from .hf.subject import from_record as from_folder

        return from_folder(artifact, record)
    return from_record(artifact, record, weights)
