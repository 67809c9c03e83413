"""Vision sides that transformers computes with a per-image Python list (which fixes the batch in
an export): the same tensors, from transformers' own tower and projector modules, batched."""

from __future__ import annotations

import torch
from torch import nn


class FeatureLayers(nn.Module):
    """LLaVA's get_image_features: the tower's hidden states at vision_feature_layer (a list is
    concatenated in its order), the CLS dropped by the 'default' strategy, then the projector."""

    def __init__(self, model: nn.Module, tower: str = "vision_tower"):
        super().__init__()
        inner = model.model
        self.tower, self.projector = getattr(inner, tower), inner.multi_modal_projector
        layer = model.config.vision_feature_layer
        self.layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
        self.drop_cls = model.config.vision_feature_select_strategy == "default"

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        states = self.tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states
        features = [states[i][:, 1:] if self.drop_cls else states[i] for i in self.layers]
        return self.projector(torch.cat(features, dim=-1))


def feature_layers(model: nn.Module) -> nn.Module:
    return FeatureLayers(model).eval()


class RealCrops(nn.Module):
    """Idefics2/Idefics3/SmolVLM's get_image_features with the real crops gathered by an index
    derived beside the graph (transformers drops the all-zero ones with a boolean mask)."""

    def __init__(self, model: nn.Module, resampler: bool):
        super().__init__()
        inner = model.model
        self.vision_model, self.connector = inner.vision_model, inner.connector
        self.patch = model.config.vision_config.patch_size
        self.resampler = resampler  # Idefics2: a perceiver over the kept patches; only whole patches count

    def forward(self, pixel_values: torch.Tensor, pixel_attention_mask: torch.Tensor, real_crops: torch.Tensor) -> torch.Tensor:
        pixels = pixel_values.flatten(0, 1)[real_crops]
        mask = pixel_attention_mask.flatten(0, 1)[real_crops]
        p = self.patch
        filled = mask.unflatten(1, (-1, p)).unflatten(3, (-1, p)).sum(dim=(2, 4))
        patches = filled == p * p if self.resampler else filled > 0
        states = self.vision_model(pixel_values=pixels, patch_attention_mask=patches, return_dict=True).last_hidden_state
        if self.resampler:
            features = self.connector(states, attention_mask=patches.view(pixels.shape[0], -1))
        else:
            features = self.connector(states)
        return features.reshape(-1, features.shape[-1])


def real_crops(model: nn.Module) -> nn.Module:
    return RealCrops(model, resampler=False).eval()


def real_crops_resampled(model: nn.Module) -> nn.Module:
    """Idefics2: its connector resamples the kept patches with a perceiver."""
    return RealCrops(model, resampler=True).eval()
