"""Write artifacts so that a failure or a kill leaves nothing half-written: files are made
in a hidden staging folder beside the destination and renamed into place at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import UsageError

STAGING_PREFIX = ".mmexport-staging-"


def check_writable(final: Path, option: str = "-o", folder_output: bool = False) -> Path:
    """A clear error now, not after minutes of work, for an output that cannot be written."""
    folder = final.parent
    if not folder.is_dir():
        raise UsageError(f"output folder does not exist: {folder}; create it first or choose another {option}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"output folder is not writable: {folder}; choose another {option}")
    if final.is_dir() and not folder_output:
        raise UsageError(f"output path is a folder: {final}; give a file name")
    if final.exists() and not final.is_dir() and folder_output:
        raise UsageError(f"output path is a file: {final}; give a folder name")
    return final


class Staging:
    """A staging folder next to `final`; `commit` renames its files to their final names, and
    `commit_folder` makes the staging folder itself `final` (a Triton model entry)."""

    def __init__(self, final: Path, folder_output: bool = False):
        self.final = check_writable(Path(final), folder_output=folder_output)
        self.dir = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.final.parent))

    def path(self, name: str | None = None) -> Path:
        """Where to write a file that becomes `final` (name None) or a sibling of it."""
        return self.dir / (name or self.final.name)

    def commit(self, order: list[str]) -> None:
        """Rename staged files into place, in `order` (the manifest last, so it never
        describes a file that is not there yet)."""
        for name in order:
            os.replace(self.dir / name, self.final.parent / name)
        self.discard()

    def commit_folder(self) -> None:
        """Replace `final` with the staging folder; the old one is removed only after the swap."""
        old = None
        if self.final.exists():
            old = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.final.parent)) / "old"
            os.replace(self.final, old)
        os.replace(self.dir, self.final)
        if old is not None:
            shutil.rmtree(old.parent, ignore_errors=True)

    def keep_as(self, folder: Path) -> Path:
        """Keep the staged files, as they are, in a folder for inspection."""
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(self.dir, folder)
        return folder

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_json(final: Path, data: object) -> None:
    """A JSON file written whole or not at all."""
    import json

    with Staging(final) as staging:
        staging.path().write_text(json.dumps(data, indent=2) + "\n")
        staging.commit([final.name])
