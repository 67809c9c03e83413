"""Flamingo's GatedCrossAttentionBlock (OpenFlamingo's helpers.py), one layer of the language
model's cross-attention to the media latents: text tokens attend only to the latest media before
them, tokens with no media before them get nothing, and tanh gates scale both residual branches.
Inputs: text hidden states, media latents from the perceiver, and media_locations."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec
from .blocks import merge_heads, split_heads
from .perceiver import feed_forward

# Masked scores: exp() underflows to exactly 0 against any real score in fp32, and the value
# stays finite in fp16 (the original's -finfo.max overflows to -inf there, and a row with
# every key masked then turns into NaN).
MASKED = -10000.0


@dataclass(frozen=True)
class GatedXAttnConfig:
    dim: int = 4096  # language model width
    dim_visual: int = 1024
    heads: int = 8
    dim_head: int = 64
    ff_mult: int = 4
    latents: int = 64
    text_tokens: int = 64  # opt size of the text axis


class MaskedCrossAttention(nn.Module):
    def __init__(self, config: GatedXAttnConfig):
        super().__init__()
        inner = config.heads * config.dim_head
        self.heads = config.heads
        self.scale = config.dim_head**-0.5
        self.norm = nn.LayerNorm(config.dim)
        self.to_q = nn.Linear(config.dim, inner, bias=False)
        self.to_kv = nn.Linear(config.dim_visual, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, config.dim, bias=False)

    def forward(self, x: torch.Tensor, media: torch.Tensor, media_locations: torch.Tensor) -> torch.Tensor:
        latents = media.shape[2]
        q = split_heads(self.to_q(self.norm(x)), self.heads) * self.scale
        k, v = self.to_kv(media.flatten(1, 2)).chunk(2, dim=-1)
        scores = q @ split_heads(k, self.heads).transpose(-1, -2)  # [b, h, text, media*latents]
        # Text token i sees media j (1-based) only if j == number of media tags up to i.
        text_time = media_locations.to(torch.int64).cumsum(dim=-1)  # [b, text]
        media_time = torch.arange(1, media.shape[1] + 1, device=media.device).repeat_interleave(latents)
        visible = text_time[:, None, :, None] == media_time[None, None, None, :]
        scores = torch.where(visible, scores, MASKED)
        weights = scores.softmax(dim=-1)
        weights = torch.where((text_time == 0)[:, None, :, None], 0.0, weights)  # no media yet: attend to nothing
        return self.to_out(merge_heads(weights @ split_heads(v, self.heads)))


class GatedCrossAttentionBlock(nn.Module):
    def __init__(self, config: GatedXAttnConfig):
        super().__init__()
        self.attn = MaskedCrossAttention(config)
        self.attn_gate = nn.Parameter(torch.tensor([0.0]))
        self.ff = feed_forward(config.dim, config.ff_mult)
        self.ff_gate = nn.Parameter(torch.tensor([0.0]))
        # Released gates are trained; a random-weight export needs them open to test anything.
        with torch.no_grad():
            self.attn_gate.fill_(0.5)
            self.ff_gate.fill_(0.5)

    def forward(self, lang_x: torch.Tensor, media: torch.Tensor, media_locations: torch.Tensor) -> torch.Tensor:
        x = self.attn(lang_x, media, media_locations) * self.attn_gate.tanh() + lang_x
        return self.ff(x) * self.ff_gate.tanh() + x


def io_specs(config: GatedXAttnConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    text = Axis("text_tokens", min=1, opt=config.text_tokens, max=2048, samples=(config.text_tokens, 1, 37))
    media = Axis("media", min=1, opt=1, max=32, samples=(1, 3, 2))
    return (
        [
            TensorSpec("lang_x", (BATCH, text, config.dim)),
            TensorSpec("media", (BATCH, media, config.latents, config.dim_visual)),
            TensorSpec("media_locations", (BATCH, text), "bool"),
        ],
        [TensorSpec("lang_out", (BATCH, text, config.dim))],
    )


def special_inputs(config: GatedXAttnConfig, sizes: dict[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """<image> tags at random places, at most `media` per row; row 0 starts with text before any tag."""
    batch, length, media = sizes["batch"], sizes["text_tokens"], sizes["media"]
    locations = torch.zeros(batch, length, dtype=torch.bool)
    for row in range(batch):
        count = int(torch.randint(1, media + 1, (1,), generator=generator))
        places = torch.randperm(length, generator=generator)[:count]
        if row == 0 and length > 1:
            places = places.clamp(min=1)
        locations[row, places] = True
    return {"media_locations": locations}


def _from_weights(weights, config: GatedXAttnConfig) -> GatedXAttnConfig:
    inner, dim = weights["attn.to_q.weight"].shape
    return GatedXAttnConfig(
        dim=dim,
        dim_visual=weights["attn.to_kv.weight"].shape[1],
        heads=inner // config.dim_head,
        dim_head=config.dim_head,
        ff_mult=weights["ff.1.weight"].shape[0] // dim,
        latents=config.latents,
        text_tokens=config.text_tokens,
    )


CONNECTOR = Connector(
    name="gated-xattn",
    family="gated-cross-attention",
    systems=("OpenFlamingo", "Flamingo"),
    presets={
        "openflamingo-3b": GatedXAttnConfig(dim=2048),  # MPT-1B, a block after every layer
        "openflamingo-9b": GatedXAttnConfig(dim=4096),  # MPT-7B, a block every 4th layer
    },
    default_preset="openflamingo-9b",
    key_layouts=(
        KeyLayout(
            "open-flamingo",
            ((r"(?:module\.)?lang_encoder\.gated_cross_attn_layers\.{layer}\.(attn\..*|attn_gate|ff\..*|ff_gate)", r"\1"),),
        ),
    ),
    build=GatedCrossAttentionBlock,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
    special_inputs=special_inputs,
    layer_key=r"(?:module\.)?lang_encoder\.gated_cross_attn_layers\.(\d+)\.",
)
