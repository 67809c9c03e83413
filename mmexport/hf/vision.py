"""The whole vision side as one graph: `pixel_values` (what the model's image processor returns)
-> the transformers vision tower -> the feature selection transformers makes -> mmexport's
connector module -> the embeddings the LLM receives. Only the tower's and the connector's
tensors are read from the folder; the LLM's never are."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import connectors
from ..checkpoint import Checkpoint, open_checkpoint
from ..connectors import Connector, TensorSpec
from ..connectors.loading import build_module, load_weights
from ..errors import UsageError, WeightsError
from ..reference import Reference, check_against_config
from .base import require

Select = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (tower, pixel_values) -> the connector's features


@dataclass(frozen=True)
class Tower:
    """A family's vision side: how to build its tower, which tensor of it feeds the connector,
    and where transformers' forward asks for image features."""

    build: Callable[[Any], nn.Module]  # transformers config -> the tower, random weights
    select: Callable[[Any], Select]  # transformers config -> the selection
    owner: str  # "model": the inner model's get_image_features is called; "top": the top model's
    pooled: Callable[[torch.Tensor], Any] = lambda features: features  # graph output -> pooler_output
    # Families whose generate() bypasses get_image_features put the artifact in place otherwise.
    attach: Callable[[nn.Module, Any, Any], None] | None = None


