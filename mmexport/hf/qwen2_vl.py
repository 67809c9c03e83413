"""Qwen2-VL and Qwen2.5-VL: `visual.merger` (LayerNorm or RMSNorm, every spatial_merge_size^2
consecutive patches as one, Linear, GELU, Linear) on the last vision block's output, packed
over all images as [patches, width]. Qwen2.5-VL's window order is undone after the merger, in
transformers, by an index the image grid decides."""

from __future__ import annotations

from typing import Any

from ..connectors.patch_merger import PatchMergerConfig
from .base import ArtifactModule, Family, features_only, replace, sub


def config(hf: Any) -> PatchMergerConfig:
    vision = sub(hf, "vision_config")
    merge = vision.spatial_merge_size**2
    if hf.model_type == "qwen2_vl":
        return PatchMergerConfig("layernorm", vision.embed_dim, vision.hidden_size, merge)
    return PatchMergerConfig("rmsnorm", vision.hidden_size, vision.out_hidden_size, merge)


def attach(model: Any, runtime: Any) -> None:
    replace(model, "merger", ArtifactModule(runtime, features_only))


FAMILY = Family(
    model_types=("qwen2_vl", "qwen2_5_vl"),
    connector="patch-merger",
    config=config,
    settings=lambda hf: {"spatial_merge_size": sub(hf, "vision_config").spatial_merge_size},
    feeds="the last vision block's hidden states, every image's patches packed as [patches, width] (the input of model.visual.merger)",
    attach=attach,
    notes=("Qwen2.5-VL: merger outputs are put back from window order in transformers (merged[reverse_indices])",),
)
