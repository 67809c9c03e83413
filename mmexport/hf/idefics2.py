"""Idefics2: `connector` (SwiGLU modality projection, then the perceiver resampler over the
patches that are not padding) on SigLIP's last hidden state and the patch attention mask."""

from __future__ import annotations

from typing import Any

from ..connectors.idefics2 import Idefics2Config
from .base import ArtifactModule, Family, replace, require, sub, vision_tokens


def config(hf: Any) -> Idefics2Config:
    vision, text, perceiver = sub(hf, "vision_config"), sub(hf, "text_config"), sub(hf, "perceiver_config")
    for name, act in (("text_config", text.hidden_act), ("perceiver_config", perceiver.hidden_act)):
        require(act == "silu", f"{name}.hidden_act '{act}' is not supported (mmexport's Idefics2 connector uses SiLU)")
    return Idefics2Config(
        vision_dim=vision.hidden_size,
        text_dim=text.hidden_size,
        intermediate=text.intermediate_size,
        latents=perceiver.resampler_n_latents,
        depth=perceiver.resampler_depth,
        heads=perceiver.resampler_n_heads,
        head_dim=perceiver.resampler_head_dim,
        kv_heads=perceiver.num_key_value_heads,
        eps=perceiver.rms_norm_eps,
        tokens=vision_tokens(vision),
    )


def attach(model: Any, runtime: Any) -> None:
    def feeds(image_hidden_states, attention_mask):
        return {"image_hidden_states": image_hidden_states, "patch_attention_mask": attention_mask.bool()}

    replace(model, "connector", ArtifactModule(runtime, feeds))


FAMILY = Family(
    model_types=("idefics2",),
    connector="idefics2",
    config=config,
    settings=lambda hf: {"resampler_n_latents": sub(hf, "perceiver_config").resampler_n_latents},
    feeds="vision_model(...).last_hidden_state with the patch attention mask transformers derives from pixel_attention_mask; "
    "get_image_features then flattens each sample's images to [images*64, D]",
    attach=attach,
)