def hidden_state(layer: int, drop_cls: bool) -> Select:
    def select(tower: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        out = tower(pixel_values=pixel_values, output_hidden_states=layer != -1)
        features = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
        return features[:, 1:] if drop_cls else features

    return select


class VisionSide(nn.Module):
    """pixel_values (and the connector's other inputs) -> LLM embeddings."""

    def __init__(self, tower: nn.Module, select: Select, connector: nn.Module):
        super().__init__()
        self.tower, self.connector = tower, connector
        self.select = select

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.connector(self.select(self.tower, pixel_values))


class VisionSideWithInstruction(VisionSide):
    """InstructBLIP: the Q-Former also reads the instruction (named inputs: the exporter wants them)."""

    def forward(self, pixel_values: torch.Tensor, qformer_input_ids: torch.Tensor, qformer_attention_mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.connector(self.select(self.tower, pixel_values), qformer_input_ids, qformer_attention_mask)


def _tower_prefix(checkpoint: Checkpoint, keys: list[str], folder: Path) -> str:
    """The checkpoint prefix under which every tower key is stored (e.g. 'model.vision_tower.')."""
    stored = set(checkpoint.keys())
    for candidate in (k[: -len(keys[0])] for k in stored if k.endswith(keys[0])):
        if all(candidate + key in stored for key in keys):
            return candidate
    raise WeightsError(f"{folder} holds no complete vision tower (looked for keys like ...{keys[0]})")


def _load_tower(tower: nn.Module, folder: Path) -> nn.Module:
    """The folder's tensors copied into the tower one at a time (no second copy of the tower)."""
    checkpoint = open_checkpoint(folder)
    state = tower.float().state_dict()
    prefix = _tower_prefix(checkpoint, list(state), folder)
    with torch.no_grad():
        for key, target in state.items():
            source = checkpoint.tensor(prefix + key)
            if source.shape != target.shape:
                raise WeightsError(f"{folder}: {prefix + key} has shape {tuple(source.shape)}, the vision config says {tuple(target.shape)}")
            target.copy_(source)
    return tower.eval()


def _pixel_spec(hf: Any, connector: Connector, config: Any) -> TensorSpec:
    vision = hf.vision_config
    size = vision.image_size
    height, width = (size, size) if isinstance(size, int) else size
    first = connector.inputs(config)[0].dims[0]  # the connector's image axis (batch or tiles)
    return TensorSpec("pixel_values", (first, getattr(vision, "num_channels", 3), height, width))


def _fixed_outputs(module: nn.Module, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> list[TensorSpec]:
    """Output axes the inputs do not carry (the connector's token axis: the tower fixes it from
    the image size) get the size one forward pass measures."""
    carried = {axis.name for spec in inputs for axis in spec.axes.values()}
    if all(axis.name in carried for spec in outputs for axis in spec.axes.values()):
        return outputs
    sizes = {axis.name: axis.min for spec in inputs for axis in spec.axes.values()}
    feeds = [torch.ones(spec.shape(sizes), dtype=getattr(torch, spec.dtype)) for spec in inputs]
    with torch.no_grad():
        produced = module(*feeds)
    produced = produced if isinstance(produced, (tuple, list)) else (produced,)
    return [
        dataclasses.replace(
            spec, dims=tuple(d if not isinstance(d, connectors.Axis) or d.name in carried else tensor.shape[i] for i, d in enumerate(spec.dims))
        )
        for spec, tensor in zip(outputs, produced)
    ]


def vision_connector(connector: Connector, config: Any, hf: Any, folder: Path, module: nn.Module) -> Connector:
    """The connector's contract with pixel_values in place of its features; building it reads
    the folder again (the Reference holds the module it made, and may let it go)."""
    inputs, outputs = connector.io(config)
    pixel_inputs = [_pixel_spec(hf, connector, config), *inputs[1:]]
    specs = (pixel_inputs, _fixed_outputs(module, pixel_inputs, outputs))
    rebuild = lambda _config: reference(folder).module  # noqa: E731
    # A vision tower is a transformer: its low-precision gates are the attention connectors' ones.
    return dataclasses.replace(connector, io=lambda _config: specs, build=rebuild, key_layouts=(), attention=True)


def reference(folder: str | Path) -> Reference:
    """The vision side of a model folder, ready to export, gate, quantize, bench."""
    from .folder import detect

    folder = Path(folder)
    found = detect(folder)
    tower_info = found.family.tower
    require(tower_info is not None, f"--vision-tower is not supported for model_type '{found.model_type}' yet")
    assert tower_info is not None
    hf = found.hf_config
    connector = connectors.get(found.family.connector)
    loaded = load_weights(connector, folder, found.config)
    check_against_config(loaded.config, found.config, folder)
    tower = _load_tower(tower_info.build(hf), folder)
    kind = VisionSideWithInstruction if len(connector.inputs(found.config)) == 3 else VisionSide
    module = kind(tower, tower_info.select(hf), build_module(connector, found.config, loaded)).eval()
    side = vision_connector(connector, found.config, hf, folder, module)
    record = found.record(folder) | {"vision_tower": True}
    notes = [f"model_type {found.model_type}: the vision tower and connector '{connector.name}', from pixel_values", *found.family.notes]
    return Reference(side, folder.resolve().name, found.config, loaded, notes, record, _module=module)


def attach_vision_side(model: nn.Module, runtime: Any, tower: Tower, extra: Callable[..., dict[str, torch.Tensor]] | None = None) -> None:
    """transformers' get_image_features answered by the artifact (the tower is no longer run)."""
    from .base import ArtifactModule

    if tower.attach is not None:
        tower.attach(model, runtime, extra)
        return
    ImageFeatures = _image_features_output()

    owner: Any = model.model if tower.owner == "model" else model
    artifact = ArtifactModule(runtime, lambda pixel_values, **kw: {"pixel_values": pixel_values} | (extra(**kw) if extra else {}))

    def get_image_features(pixel_values: torch.Tensor, **kwargs: Any) -> Any:
        return ImageFeatures(pooler_output=tower.pooled(artifact(pixel_values, **kwargs)))

    owner.add_module("mmexport_vision_side", artifact)  # visible in model.modules(), as the connector's stand-in is
    object.__setattr__(owner, "get_image_features", get_image_features)


def _image_features_output() -> type:
    """What get_image_features returns; BLIP-2's forward also reads vision_outputs and
    qformer_outputs from it (None here: the artifact computed them all)."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    @dataclass
    class ImageFeatures(BaseModelOutputWithPooling):
        vision_outputs: Any = None
        qformer_outputs: Any = None

    return ImageFeatures


def no_vision_side(model_type: str) -> UsageError:
    return UsageError(f"--vision-tower is not supported for model_type '{model_type}' yet")
