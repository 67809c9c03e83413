"""Idefics2's connector (transformers' Idefics2Connector): a SwiGLU modality projection from the
vision width to the text width, then a Perceiver resampler (64 latents, 3 layers, RMSNorm, 16
query heads over 4 key/value heads, keys and values over context + latents) that takes a patch
attention mask for padded images. Parameter names follow transformers (`model.connector.*`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec
from .blocks import RMSNorm, merge_heads, split_heads

# Masked scores: zero weight in fp32, finite in fp16. Latents are never masked, so no row is empty.
MASKED = -10000.0


@dataclass(frozen=True)
class Idefics2Config:
    vision_dim: int = 1152  # SigLIP so400m
    text_dim: int = 4096  # Mistral-7B
    intermediate: int = 14336
    latents: int = 64
    depth: int = 3
    heads: int = 16
    head_dim: int = 96
    kv_heads: int = 4
    eps: float = 1e-6
    tokens: int = 4900  # 980 px / patch 14 = 70 x 70


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class PerceiverAttention(nn.Module):
    def __init__(self, config: Idefics2Config):
        super().__init__()
        self.heads, self.kv_heads = config.heads, config.kv_heads
        self.q_proj = nn.Linear(config.text_dim, config.heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.text_dim, config.kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.text_dim, config.kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.heads * config.head_dim, config.text_dim, bias=False)

    def _kv_heads(self, x: torch.Tensor) -> torch.Tensor:
        # Grouped KV heads repeated explicitly: plain MatMuls for every runtime.
        return split_heads(x, self.kv_heads).repeat_interleave(self.heads // self.kv_heads, dim=1)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        both = torch.cat([context, latents], dim=1)
        q, k, v = split_heads(self.q_proj(latents), self.heads), self._kv_heads(self.k_proj(both)), self._kv_heads(self.v_proj(both))
        return self.o_proj(merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))


class PerceiverLayer(nn.Module):
    def __init__(self, config: Idefics2Config):
        super().__init__()
        self.input_latents_norm = RMSNorm(config.text_dim, config.eps)
        self.input_context_norm = RMSNorm(config.text_dim, config.eps)
        self.self_attn = PerceiverAttention(config)
        self.post_attention_layernorm = RMSNorm(config.text_dim, config.eps)
        self.mlp = SwiGLU(config.text_dim, 4 * config.text_dim, config.text_dim)

    def forward(self, latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latents = latents + self.self_attn(self.input_latents_norm(latents), self.input_context_norm(context), mask)
        return latents + self.mlp(self.post_attention_layernorm(latents))


class PerceiverResampler(nn.Module):
    def __init__(self, config: Idefics2Config):
        super().__init__()
        self.latents = nn.Parameter(torch.ones(config.latents, config.text_dim) + 0.02 * torch.randn(config.latents, config.text_dim))
        self.layers = nn.ModuleList(PerceiverLayer(config) for _ in range(config.depth))
        self.norm = RMSNorm(config.text_dim, config.eps)


class Idefics2Connector(nn.Module):
    def __init__(self, config: Idefics2Config):
        super().__init__()
        self.modality_projection = SwiGLU(config.vision_dim, config.intermediate, config.text_dim)
        self.perceiver_resampler = PerceiverResampler(config)

    def forward(self, image_hidden_states: torch.Tensor, patch_attention_mask: torch.Tensor) -> torch.Tensor:
        context = self.modality_projection(image_hidden_states)
        resampler = self.perceiver_resampler
        latents = resampler.latents.expand(context.shape[0], -1, -1)
        keep = torch.cat([patch_attention_mask.to(torch.bool), torch.ones_like(latents[..., 0], dtype=torch.bool)], dim=1)
        mask = torch.where(keep, 0.0, MASKED).to(context.dtype)[:, None, None, :]
        for layer in resampler.layers:
            latents = layer(latents, context, mask)
        return resampler.norm(latents)


def io_specs(config: Idefics2Config) -> tuple[list[TensorSpec], list[TensorSpec]]:
    tokens = Axis("tokens", min=1, opt=config.tokens, max=config.tokens, samples=(config.tokens, 7, config.tokens // 4 + 1))
    return (
        [
            TensorSpec("image_hidden_states", (BATCH, tokens, config.vision_dim)),
            TensorSpec("patch_attention_mask", (BATCH, tokens), "bool"),
        ],
        [TensorSpec("llm_embeds", (BATCH, config.latents, config.text_dim))],
    )


def special_inputs(config: Idefics2Config, sizes: dict[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Real patches first, padding after (images smaller than the largest in the batch); row 0 full."""
    batch, tokens = sizes["batch"], sizes["tokens"]
    real = torch.randint(1, tokens + 1, (batch,), generator=generator)
    real[0] = tokens
    return {"patch_attention_mask": torch.arange(tokens)[None, :] < real[:, None]}


def _from_weights(weights, config: Idefics2Config) -> Idefics2Config:
    intermediate, vision_dim = weights["modality_projection.gate_proj.weight"].shape
    latents, text_dim = weights["perceiver_resampler.latents"].shape
    depth = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("perceiver_resampler.layers."))
    q_out = weights["perceiver_resampler.layers.0.self_attn.q_proj.weight"].shape[0]
    kv_out = weights["perceiver_resampler.layers.0.self_attn.k_proj.weight"].shape[0]
    return Idefics2Config(
        vision_dim=vision_dim,
        text_dim=text_dim,
        intermediate=intermediate,
        latents=latents,
        depth=depth,
        heads=q_out // config.head_dim,
        head_dim=config.head_dim,
        kv_heads=kv_out // config.head_dim,
        eps=config.eps,
        tokens=config.tokens,
    )


CONNECTOR = Connector(
    name="idefics2",
    family="perceiver-resampler",
    systems=("Idefics2",),
    presets={"idefics2-8b": Idefics2Config()},
    default_preset="idefics2-8b",
    key_layouts=(
        KeyLayout(
            "transformers",
            ((r"(?:model\.)?connector\.((?:modality_projection|perceiver_resampler)\..*)", r"\1"),),
        ),
    ),
    build=Idefics2Connector,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
    special_inputs=special_inputs,
)
