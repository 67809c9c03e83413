"""BLIP-2 and InstructBLIP: the connector is three pieces of the model (query tokens, the
Q-Former, language_projection), run as transformers' get_image_features runs them. BLIP-2's
generate() runs them itself rather than through get_image_features: stand-ins take their place."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from .model import module_path


class QFormerPart(nn.Module):
    """Vision features (and InstructBLIP's instruction) -> the LLM's query embeddings."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.qformer, self.language_projection = model.qformer, model.language_projection
        self.query_tokens = model.query_tokens
        self.queries = model.query_tokens.shape[1]

    def forward(self, vision_features: torch.Tensor, qformer_input_ids=None, qformer_attention_mask=None) -> torch.Tensor:
        queries = self.query_tokens.expand(vision_features.shape[0], -1, -1)
        image_mask = torch.ones(vision_features.shape[:-1], dtype=torch.long, device=vision_features.device)
        text: dict[str, Any] = {}
        if qformer_input_ids is not None:  # InstructBLIP: the queries attend to the instruction too
            query_mask = torch.ones(queries.shape[:-1], dtype=torch.long, device=queries.device)
            text = {"input_ids": qformer_input_ids, "attention_mask": torch.cat([query_mask, qformer_attention_mask], dim=1)}
        out = self.qformer(query_embeds=queries, encoder_hidden_states=vision_features, encoder_attention_mask=image_mask, return_dict=True, **text)
        return self.language_projection(out.last_hidden_state[:, : self.queries])


def connector_inputs(model: nn.Module, sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What QFormerPart takes for one sample: the vision model's last hidden state (CLS kept)."""
    features = {"vision_features": model.vision_model(pixel_values=sample["pixel_values"], return_dict=True).last_hidden_state}
    return features | {k: v for k, v in sample.items() if k.startswith("qformer_")}


class QFormerStandIn(nn.Module):
    """Called as transformers calls its Q-Former; returns the artifact's projected embeddings
    (language_projection becomes the identity)."""

    def __init__(self, artifact: nn.Module, pixels: bool):
        super().__init__()
        self.artifact, self.pixels = artifact, pixels

    def forward(self, query_embeds, encoder_hidden_states, input_ids=None, attention_mask=None, **kwargs) -> BaseModelOutput:
        feeds = {"pixel_values" if self.pixels else "vision_features": encoder_hidden_states}
        if input_ids is not None:  # InstructBLIP: the mask transformers passes covers the queries first, then the text
            feeds |= {"qformer_input_ids": input_ids, "qformer_attention_mask": attention_mask[:, query_embeds.shape[1] :]}
        return BaseModelOutput(last_hidden_state=self.artifact(**feeds)[0])


class PixelsThrough(nn.Module):
    """Stands in for the vision model when the artifact starts from pixel_values: hands them on."""

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        return BaseModelOutputWithPooling(last_hidden_state=pixel_values, pooler_output=pixel_values[:, 0])


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attribute = module_path(model, name).rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, new)


def attach_connector(model: nn.Module, artifact: nn.Module) -> None:
    _replace(model, "qformer", QFormerStandIn(artifact, pixels=False))
    _replace(model, "language_projection", nn.Identity())


def attach_vision(model: nn.Module, artifact: nn.Module) -> None:
    """The vision model hands pixel_values to the Q-Former's stand-in, which runs the whole side."""
    _replace(model, "vision_model", PixelsThrough())
    _replace(model, "qformer", QFormerStandIn(artifact, pixels=True))
    _replace(model, "language_projection", nn.Identity())
