"""Qwen2-VL's PatchMerger: norm (LayerNorm; RMSNorm in Qwen2.5-VL), every 4 consecutive patch
tokens (one 2x2 window, as the vision tower orders them) as one, then Linear, GELU, Linear.
Input: all patch tokens of a request, (tokens, 1280); the preset chooses the norm."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Axis, Connector, KeyLayout, TensorSpec
from .blocks import RMSNorm


@dataclass(frozen=True)
class PatchMergerConfig:
    norm: str = "layernorm"  # or "rmsnorm" (Qwen2.5-VL)
    vision_dim: int = 1280
    llm_dim: int = 3584
    merge: int = 4  # spatial_merge_size 2 -> 2x2
    tokens: int = 1024  # a 448x448 image: 32x32 patches


class PatchMerger(nn.Module):
    def __init__(self, config: PatchMergerConfig):
        super().__init__()
        width = config.vision_dim * config.merge
        self.width = width
        self.ln_q = nn.LayerNorm(config.vision_dim, eps=1e-6) if config.norm == "layernorm" else RMSNorm(config.vision_dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, config.llm_dim))

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_q(vision_features).reshape(-1, self.width))


def io_specs(config: PatchMergerConfig):
    m = config.merge
    tokens = Axis("tokens", min=m, opt=config.tokens, max=16384, samples=(config.tokens, m, 4 * 251), multiple_of=m)
    return (
        [TensorSpec("vision_features", (tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (f"tokens/{m}", config.llm_dim))],
    )


def _from_weights(weights, config: PatchMergerConfig) -> PatchMergerConfig:
    norm = "layernorm" if "ln_q.bias" in weights else "rmsnorm"
    vision_dim = weights["ln_q.weight"].shape[0]
    return PatchMergerConfig(norm, vision_dim, weights["mlp.2.weight"].shape[0], weights["mlp.0.weight"].shape[1] // vision_dim, config.tokens)


CONNECTOR = Connector(
    name="patch-merger",
    family="token-merging MLP",
    systems=("Qwen2-VL", "Qwen2.5-VL"),
    presets={
        "qwen2-vl-7b": PatchMergerConfig(llm_dim=3584),
        "qwen2-vl-2b": PatchMergerConfig(llm_dim=1536),
        "qwen2-vl-72b": PatchMergerConfig(llm_dim=8192),
        "qwen2.5-vl-7b": PatchMergerConfig(norm="rmsnorm", llm_dim=3584),
        "qwen2.5-vl-3b": PatchMergerConfig(norm="rmsnorm", llm_dim=2048),
        "qwen2.5-vl-72b": PatchMergerConfig(norm="rmsnorm", llm_dim=8192),
    },
    default_preset="qwen2-vl-7b",
    key_layouts=(KeyLayout("qwen-original", ((r"(?:model\.)?visual\.merger\.(ln_q\..*|mlp\.[02]\..*)", r"\1"),)),),
    build=PatchMerger,
    io=io_specs,
    config_from_weights=_from_weights,
)
