"""The fp32 PyTorch reference an artifact is checked against: resolved from a connector name,
preset and weights at export, and rebuilt from the artifact's record afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

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
    grid: Any = None  # grids.GridInputs: graph inputs derived beside the graph from the processor's tensors
    source: WeightsRecord | None = None  # where a model folder's weights came from
    _export: nn.Module | None = None  # the form that exports, where it is not the reference itself
    rebuild: Callable[[], "Reference"] | None = None  # a model folder's reference, read again

    @property
    def module(self) -> nn.Module:
        if self._module is None:
            if self.rebuild is not None:
                again = self.rebuild()
                self._module, self._export = again._module, again._export
            else:
                self._module = build_module(self.connector, self.config, self.weights)
        assert self._module is not None
        return self._module

    @property
    def exported(self) -> nn.Module:
        """What torch.onnx exports: the reference itself unless a family needs another form."""
        module = self.module
        return self._export if self._export is not None else module

    def graph_inputs(self) -> list:
        """The graph's own inputs (the derived ones where the grid is derived beside it)."""
        return list(self.grid.inputs) if self.grid is not None else self.connector.inputs(self.config)

    def release_module(self) -> None:
        """Let the PyTorch module go (its outputs were computed); `module` would rebuild it."""
        self._module = self._export = None

    def runner(self) -> TorchRunner:
        names = [s.name for s in self.connector.outputs(self.config)]
        return TorchRunner(self.module, [s.name for s in self.connector.inputs(self.config)], names)

    def cases(self, shapes: list[dict[str, int]] | None = None) -> list[Case]:
        if self.connector.samples is not None:  # a model folder's processor layout: valid samples only
            if shapes:
                raise UsageError("--shape does not apply to a model folder's artifact (its inputs must agree with each other); pass --inputs FILE.npz")
            return [Case(self.connector.sizes_of(self.config, s), {k: v.numpy() for k, v in s.items()}) for s in self.connector.samples(self.config)]
        for sizes in shapes or []:
            self.connector.check_sizes(self.config, sizes)
        return cases_at_shapes(self.connector, self.config, shapes or self.connector.parity_shapes(self.config))

    def weights_record(self) -> WeightsRecord:
        if self.source is not None and self.source.fingerprint:  # a model folder: the parts it read
            return self.source
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


def from_record(artifact: Path, record: ArtifactRecord, weights: str | Path | None = None) -> Reference:
    """The module an artifact was exported from, rebuilt from its record (and checked against
    the weights digest it names). A model folder's artifact is rebuilt by mmexport.hf.rebuild."""
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
