"""`mmexport.attach(model, artifact)`: a loaded transformers VLM whose connector, or whole vision
side (images, and with a second call a video artifact, videos), runs through an mmexport artifact (ONNX Runtime or TensorRT, via the runtime API).
`model(...)` and `model.generate(...)` work unchanged. A vision-side artifact answers the
model's get_image_features (which forward and generate() call), so the tower no longer runs; a
connector artifact takes the connector module's place. Another model's artifact is refused."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..record import ArtifactRecord, read
from ..runtime import Runtime, load
from .folder import Detected, from_config
from .model import image_owner
from .subject import fingerprint, part_paths


class ArtifactModule(nn.Module):
    """Runs the artifact: torch tensors in by name (any dtype and device), the record's dtypes at
    its inputs, its outputs back as torch tensors in the caller's float dtype and device."""

    def __init__(self, runtime: Runtime):
        super().__init__()
        self.runtime = runtime
        self.dtypes = {s.name: s.dtype for s in runtime.inputs}
        self.calls = 0  # how often the artifact ran (a model that never reaches it is not using it)

    def forward(self, **feeds: torch.Tensor | None) -> list[torch.Tensor]:
        given = {name: t for name, t in feeds.items() if t is not None and name in self.dtypes}  # an optional input left out: derived
        like = next(t for t in given.values() if t.is_floating_point())
        arrays = {name: np.ascontiguousarray(t.detach().cpu().numpy().astype(self.dtypes[name])) for name, t in given.items()}
        out = self.runtime(**arrays)
        self.calls += 1
        return [torch.from_numpy(out[s.name]).to(device=like.device, dtype=like.dtype) for s in self.runtime.outputs]


