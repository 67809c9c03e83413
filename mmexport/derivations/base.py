"""The adapter between what a user passes (a processor's tensors) and what a graph takes: the
identity where the graph takes the inputs as they are, or a derivation mmexport computes beside
the graph (grid positions, attention groups, real crops). Every stage applies it the same way;
the one grouping rule every attention pattern uses is here too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import InputError, UsageError
from ..specs import TensorSpec

Feeds = dict[str, np.ndarray]


class Derivation(Protocol):
    @property
    def inputs(self) -> tuple[TensorSpec, ...]: ...  # what the graph itself takes

    @property
    def beside_graph(self) -> bool: ...  # False: the graph takes the user's inputs as they are

    @property
    def recorded(self) -> "Derived | None": ...  # what the artifact record keeps (nothing for the identity)

    def __call__(self, feeds: Feeds) -> Feeds: ...

    def split(self, feeds: Feeds) -> list[int]: ...  # tokens of each image (or sample), where outputs are packed

    def describe(self) -> str | None: ...


@dataclass(frozen=True)
class Identity:
    """The graph takes the inputs as they are."""

    inputs: tuple[TensorSpec, ...]
    beside_graph = False

    @property
    def recorded(self) -> "Derived | None":
        return None

    def __call__(self, feeds: Feeds) -> Feeds:
        return feeds

    def split(self, feeds: Feeds) -> list[int]:
        raise UsageError("this artifact's outputs are one row per input row, not packed: there is nothing to split")

    def describe(self) -> str | None:
        return None


@dataclass(frozen=True)
class Derived:
    """The graph's inputs, derived from the processor's tensors by `mmexport.derivations.<kind>`
    (`derive(feeds, params)`, `specs(params)`, `split(feeds, params)`)."""

    kind: str
    params: dict[str, Any]
    inputs: tuple[TensorSpec, ...]
    beside_graph = True

    @property
    def recorded(self) -> "Derived | None":
        return self

    @property
    def module(self) -> Any:
        from . import REGISTRY

        return REGISTRY.get(self.kind)

    def __call__(self, feeds: Feeds) -> Feeds:
        derived = self.module.derive(feeds, self.params)
        for spec in self.inputs:  # the graph's own ranges (an engine's profiles follow them)
            try:
                spec.check_shape(derived[spec.name].shape, "request")
            except UsageError as exc:
                raise InputError(f"{exc}; the request is larger than the artifact takes") from None
        return {spec.name: derived[spec.name] for spec in self.inputs}

    def split(self, feeds: Feeds) -> list[int]:
        """Tokens of each image (or sample), in order: how transformers splits the output."""
        return self.module.split(feeds, self.params)

    def describe(self) -> str | None:
        return f"graph inputs derived beside the graph ({self.kind}): {', '.join(s.name for s in self.inputs)}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params, "inputs": [s.to_json() for s in self.inputs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Derived":
        return cls(str(data["kind"]), dict(data["params"]), tuple(TensorSpec.from_json(s) for s in data["inputs"]))

    @classmethod
    def of(cls, kind: str, params: dict[str, Any]) -> "Derived":
        from . import REGISTRY

        return cls(kind, params, tuple(REGISTRY.get(kind).specs(params)))


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
