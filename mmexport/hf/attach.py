"""`mmexport.attach(model, artifact)`: a loaded transformers VLM whose connector runs through an
mmexport artifact (ONNX Runtime or TensorRT, via the runtime API). `model(...)` and
`model.generate(...)` work unchanged. An artifact made for another model is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import connectors
from ..checkpoint import Checkpoint
from ..connectors.loading import build_module, load_weights, same_weights, weights_fingerprint
from ..errors import UsageError
from ..record import read
from ..serving.runtime import load
from .folder import from_config
from .vision import attach_vision_side


def _check_weights(model: Any, connector: Any, config: Any, recorded: list[float] | None, artifact: Path) -> None:
    """The model's own connector weights against the fingerprint the artifact was made from."""
    loaded = load_weights(connector, Checkpoint.from_state_dict(dict(model.state_dict())), config)
    if recorded and not same_weights(weights_fingerprint(build_module(connector, config, loaded).state_dict()), recorded):
        raise UsageError(f"{artifact.name} was exported from other connector weights than this model's; export it from this model's folder")


def attach(model: Any, artifact: str | Path, device: str = "cpu") -> Any:
    """Replace `model`'s connector with the artifact, in place; returns the model."""
    artifact = Path(artifact)
    record = read(artifact)
    if record.model is None:
        raise UsageError(f"{artifact.name} was not exported from a Hugging Face folder; export it with `mmexport onnx --model DIR`")
    found = from_config(model.config)
    if record.model["model_type"] != found.model_type:
        raise UsageError(f"{artifact.name} was exported from a '{record.model['model_type']}' model; this one is '{found.model_type}'")
    connector = connectors.get(record.connector)
    recorded = connector.config_from_dict(record.config)
    if recorded != found.config:
        raise UsageError(f"{artifact.name} was exported for {recorded}; this model's connector is {found.config}")
    if record.model.get("vision_tower"):
        _check_vision_weights(model, found, record.weights.fingerprint, artifact)
        attach_vision_side(model, load(artifact, device), found.family.tower, _extra_inputs(record))
        return model
    _check_weights(model, connector, found.config, record.weights.fingerprint, artifact)
    found.family.attach(model, load(artifact, device))
    return model


def _extra_inputs(record: Any):
    """transformers passes InstructBLIP's instruction to get_image_features by keyword."""
    names = [s.name for s in record.inputs[1:]]
    if not names:
        return None
    return lambda **kwargs: {name: kwargs[name].long() for name in names}


def _check_vision_weights(model: Any, found: Any, recorded: list[float] | None, artifact: Path) -> None:
    """The model's tower and connector against the fingerprint of the vision side exported."""
    from .vision import VisionSide

    connector = connectors.get(found.family.connector)
    loaded = load_weights(connector, Checkpoint.from_state_dict(dict(model.state_dict())), found.config)
    owner = model.model if found.family.tower.owner == "model" else model
    tower = owner.vision_tower if hasattr(owner, "vision_tower") else owner.vision_model
    side = VisionSide(tower, found.family.tower.select(found.hf_config), build_module(connector, found.config, loaded))
    fingerprint = weights_fingerprint({k: v.float() for k, v in side.state_dict().items()})
    if recorded and not same_weights(fingerprint, recorded):
        raise UsageError(f"{artifact.name} was exported from other weights than this model's vision side; export it from this model's folder")
