"""The fp32 PyTorch reference an artifact is checked against: resolved from a connector name,
preset and weights at export, and rebuilt from the artifact's record afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn

from . import connectors
from .connectors import Connector
from .connectors.loading import ConnectorWeights, build_module, load_weights, weights_fingerprint
from .errors import UsageError
from .parity import Case, TorchRunner, cases_at_shapes
from .record import ArtifactRecord, WeightsRecord


@dataclass
class Reference:
    connector: Connector
    preset: str
    config: Any
    weights: ConnectorWeights | None
    warnings: list[str] = field(default_factory=list)
    model: dict[str, Any] | None = None  # a Hugging Face folder's model_type and settings
    _module: nn.Module | None = None

    @property
    def module(self) -> nn.Module:
        if self._module is None:
            self._module = build_module(self.connector, self.config, self.weights)
        return self._module

    def release_module(self) -> None:
        """Let the PyTorch module go (its outputs were computed); `module` would rebuild it."""
        self._module = None

    def runner(self) -> TorchRunner:
        names = [s.name for s in self.connector.outputs(self.config)]
        return TorchRunner(self.module, [s.name for s in self.connector.inputs(self.config)], names)

    def cases(self, shapes: list[dict[str, int]] | None = None) -> list[Case]:
        for sizes in shapes or []:
            self.connector.check_sizes(self.config, sizes)
        return cases_at_shapes(self.connector, self.config, shapes or self.connector.parity_shapes(self.config))

    def weights_record(self) -> WeightsRecord:
        w = self.weights
        fingerprint = weights_fingerprint(self.module.state_dict())
        if w is None:
            return WeightsRecord(fingerprint=fingerprint)
        return WeightsRecord("checkpoint", None, w.path, w.layout, w.digest, w.ignored_keys, w.layer, fingerprint)


def _differences(config: Any, preset_config: Any) -> list[tuple[str, Any, Any]]:
    """(field, value in the weights, value in the preset) wherever they differ."""
    return [
        (f.name, getattr(config, f.name), getattr(preset_config, f.name)) for f in fields(config) if getattr(config, f.name) != getattr(preset_config, f.name)
    ]


def resolve(connector_name: str, preset: str | None, weights_path: str | Path | None, layer: int | None = None) -> Reference:
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
        return Reference(connector, preset, preset_config, None, ["no --weights given: the connector has random weights (seed 0)"])
    loaded = load_weights(connector, weights_path, preset_config, layer)
    differences = _differences(loaded.config, preset_config)
    if differences and explicit:
        shown = "; ".join(f"{name}={weights} in the weights, {value} in the preset" for name, weights, value in differences)
        raise UsageError(
            f"--preset {preset} does not match the weights ({shown}); drop --preset to take the dims from the weights, or name the preset they belong to"
        )
    notes = [f"{name}={weights} from the weights overrides the preset's {value}" for name, weights, value in differences]
    return Reference(connector, preset, loaded.config, loaded, notes)


def check_against_config(from_weights: Any, from_config: Any, folder: Path) -> None:
    differences = _differences(from_weights, from_config)
    if differences:
        shown = "; ".join(f"{name}={weights} in the weights, {value} in config.json" for name, weights, value in differences)
        raise UsageError(f"{folder}: the weights do not match config.json ({shown})")


def from_model(folder: str | Path) -> Reference:
    """Connector, dims and weights from a Hugging Face model folder: config.json chooses the
    connector and its dims; only the connector's tensors are read from the (sharded) weights,
    and they must agree with config.json."""
    from .hf.folder import detect

    folder = Path(folder)
    found = detect(folder)
    connector = connectors.get(found.family.connector)
    loaded = load_weights(connector, folder, found.config)
    check_against_config(loaded.config, found.config, folder)
    notes = [f"model_type {found.model_type}: connector '{connector.name}', graph input = {found.family.feeds}", *found.family.notes]
    return Reference(connector, folder.resolve().name, found.config, loaded, notes, found.record(folder))


def from_record(artifact: Path, record: ArtifactRecord, weights: str | Path | None = None) -> Reference:
    """The module an artifact was exported from, rebuilt from its record (and checked against
    the weights digest it names)."""
    if record.model and record.model.get("vision_tower"):
        return _vision_side(artifact, record)
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
    return Reference(connector, record.preset, config, loaded)


def _vision_side(artifact: Path, record: ArtifactRecord) -> Reference:
    """A vision-side artifact's reference: rebuilt from the model folder it was exported from."""
    from .connectors.loading import same_weights
    from .hf.vision import reference as vision_reference

    assert record.model is not None
    folder = Path(record.model.get("folder", ""))
    if not (folder / "config.json").is_file():
        raise UsageError(f"{artifact.name} was exported from the model folder {folder}, which is not there; it is needed to check the vision side")
    ref = vision_reference(folder)
    if record.weights.fingerprint and not same_weights(ref.weights_record().fingerprint or [], record.weights.fingerprint):
        raise UsageError(f"the weights in {folder} differ from those {artifact.name} was exported from; re-export it")
    return ref
