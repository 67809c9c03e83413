"""A connector as a subject: mmexport's module of a connector family, its dims (a preset, or read
from the weights) and its weights (a checkpoint, or random from a fixed seed). Resolved from a
name, preset and weights at export; rebuilt from an artifact's record afterwards."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import connectors
from ..calibration.synthetic import DEFAULT_FAMILY, features, generated_pixels, outlier_features
from ..connectors import BATCH_AXES, Connector
from ..connectors.loading import ConnectorWeights, build_module, load_weights, weights_fingerprint
from ..derivations import Feeds, Identity
from ..errors import UsageError
from ..parity import Case
from ..record import ArtifactRecord, WeightsRecord
from ..specs import axes_of
from .base import Subject, as_numpy


class ConnectorSubject(Subject):
    def __init__(self, connector: Connector, preset: str, config: Any, weights: ConnectorWeights | None, warnings: list[str] | None = None):
        self.connector, self.preset, self.config, self.weights = connector, preset, config, weights
        self.name = connector.name
        self.inputs, self.outputs = connector.inputs(config), connector.outputs(config)
        self.derivation = Identity(tuple(self.inputs))
        self.tolerance, self.attention = connector.tolerance, connector.attention
        self.warnings = list(warnings or [])

    def build(self) -> tuple[nn.Module, nn.Module | None]:
        return build_module(self.connector, self.config, self.weights), None

    def cases(self, shapes: list[dict[str, int]] | None = None) -> list[Case]:
        """Seeded random inputs (not the export example) at each shape; `check` rebuilds them alike."""
        for sizes in shapes or []:
            self.connector.check_sizes(self.config, sizes)
        cases = []
        for i, sizes in enumerate(shapes or self.connector.parity_shapes(self.config)):
            cases.append(Case(dict(sizes), as_numpy(self.connector.dummy_inputs(self.config, sizes, seed=1 + i))))
        return cases

    def example(self) -> dict[str, torch.Tensor]:
        return self.connector.dummy_inputs(self.config, self.connector.example_sizes(self.config))

    def sizes(self, batch: int, tokens: int | None = None) -> dict[str, int]:
        """Every axis at its release size, the request axis at `batch` (and `tokens`), checked."""
        axes = axes_of(self.inputs)
        sizes = {name: axis.opt for name, axis in axes.items()}
        # the request axis: `batch`, or `crops`/`tiles` for connectors without one (DocOwl)
        batch_axis = next((name for name in BATCH_AXES if name in axes), None)
        fixed = ", ".join(f"{s.name} {s.describe()}" for s in self.inputs)
        if batch_axis:
            sizes[batch_axis] = batch
        elif batch != 1:
            raise UsageError(f"'{self.name}' has no batch axis ({fixed}): images are packed along tokens; use --tokens, not --batch")
        if tokens is not None:
            if "tokens" not in axes:
                raise UsageError(f"'{self.name}' takes a fixed number of tokens ({fixed}); drop --tokens")
            sizes["tokens"] = tokens
        self.connector.check_sizes(self.config, sizes)
        return sizes

    def request(self, images: int, seed: int = 0) -> Feeds:
        """Vision-feature-like values (outlier channels, heavy tails) so that a low-precision
        cosine means something; masks and ids as the connector's dummies."""
        sizes = self.sizes(images)
        arrays = as_numpy(self.connector.dummy_inputs(self.config, sizes, seed=7 + seed))
        for i, spec in enumerate(self.inputs):
            if spec.dtype.startswith("float"):
                arrays[spec.name] = outlier_features(spec.shape(sizes), seed=10_000 + seed + i)
        return arrays

    def bench_inputs(self, batch: int, tokens: int | None) -> tuple[Feeds, int | None]:
        sizes = self.sizes(batch, tokens)
        arrays = as_numpy(self.connector.dummy_inputs(self.config, sizes, seed=7))
        for i, spec in enumerate(self.inputs):
            if spec.dtype.startswith("float"):
                arrays[spec.name] = outlier_features(spec.shape(sizes), seed=10_000 + i)
        return arrays, sizes.get("tokens")

    def synthetic(self, count: int, family: str = DEFAULT_FAMILY) -> tuple[list[Feeds], str]:
        """Features of one family at each input's release size, deterministic (ids, masks: the dummies)."""
        sizes = {name: (1 if name in BATCH_AXES else axis.opt) for name, axis in axes_of(self.inputs).items()}
        others = as_numpy(self.connector.dummy_inputs(self.config, sizes))

        def value(spec: Any, seed: int) -> np.ndarray:
            if not spec.dtype.startswith("float"):
                return others[spec.name]
            shape = spec.shape(sizes)
            return generated_pixels(shape, seed) if spec.name == "pixel_values" else features(family, shape, seed=seed)

        samples = [{s.name: value(s, i * 7919 + j) for j, s in enumerate(self.inputs)} for i in range(count)]
        digest = hashlib.sha256(f"synthetic/{family}/0/{count}/{sorted(sizes.items())}".encode())
        return samples, "sha256:" + digest.hexdigest()

    def weights_record(self) -> WeightsRecord:
        w = self.weights
        fingerprint = weights_fingerprint(self.module.state_dict())
        if w is None:
            return WeightsRecord(fingerprint=fingerprint)
        return WeightsRecord("checkpoint", None, w.path, w.layout, w.digest, w.ignored_keys, w.layer, fingerprint)

    def describe_weights(self) -> str | None:
        w = self.weights
        return None if w is None else f"weights: {w.path} ({w.layout} layout, {len(w.state_dict)} connector tensors, {w.ignored_keys} other keys ignored)"


