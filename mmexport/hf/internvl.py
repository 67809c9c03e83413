"""InternVL (transformers' -hf releases): pixel shuffle (downsample_ratio 0.5) and
`multi_modal_projector` (LayerNorm, Linear, GELU, Linear) on the vision tower's hidden state at
vision_feature_layer, CLS dropped. In the model, the artifact does the shuffle too, so the
model's own pixel_shuffle becomes the identity."""

from __future__ import annotations

from typing import Any

from transformers import AutoModel

from ..connectors.pixel_shuffle import PixelShuffleConfig
from .base import ArtifactModule, Family, features_only, find, replace, require, sub, vision_tokens
from .vision import Tower, hidden_state


def config(hf: Any) -> PixelShuffleConfig:
    require(hf.downsample_ratio == 0.5, f"downsample_ratio {hf.downsample_ratio} is not supported (0.5 is)")
    require(hf.projector_hidden_act == "gelu", f"projector_hidden_act '{hf.projector_hidden_act}' is not supported (exact GELU is)")
    require(hf.vision_feature_select_strategy == "default", "vision_feature_select_strategy 'full' is not supported (the CLS token is dropped)")
    vision, text = sub(hf, "vision_config"), sub(hf, "text_config")
    return PixelShuffleConfig(vision.hidden_size, text.hidden_size, vision_tokens(vision, "default"), round(1 / hf.downsample_ratio))


TOWER = Tower(build=lambda hf: AutoModel.from_config(hf.vision_config), select=lambda hf: hidden_state(hf.vision_feature_layer, True), owner="model")


def attach(model: Any, runtime: Any) -> None:
    owner, _ = find(model, "multi_modal_projector")
    replace(model, "multi_modal_projector", ArtifactModule(runtime, lambda x: features_only(x.flatten(1, 2) if x.dim() == 4 else x)))
    object.__setattr__(owner, "pixel_shuffle", lambda vision_features, scale_factor=0.5: vision_features)  # the artifact shuffles


FAMILY = Family(
    model_types=("internvl",),
    connector="pixel-shuffle",
    config=config,
    settings=lambda hf: {"downsample_ratio": hf.downsample_ratio, "vision_feature_layer": hf.vision_feature_layer},
    feeds="vision_tower(...).hidden_states[vision_feature_layer] (last_hidden_state for -1), CLS dropped, [tiles, tokens, width]",
    attach=attach,
    tower=TOWER,
)
