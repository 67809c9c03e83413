"""BLIP-2 and InstructBLIP: query tokens, the Q-Former (cross-attending to the vision model's
last hidden state, CLS kept) and `language_projection`. In the model, the artifact stands in for
the Q-Former and returns projected embeddings; language_projection becomes the identity."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Blip2VisionModel, InstructBlipVisionModel
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from ..connectors.instructblip import InstructBlipConfig
from ..connectors.qformer import QFormerConfig
from .base import ArtifactModule, Family, replace, sub, vision_tokens
from .vision import Tower, hidden_state


def _dims(hf: Any) -> dict[str, Any]:
    vision, qformer, text = sub(hf, "vision_config"), sub(hf, "qformer_config"), sub(hf, "text_config")
    return dict(
        vision_dim=vision.hidden_size,
        llm_dim=text.hidden_size,
        num_queries=hf.num_query_tokens,
        hidden=qformer.hidden_size,
        layers=qformer.num_hidden_layers,
        heads=qformer.num_attention_heads,
        intermediate=qformer.intermediate_size,
        cross_attention_every=qformer.cross_attention_frequency,
        layer_norm_eps=qformer.layer_norm_eps,
        tokens=vision_tokens(vision),
    )


def blip2_config(hf: Any) -> QFormerConfig:
    return QFormerConfig(**_dims(hf))


def instructblip_config(hf: Any) -> InstructBlipConfig:
    qformer = sub(hf, "qformer_config")
    return InstructBlipConfig(**_dims(hf), vocab_size=qformer.vocab_size, max_positions=qformer.max_position_embeddings)


class QFormerStandIn(nn.Module):
    """Called as transformers calls its Q-Former; returns the artifact's projected embeddings."""

    def __init__(self, artifact: ArtifactModule):
        super().__init__()
        self.artifact = artifact

    def forward(self, query_embeds: torch.Tensor, encoder_hidden_states: torch.Tensor, input_ids=None, attention_mask=None, **kwargs) -> BaseModelOutput:
        if input_ids is None:
            out = self.artifact(encoder_hidden_states)
        else:  # InstructBLIP: the mask transformers passes covers the queries first, then the text
            text_mask = attention_mask[:, query_embeds.shape[1] :]
            out = self.artifact(encoder_hidden_states, input_ids, text_mask)
        return BaseModelOutput(last_hidden_state=out)


def _attach(feeds):
    def attach(model: Any, runtime: Any) -> None:
        replace(model, "qformer", QFormerStandIn(ArtifactModule(runtime, feeds)))
        replace(model, "language_projection", nn.Identity())

    return attach


def _instruction_feeds(vision_features, input_ids, attention_mask):
    return {"vision_features": vision_features, "qformer_input_ids": input_ids.long(), "qformer_attention_mask": attention_mask.long()}


SETTINGS = lambda hf: {"num_query_tokens": hf.num_query_tokens}  # noqa: E731
FEEDS = "vision_model(...).last_hidden_state (every token, CLS included)"


class PixelsThrough(nn.Module):
    """Stands in for the vision model when the artifact starts from pixel_values: hands them on."""

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        return BaseModelOutputWithPooling(last_hidden_state=pixel_values)


def _attach_vision_side(model: Any, runtime: Any, extra: Any) -> None:
    """BLIP-2's generate() runs vision_model, qformer and language_projection itself (not
    get_image_features): the vision model hands pixel_values to the Q-Former's stand-in, which
    runs the whole vision side."""

    def feeds(pixel_values, input_ids=None, attention_mask=None):
        text = {} if input_ids is None else {"qformer_input_ids": input_ids.long(), "qformer_attention_mask": attention_mask.long()}
        return {"pixel_values": pixel_values} | text

    replace(model, "vision_model", PixelsThrough())
    replace(model, "qformer", QFormerStandIn(ArtifactModule(runtime, feeds)))
    replace(model, "language_projection", nn.Identity())


def _tower(vision_model: type) -> Tower:
    return Tower(build=lambda hf: vision_model(hf.vision_config), select=lambda hf: hidden_state(-1, False), owner="top", attach=_attach_vision_side)


BLIP2 = Family(("blip-2",), "qformer", blip2_config, SETTINGS, FEEDS, _attach(lambda x: {"vision_features": x}), tower=_tower(Blip2VisionModel))
INSTRUCTBLIP = Family(
    ("instructblip",),
    "instructblip",
    instructblip_config,
    SETTINGS,
    FEEDS + ", with qformer_input_ids and qformer_attention_mask",
    _attach(_instruction_feeds),
    tower=_tower(InstructBlipVisionModel),
)
