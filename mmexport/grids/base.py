"""What a derivation is (kind, parameters, the graph inputs it makes) and the one grouping rule
every attention pattern uses: patches that attend to each other are gathered into one padded row."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, UsageError
from ..specs import TensorSpec


@dataclass(frozen=True)
class GridInputs:
    """The graph's inputs, derived from the processor's tensors by `mmexport.grids.<kind>`."""

    kind: str
    params: dict[str, Any]
    inputs: tuple[TensorSpec, ...]  # what the graph itself takes

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        module = importlib.import_module(f"{__package__}.{self.kind}")
        derived = module.derive(feeds, self.params)
        for spec in self.inputs:  # the graph's own ranges (an engine's profiles follow them)
            try:
                spec.check_shape(derived[spec.name].shape, "request")
            except UsageError as exc:
                raise InputError(f"{exc}; the request is larger than the artifact takes") from None
        return {spec.name: derived[spec.name] for spec in self.inputs}

    def split(self, feeds: dict[str, np.ndarray]) -> list[int]:
        """Tokens of each image (or sample), in order: how transformers splits the output."""
        return importlib.import_module(f"{__package__}.{self.kind}").split(feeds, self.params)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params, "inputs": [s.to_json() for s in self.inputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GridInputs":
        return cls(str(data["kind"]), dict(data["params"]), tuple(TensorSpec.from_json(s) for s in data["inputs"]))


def groups(ids: np.ndarray, length: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patches with the same group id attend only to each other. Returns `index` [groups, L]
    (the patch in each slot; padding slots point at patch 0), `valid` [groups, L] (False on
    padding: masked as a key, its query row discarded) and `inverse` [patches] (each patch's
    slot in the flattened [groups * L]). Group ids must be 0..G-1, each used."""
    counts = np.bincount(ids)
    size = int(length or counts.max())
    order = np.argsort(ids, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(ids))
    slot = rank - (np.cumsum(counts) - counts)[ids]
    index = np.zeros((len(counts), size), np.int64)
    valid = np.zeros((len(counts), size), np.bool_)
    index[ids, slot] = np.arange(len(ids))
    valid[ids, slot] = True
    return index, valid, (ids * size + slot).astype(np.int64)