def bind(function: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments by parameter name, as the original callable would have received them."""
    names = [p for p in inspect.signature(function).parameters if p not in ("self", "args", "kwargs")]
    return dict(zip(names, args)) | kwargs


@functools.cache
def _output_type() -> type:
    """A transformers ModelOutput with the fields every family's forward reads."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    @dataclass
    class ImageFeatures(BaseModelOutputWithPooling):
        vision_outputs: Any = None  # BLIP-2 and InstructBLIP's forward read these (the artifact computed them)
        qformer_outputs: Any = None
        deepstack_features: Any = None  # Qwen3-VL: added into the LLM's first layers

    return ImageFeatures


def pooled(family: Any, record: ArtifactRecord, outputs: list[torch.Tensor], feeds: dict[str, Any]) -> tuple[Any, Any]:
    """The graph's outputs in the containers transformers' get_image_features (get_video_features)
    returns them in (a tensor, a list per image, a list split by the record's grid), and the deepstack ones."""
    first = outputs[0]
    mode = family.video_pooled if record.model is not None and record.model.part == "video" and family.video_pooled else family.pooled
    if mode == "stack":
        return list(first.unbind(0)), None
    if mode == "cat":  # images of different token counts, with nothing that says the counts: one item
        return (first,), [(level,) for level in outputs[1:]] or None
    if mode == "split":
        sizes = record.derivation.split({k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in feeds.items() if v is not None})
        return tuple(first.split(sizes)), [tuple(level.split(sizes)) for level in outputs[1:]] or None
    return first, None


def image_output(**fields: Any) -> Any:
    return _output_type()(**fields)


def attach_vision(model: nn.Module, runtime: Runtime, found: Detected, part: str = "vision") -> ArtifactModule:
    artifact = ArtifactModule(runtime)
    image_owner(model).add_module(f"mmexport_{part}_side", artifact)  # visible in model.modules(), as the connector's stand-in is
    if found.family.attach_vision is not None and part == "vision":
        found.family.attach_vision(model, artifact)
        return artifact
    # Every module that has get_image_features (get_video_features) answers with the artifact: outer
    # wrappers (and ShieldGemma 2's classifier around Gemma 3) call the inner one, generate() the base model's.
    method = "get_video_features" if part == "video" else "get_image_features"
    for owner in [m for m in model.modules() if callable(getattr(m, method, None))]:
        object.__setattr__(owner, method, _answer(getattr(owner, method), artifact, found))
        if part == "vision" and callable(getattr(owner, "get_video_features", None)):
            _warn_on_video(owner)
    return artifact


def _answer(original: Callable, artifact: ArtifactModule, found: Detected) -> Callable:
    @functools.wraps(original)  # generate() reads its signature to route the processor's tensors
    def get_features(*args: Any, **kwargs: Any) -> Any:
        bound = bind(original, args, kwargs)
        bound |= {ours: bound[theirs] for ours, theirs in found.family.renamed if bound.get(ours) is None and theirs in bound}
        feeds = {k: v for k, v in bound.items() if k in artifact.dtypes}
        features, deepstack = pooled(found.family, artifact.runtime.record, artifact(**feeds), feeds)
        return image_output(pooler_output=features, deepstack_features=deepstack)

    get_features.mmexport_artifact = artifact  # type: ignore[attr-defined]
    return get_features


def _warn_on_video(owner: nn.Module) -> None:
    """With only an image artifact attached, a video still runs on the PyTorch tower: say so, once."""
    original = owner.get_video_features
    if getattr(original, "mmexport_artifact", None) is not None or getattr(original, "mmexport_warns", False):
        return  # a video artifact answers already, or the warning is in place
    said: list[bool] = []

    @functools.wraps(original)
    def get_video_features(*args: Any, **kwargs: Any) -> Any:
        if not said:
            said.append(True)
            warnings.warn(
                "a video ran on the PyTorch tower: only an image artifact is attached; attach a video artifact "
                "(mmexport onnx --model DIR --vision-tower --video) to run videos through mmexport",
                stacklevel=2,
            )
        return original(*args, **kwargs)

    get_video_features.mmexport_warns = True  # type: ignore[attr-defined]
    object.__setattr__(owner, "get_video_features", get_video_features)


class ConnectorStandIn(nn.Module):
    """Takes the connector module's place: called as it was, answers with the artifact's output."""

    def __init__(self, original: nn.Module, runtime: Runtime):
        super().__init__()
        self.artifact = ArtifactModule(runtime)
        object.__setattr__(self, "signature_of", original.forward)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        feeds = {k: v for k, v in bind(self.signature_of, args, kwargs).items() if isinstance(v, torch.Tensor)}
        return self.artifact(**feeds)[0]


def attach_connector(model: nn.Module, runtime: Runtime, found: Detected) -> None:
    family = found.family
    if family.attach_connector is not None:
        family.attach_connector(model, ArtifactModule(runtime))
        return
    path = part_paths(model, family, "connector")[0]
    parent, _, name = path.rpartition(".")
    holder = model.get_submodule(parent) if parent else model
    setattr(holder, name, ConnectorStandIn(getattr(holder, name), runtime))


def _check(model: nn.Module, record: ArtifactRecord, found: Detected, part: str, artifact: Path) -> None:
    if record.model is None:
        raise UsageError(f"{artifact.name} was not exported from a Hugging Face folder; export it with `mmexport onnx --model DIR`")
    if record.model.model_type != found.model_type:
        raise UsageError(f"{artifact.name} was exported from a '{record.model.model_type}' model; this one is '{found.model_type}'")
    if not found.family.attach:
        raise UsageError(f"transformers' own forward of '{found.model_type}' does not run in this version; use mmexport.encoder_outputs instead of attach")
    if part == "vision" and found.family.attach_why_not:
        raise UsageError(f"a '{found.model_type}' vision-side artifact cannot be attached: {found.family.attach_why_not}")
    recorded = record.weights.fingerprint
    from ..connectors.loading import same_weights

    if recorded and not same_weights(fingerprint(model, part_paths(model, found.family, part)), recorded):
        what = "connector" if part == "connector" else "vision side"
        raise UsageError(f"{artifact.name} was exported from other weights than this model's {what}; export it from this model's folder")


def attach(model: Any, artifact: str | Path, device: str = "cpu") -> Any:
    """Replace `model`'s connector (or its whole vision side) with the artifact, in place; returns the model."""
    artifact = Path(artifact)
    record = read(artifact)
    found = from_config(model.config)
    if record.model is not None and record.model.pooled:  # no declaration: the record says how features are handed on
        found = dataclasses.replace(found, family=dataclasses.replace(found.family, pooled=record.model.pooled))
    part = record.model.part if record.model else "connector"
    _check(model, record, found, part, artifact)
    runtime = load(artifact, device)
    if part in ("vision", "video"):
        attach_vision(model, runtime, found, part)
    else:
        attach_connector(model, runtime, found)
    return model
