"""CogVLM's gated (SwiGLU) adapter from EVA2-CLIP-E to the LLM, with learned begin/end-of-image
tokens around the image tokens (`EVA2CLIPModel.linear_proj`, `boi`, `eoi` in CogVLM's visual.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec


@dataclass(frozen=True)
class GLUConfig:
    vision_dim: int = 1792  # EVA2-CLIP-E
    llm_dim: int = 4096
    intermediate: int = 11008
    tokens: int = 1225  # 490 px, patch 14: 35x35, CLS dropped before the adapter


class GLU(nn.Module):
    def __init__(self, config: GLUConfig):
        super().__init__()
        self.linear_proj = nn.Linear(config.vision_dim, config.llm_dim, bias=False)
        self.norm1 = nn.LayerNorm(config.llm_dim)
        self.gate_proj = nn.Linear(config.llm_dim, config.intermediate, bias=False)
        self.dense_h_to_4h = nn.Linear(config.llm_dim, config.intermediate, bias=False)
        self.dense_4h_to_h = nn.Linear(config.intermediate, config.llm_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.linear_proj(x)))
        return self.dense_4h_to_h(F.silu(self.gate_proj(x)) * self.dense_h_to_4h(x))


class GLUConnector(nn.Module):
    def __init__(self, config: GLUConfig):
        super().__init__()
        self.linear_proj = GLU(config)
        self.boi = nn.Parameter(torch.randn(1, 1, config.llm_dim) * 0.02)
        self.eoi = nn.Parameter(torch.randn(1, 1, config.llm_dim) * 0.02)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        x = self.linear_proj(vision_features)
        batch = x.shape[0]
        return torch.cat((self.boi.expand(batch, -1, -1), x, self.eoi.expand(batch, -1, -1)), dim=1)


def io_specs(config: GLUConfig):
    tokens = Axis("tokens", min=1, opt=config.tokens, max=4 * config.tokens, samples=(config.tokens, 7, config.tokens + config.tokens // 3 + 1))
    return (
        [TensorSpec("vision_features", (BATCH, tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, "tokens+2", config.llm_dim))],
    )


def _from_weights(weights, config: GLUConfig) -> GLUConfig:
    llm_dim, vision_dim = weights["linear_proj.linear_proj.weight"].shape
    return GLUConfig(vision_dim, llm_dim, weights["linear_proj.gate_proj.weight"].shape[0], config.tokens)


CONNECTOR = Connector(
    name="glu",
    family="gated projection",
    systems=("CogVLM", "CogAgent"),
    presets={
        "cogvlm-chat-17b": GLUConfig(),
        "cogagent-chat-18b": GLUConfig(),  # same low-resolution branch adapter as CogVLM-17B
    },
    default_preset="cogvlm-chat-17b",
    key_layouts=(
        KeyLayout(
            "cogvlm-hf",
            (
                (r"(?:model\.)?vision\.linear_proj\.(.*)", r"linear_proj.\1"),
                (r"(?:model\.)?vision\.(boi|eoi)", r"\1"),
            ),
        ),
    ),
    build=GLUConnector,
    io=io_specs,
    config_from_weights=_from_weights,
)
