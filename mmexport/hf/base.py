"""What a Hugging Face model family tells mmexport: which connector its config.json describes,
with which dims and settings, which tensor feeds it, and how an artifact takes its place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..errors import UsageError

Feeds = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Family:
    model_types: tuple[str, ...]
    connector: str
    config: Callable[[Any], Any]  # transformers config -> the connector's config (dims)
    settings: Callable[[Any], dict[str, Any]]  # what the record keeps (model_type, feature layer, ...)
    feeds: str  # which tensor of transformers' forward the graph takes, for users and the README
    attach: Callable[[nn.Module, Any], None]  # (model, runtime): the artifact takes the connector's place
    notes: tuple[str, ...] = field(default_factory=tuple)
    tower: Any = None  # vision.Tower: how its whole vision side runs (None: not supported yet)


def sub(config: Any, name: str) -> Any:
    """A sub-config (vision_config, text_config ...) that must be there."""
    value = getattr(config, name, None)
    if value is None:
        raise UsageError(f"config.json of model_type '{config.model_type}' has no {name}; is the folder complete?")
    return value


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def vision_tokens(vision: Any, strategy: str = "full") -> int:
    """Tokens a ViT returns for one image (its CLS included, if it has one), less the CLS when
    the select strategy is 'default' (transformers drops the first token then)."""
    size, patch = vision.image_size, vision.patch_size
    height, width = (size, size) if isinstance(size, int) else size  # InternViT gives [h, w]
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    patches = (height // patch_h) * (width // patch_w)
    has_cls = vision.model_type not in ("siglip_vision_model", "siglip2_vision_model")
    return patches + int(has_cls) - int(strategy == "default")


def find(model: nn.Module, suffix: str) -> tuple[nn.Module, str]:
    """(parent, attribute) of the one submodule whose dotted name ends with `suffix`."""
    names = [n for n, _ in model.named_modules() if n == suffix or n.endswith("." + suffix)]
    require(len(names) == 1, f"the model has {len(names)} modules named '{suffix}'; expected exactly one")
    path = names[0].split(".")
    return model.get_submodule(".".join(path[:-1])), path[-1]


def replace(model: nn.Module, suffix: str, new: nn.Module) -> None:
    parent, name = find(model, suffix)
    setattr(parent, name, new)


def features_only(vision_features: torch.Tensor) -> Feeds:
    """The feeds of a connector called with the vision features alone."""
    return {"vision_features": vision_features}


class ArtifactModule(nn.Module):
    """Runs the artifact where the connector ran: torch tensors in (any dtype and device), the
    artifact's dtype at its inputs, its first output back in the caller's dtype and device."""

    def __init__(self, runtime: Any, feeds: Callable[..., Feeds]):
        super().__init__()
        self.runtime = runtime
        self.feeds = feeds
        self.output = runtime.outputs[0].name
        self.dtypes = {s.name: s.dtype for s in runtime.inputs}
        self.calls = 0  # how often the artifact ran (a model that never reaches it is not using it)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        feeds = self.feeds(*args, **kwargs)
        like = next(t for t in feeds.values() if t.is_floating_point())
        arrays = {name: t.detach().cpu().numpy().astype(self.dtypes[name]) for name, t in feeds.items()}
        out = self.runtime(**arrays)[self.output]
        self.calls += 1
        return torch.from_numpy(out).to(device=like.device, dtype=like.dtype)
