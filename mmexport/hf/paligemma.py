"""PaliGemma (1 and 2): `multi_modal_projector.linear` on SigLIP's last hidden state; transformers
5 applies no scaling to the image features (checked in get_image_features and forward)."""

from __future__ import annotations

from typing import Any

from transformers import AutoModel

from ..connectors.linear import LinearConfig
from .base import ArtifactModule, Family, features_only, replace, sub, vision_tokens
from .vision import Tower, hidden_state


def config(hf: Any) -> LinearConfig:
    vision = sub(hf, "vision_config")
    return LinearConfig(vision.hidden_size, vision.projection_dim, vision_tokens(vision))


TOWER = Tower(build=lambda hf: AutoModel.from_config(hf.vision_config), select=lambda hf: hidden_state(-1, False), owner="model")


def attach(model: Any, runtime: Any) -> None:
    replace(model, "multi_modal_projector", ArtifactModule(runtime, features_only))


FAMILY = Family(
    model_types=("paligemma",),
    connector="linear",
    config=config,
    settings=lambda hf: {"projection_dim": sub(hf, "vision_config").projection_dim},
    feeds="vision_tower(...).last_hidden_state (SigLIP, every patch)",
    attach=attach,
    tower=TOWER,
)
