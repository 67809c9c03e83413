"""MiniGPT-v2 (and MiniGPT-4 Llama-2): every 4 consecutive vision tokens concatenated
(raster order, 1x4), then `llama_proj`. The input is EVA-CLIP-g output after `ln_vision`, CLS dropped."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec


@dataclass(frozen=True)
class ConcatLinearConfig:
    vision_dim: int = 1408
    llm_dim: int = 4096
    group: int = 4
    tokens: int = 1024  # 448 px, patch 14: 32x32


class ConcatLinear(nn.Module):
    def __init__(self, config: ConcatLinearConfig):
        super().__init__()
        self.group = config.group
        self.llama_proj = nn.Linear(config.vision_dim * config.group, config.llm_dim)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        grouped = vision_features.unflatten(1, (-1, self.group)).flatten(2)
        return self.llama_proj(grouped)


def io_specs(config: ConcatLinearConfig):
    g = config.group
    tokens = Axis("tokens", min=g, opt=config.tokens, max=4 * config.tokens, samples=(config.tokens, g, config.tokens + 5 * g), multiple_of=g)
    return (
        [TensorSpec("vision_features", (BATCH, tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, f"tokens/{g}", config.llm_dim))],
    )


def _from_weights(weights, config: ConcatLinearConfig) -> ConcatLinearConfig:
    llm_dim, in_dim = weights["llama_proj.weight"].shape
    if in_dim % config.group:
        raise KeyError(f"llama_proj.weight (its input width {in_dim} is not {config.group} x the vision width)")
    return ConcatLinearConfig(in_dim // config.group, llm_dim, config.group, config.tokens)


CONNECTOR = Connector(
    name="concat-linear",
    family="token-merging projection",
    systems=("MiniGPT-v2", "MiniGPT-4 (Llama-2)"),
    presets={
        "minigpt-v2": ConcatLinearConfig(),
        "minigpt4-llama2-7b": ConcatLinearConfig(tokens=256),  # 224 px: 16x16 tokens
    },
    default_preset="minigpt-v2",
    key_layouts=(KeyLayout("minigpt-original", ((r"(?:model\.)?llama_proj\.(weight|bias)", r"llama_proj.\1"),)),),
    build=ConcatLinear,
    io=io_specs,
    config_from_weights=_from_weights,
)
