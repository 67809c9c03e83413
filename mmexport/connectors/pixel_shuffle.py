"""InternVL: pixel shuffle (ratio 0.5: each 2x2 block of tokens becomes one token of 4x width),
then LayerNorm, Linear, GELU, Linear (`mlp1` in the original, `InternVLMultiModalProjector`
in transformers). Input: vision tokens with CLS dropped; batch = image tiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import Axis, Connector, KeyLayout, TensorSpec

TILES = Axis("tiles", min=1, opt=7, max=40, samples=(1, 2, 3))


@dataclass(frozen=True)
class PixelShuffleConfig:
    vision_dim: int = 1024  # InternViT-300M-448px
    llm_dim: int = 4096
    tokens: int = 1024  # 448 px, patch 14: 32x32
    downsample: int = 2  # 1 / downsample_ratio (0.5)


class PixelShuffleMLP(nn.Module):
    """Parameter names follow transformers' InternVLMultiModalProjector."""

    def __init__(self, config: PixelShuffleConfig):
        super().__init__()
        width = config.vision_dim * config.downsample**2
        self.side, self.r = math.isqrt(config.tokens), config.downsample
        self.layer_norm = nn.LayerNorm(width)
        self.linear_1 = nn.Linear(width, config.llm_dim)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(config.llm_dim, config.llm_dim)

    def pixel_shuffle(self, x: torch.Tensor) -> torch.Tensor:
        # InternVL's pixel_shuffle (ps_version v2) on (B, W, H, C): fold H, transpose, fold W, transpose back.
        b, s, r, c = x.shape[0], self.side, self.r, x.shape[-1]
        x = x.reshape(b, s, s // r, c * r).permute(0, 2, 1, 3)
        x = x.reshape(b, s // r, s // r, c * r * r).permute(0, 2, 1, 3)
        return x.reshape(b, -1, c * r * r)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        x = self.pixel_shuffle(vision_features.unflatten(1, (self.side, self.side)))
        return self.linear_2(self.act(self.linear_1(self.layer_norm(x))))


def io_specs(config: PixelShuffleConfig):
    return (
        [TensorSpec("vision_features", (TILES, config.tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (TILES, config.tokens // config.downsample**2, config.llm_dim))],
    )


def _from_weights(weights, config: PixelShuffleConfig) -> PixelShuffleConfig:
    llm_dim, width = weights["linear_1.weight"].shape
    return PixelShuffleConfig(width // config.downsample**2, llm_dim, config.tokens, config.downsample)


CONNECTOR = Connector(
    name="pixel-shuffle",
    family="token-merging MLP",
    systems=("InternVL 1.5/2/2.5/3", "Mini-InternVL"),
    presets={
        "internvl2-8b": PixelShuffleConfig(llm_dim=4096),
        "internvl2-2b": PixelShuffleConfig(llm_dim=2048),
        "internvl2.5-8b": PixelShuffleConfig(llm_dim=4096),
        "internvl2-26b": PixelShuffleConfig(vision_dim=3200, llm_dim=6144),  # InternViT-6B, InternLM2-20B
    },
    default_preset="internvl2-8b",
    key_layouts=(
        KeyLayout(
            "transformers",
            ((r"(?:model\.)?multi_modal_projector\.(layer_norm|linear_1|linear_2)\.(weight|bias)", r"\1.\2"),),
        ),
        KeyLayout(
            "internvl-original",
            (
                (r"mlp1\.0\.(weight|bias)", r"layer_norm.\1"),
                (r"mlp1\.1\.(weight|bias)", r"linear_1.\1"),
                (r"mlp1\.3\.(weight|bias)", r"linear_2.\1"),
            ),
        ),
    ),
    build=PixelShuffleMLP,
    io=io_specs,
    config_from_weights=_from_weights,
)
