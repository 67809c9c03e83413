"""Llama 4: tiles through the vision model (its pixel-shuffle MLP inside), then the projector the
forward applies (get_image_features stops before it). transformers 5.24's own forward fails, so
there is nothing to attach to; encoder_outputs gives what it would take."""

from __future__ import annotations

import torch
from torch import nn

from ..family import Family
from ..layouts import Pixels


class Projected(nn.Module):
    """get_image_features (the vision model's output) and the projector, as the forward applies it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.vision_model, self.projector = model.vision_model, model.multi_modal_projector

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projector(self.vision_model(pixel_values=pixel_values, return_dict=True).last_hidden_state)


FAMILY = Family(("llama4",), images=Pixels(axis="tiles"), parts=("vision_model", "multi_modal_projector"), reference=Projected, attach=False)