def _differences(config: Any, preset_config: Any) -> list[tuple[str, Any, Any]]:
    """(field, value in the weights, value in the preset) wherever they differ."""
    return [
        (f.name, getattr(config, f.name), getattr(preset_config, f.name)) for f in fields(config) if getattr(config, f.name) != getattr(preset_config, f.name)
    ]


def resolve(connector_name: str, preset: str | None, weights_path: str | Path | None, layer: int | None = None) -> ConnectorSubject:
    """Connector, dims and weights for an export. Without --preset the dims come from the
    weights (a note says where they differ from the default preset); an explicit --preset
    that contradicts the weights is a usage error naming both values."""
    connector = connectors.get(connector_name)
    explicit = preset is not None
    preset = preset or connector.default_preset
    preset_config = connector.preset(preset)
    if layer is not None and not weights_path:
        raise UsageError("--layer picks a layer of a checkpoint; give --weights too")
    if not weights_path:
        return ConnectorSubject(connector, preset, preset_config, None, ["no --weights given: the connector has random weights (seed 0)"])
    loaded = load_weights(connector, weights_path, preset_config, layer)
    differences = _differences(loaded.config, preset_config)
    if differences and explicit:
        shown = "; ".join(f"{name}={weights} in the weights, {value} in the preset" for name, weights, value in differences)
        raise UsageError(
            f"--preset {preset} does not match the weights ({shown}); drop --preset to take the dims from the weights, or name the preset they belong to"
        )
    notes = [f"{name}={weights} from the weights overrides the preset's {value}" for name, weights, value in differences]
    return ConnectorSubject(connector, preset, loaded.config, loaded, notes)


def from_record(artifact: Path, record: ArtifactRecord, weights: str | Path | None = None) -> ConnectorSubject:
    """The module an artifact was exported from, rebuilt from its record (and checked against
    the weights digest it names)."""
    connector = connectors.get(record.connector)
    config = connector.config_from_dict(record.config)
    recorded = record.weights
    weights_path = weights or recorded.path
    if recorded.source == "checkpoint" and not weights_path:
        raise UsageError(f"{artifact} was exported from a checkpoint; pass --weights to check it")
    loaded = None
    if weights_path:
        if not Path(weights_path).exists():
            raise UsageError(f"the weights {artifact.name} was exported from are not at {weights_path}; pass --weights")
        loaded = load_weights(connector, weights_path, config, recorded.layer)
        if recorded.digest and loaded.digest != recorded.digest:
            raise UsageError(
                f"weights {weights_path} differ from those {artifact.name} was exported from "
                f"({loaded.digest[:19]} vs {recorded.digest[:19]}); pass the original --weights"
            )
        config = loaded.config
    return ConnectorSubject(connector, record.preset, config, loaded)
