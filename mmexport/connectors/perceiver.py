"""OpenFlamingo's PerceiverResampler: 64 learned latents cross-attend (keys and values over
media tokens and latents together) through 6 layers; [batch, media, frames, tokens, dim] ->
[batch, media, 64, dim]. Parameter names follow open_flamingo's helpers.py (`perceiver.*`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec
from .blocks import multi_head_attention


@dataclass(frozen=True)
class PerceiverConfig:
    dim: int = 1024  # CLIP ViT-L/14
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    num_latents: int = 64
    ff_mult: int = 4
    tokens: int = 256  # ViT-L/14 224 px patch tokens
    frames: int = 1


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm, Linear (no bias), GELU (erf), Linear (no bias): keys .0, .1, .3."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False))


class PerceiverAttention(nn.Module):
    def __init__(self, config: PerceiverConfig):
        super().__init__()
        inner = config.heads * config.dim_head
        self.heads = config.heads
        self.norm_media = nn.LayerNorm(config.dim)
        self.norm_latents = nn.LayerNorm(config.dim)
        self.to_q = nn.Linear(config.dim, inner, bias=False)
        self.to_kv = nn.Linear(config.dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, config.dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media, latents = self.norm_media(media), self.norm_latents(latents)
        k, v = self.to_kv(torch.cat([media, latents], dim=-2)).chunk(2, dim=-1)
        # The original subtracts the row max before softmax; softmax is invariant to it.
        return self.to_out(multi_head_attention(self.to_q(latents), k, v, self.heads))


class PerceiverResampler(nn.Module):
    def __init__(self, config: PerceiverConfig):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(config.num_latents, config.dim))
        self.layers = nn.ModuleList(nn.ModuleList([PerceiverAttention(config), feed_forward(config.dim, config.ff_mult)]) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        batch, media_count = vision_features.shape[0], vision_features.shape[1]
        # Each (batch, media) pair is resampled on its own: fold them into one axis (4-D attention).
        media = vision_features.flatten(2, 3).flatten(0, 1)  # [b*T, F*v, d]
        latents = self.latents.expand(media.shape[0], -1, -1)
        for attention, ff in self.layers:
            latents = attention(media, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents).unflatten(0, (batch, media_count))


def io_specs(config: PerceiverConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    media = Axis("media", min=1, opt=1, max=32, samples=(1, 3, 2))
    tokens = Axis("tokens", min=1, opt=config.tokens, max=4 * config.tokens, samples=(config.tokens, 7, 2 * config.tokens - 1))
    return (
        [TensorSpec("vision_features", (BATCH, media, config.frames, tokens, config.dim))],
        [TensorSpec("llm_embeds", (BATCH, media, config.num_latents, config.dim))],
    )


def _from_weights(weights, config: PerceiverConfig) -> PerceiverConfig:
    num_latents, dim = weights["latents"].shape
    depth = 1 + max(int(k.split(".")[1]) for k in weights if k.startswith("layers."))
    inner = weights["layers.0.0.to_q.weight"].shape[0]
    return PerceiverConfig(
        dim=dim,
        depth=depth,
        heads=inner // config.dim_head,  # dim_head 64 in every released model
        dim_head=config.dim_head,
        num_latents=num_latents,
        ff_mult=weights["layers.0.1.1.weight"].shape[0] // dim,
        tokens=config.tokens,
        frames=config.frames,
    )


CONNECTOR = Connector(
    name="perceiver",
    family="perceiver-resampler",
    systems=("OpenFlamingo", "Flamingo"),
    presets={
        # Both use CLIP ViT-L/14 (width 1024), 224 px: 256 patch tokens per image.
        "openflamingo-3b": PerceiverConfig(),
        "openflamingo-9b": PerceiverConfig(),
    },
    default_preset="openflamingo-9b",
    key_layouts=(
        KeyLayout(
            "open-flamingo",
            ((r"(?:module\.)?perceiver\.(latents|layers\.\d+\.[01]\..*|norm\.(?:weight|bias))", r"\1"),),
        ),
    ),
    build=PerceiverResampler,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
)
