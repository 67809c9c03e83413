"""Llama 3.2 Vision: tiles with aspect-ratio ids and masks through the vision model, the
projector, reshaped to the cross_attention_states the language model's cross-attention reads
(the forward takes them directly; no get_image_features exists)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..family import Family
from ..layouts import Tiles


class CrossAttentionStates(nn.Module):
    """MllamaModel.forward's vision part: vision_model -> multi_modal_projector -> reshape."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.vision_model, self.projector = model.model.vision_model, model.model.multi_modal_projector
        self.hidden = model.config.text_config.hidden_size

    def forward(self, pixel_values: torch.Tensor, aspect_ratio_ids: torch.Tensor, aspect_ratio_mask: torch.Tensor) -> torch.Tensor:
        states = self.vision_model(pixel_values=pixel_values, aspect_ratio_ids=aspect_ratio_ids, aspect_ratio_mask=aspect_ratio_mask).last_hidden_state
        return self.projector(states).reshape(-1, states.shape[-2], self.hidden)


def attach_vision(model: nn.Module, artifact: nn.Module) -> None:
    """The forward computes cross_attention_states with the artifact from the pixels it is given."""
    inner = model.model
    original = inner.forward

    def forward(*args: Any, pixel_values=None, aspect_ratio_ids=None, aspect_ratio_mask=None, **kwargs: Any):
        if pixel_values is not None:
            feeds = {"pixel_values": pixel_values, "aspect_ratio_ids": aspect_ratio_ids, "aspect_ratio_mask": aspect_ratio_mask}
            kwargs["cross_attention_states"] = artifact(**feeds)[0]
        return original(*args, **kwargs)

    object.__setattr__(inner, "forward", forward)


FAMILY = Family(
    ("mllama",),
    images=Tiles(),
    parts=("vision_model", "multi_modal_projector"),
    reference=CrossAttentionStates,
    outputs=lambda hf: ("cross_attention_states",),
    attach_vision=attach_vision,
    features_as="cross_attention_states",
)
