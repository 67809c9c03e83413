"""LLaVA-1.5, LLaVA-NeXT and LLaVA-OneVision: `multi_modal_projector` (Linear, GELU, Linear) on
the vision tower's hidden state at `vision_feature_layer`, its CLS dropped by the 'default'
select strategy. NeXT/OneVision project each tile; their anyres unpadding and image_newline
(pack_image_features) stay in transformers, after the projector."""

from __future__ import annotations

from typing import Any

from transformers import AutoModel

from ..connectors.mlp import MLPConfig
from .base import ArtifactModule, Family, features_only, replace, require, sub, vision_tokens
from .vision import Tower, hidden_state


def _layers(config: Any) -> list[int]:
    layer = config.vision_feature_layer
    return list(layer) if isinstance(layer, (list, tuple)) else [layer]


def config(hf: Any) -> MLPConfig:
    require(hf.projector_hidden_act == "gelu", f"projector_hidden_act '{hf.projector_hidden_act}' is not supported (mmexport's MLP uses exact GELU)")
    vision, text = sub(hf, "vision_config"), sub(hf, "text_config")
    bias = getattr(hf, "multimodal_projector_bias", True)
    return MLPConfig(vision.hidden_size * len(_layers(hf)), text.hidden_size, vision_tokens(vision, hf.vision_feature_select_strategy), bias)


def settings(hf: Any) -> dict[str, Any]:
    return {
        "vision_feature_layer": hf.vision_feature_layer,
        "vision_feature_select_strategy": hf.vision_feature_select_strategy,
        "projector_hidden_act": hf.projector_hidden_act,
        "image_grid_pinpoints": getattr(hf, "image_grid_pinpoints", None),
    }


def _select(hf: Any):
    require(isinstance(hf.vision_feature_layer, int), "--vision-tower takes one vision_feature_layer (not a list) for now")
    return hidden_state(hf.vision_feature_layer, hf.vision_feature_select_strategy == "default")


TOWER = Tower(build=lambda hf: AutoModel.from_config(hf.vision_config), select=_select, owner="model", pooled=lambda features: list(features))


def attach(model: Any, runtime: Any) -> None:
    replace(model, "multi_modal_projector", ArtifactModule(runtime, features_only))


FAMILY = Family(
    model_types=("llava", "llava_next", "llava_onevision"),
    connector="mlp",
    config=config,
    settings=settings,
    feeds="vision_tower(...).hidden_states[vision_feature_layer] (layers concatenated if a list), CLS dropped when "
    "vision_feature_select_strategy is 'default'; NeXT/OneVision: one row per tile",
    attach=attach,
    notes=("LLaVA-NeXT/OneVision: pack_image_features (anyres unpadding, image_newline) runs in transformers after the graph",),
    tower=TOWER,
)
