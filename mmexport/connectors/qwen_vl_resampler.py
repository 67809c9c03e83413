"""Qwen-VL's visual tail: `attn_pool` (Resampler: 256 learned queries, one cross-attention with
2-D sin-cos position embeddings on queries and keys) + `ln_post` + `@ proj`. The key position
embedding is the 16x16 table resized bicubically to the input grid; it depends only on weights
and the (fixed) token count, so it is computed once in PyTorch and exported as a constant:
no Resize op, so nothing for ONNX Runtime or TensorRT's cubic kernels to get different."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import BATCH, Connector, KeyLayout, TensorSpec
from .blocks import multi_head_attention


@dataclass(frozen=True)
class QwenVLResamplerConfig:
    vision_dim: int = 1664  # ViT-bigG width (kv_dim)
    embed_dim: int = 4096  # output_dim
    heads: int = 32  # output_dim // 128
    queries: int = 256  # 16 x 16
    tokens: int = 1024  # 448 px / patch 14 = 32 x 32
    eps: float = 1e-6


def sincos_2d(dim: int, grid: int) -> np.ndarray:
    """MAE's 2-D sin-cos table, [grid*grid, dim] (half the channels for each axis)."""

    def one_axis(d: int, positions: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float32) / (d / 2.0))
        out = np.einsum("m,d->md", positions.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    w, h = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    return np.concatenate([one_axis(dim // 2, h), one_axis(dim // 2, w)], axis=1)


def resize_positions(table: torch.Tensor, tokens: int) -> torch.Tensor:
    """The original's get_abs_pos: bicubic, align_corners=False, in fp32."""
    src, dst = int(math.sqrt(table.shape[0])), int(math.sqrt(tokens))
    if src == dst:
        return table
    grid = table.float().reshape(1, src, src, -1).permute(0, 3, 1, 2)
    return F.interpolate(grid, size=(dst, dst), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).flatten(0, 2).to(table.dtype)


class MultiheadAttention(nn.Module):
    """nn.MultiheadAttention's parameters (in_proj_weight/bias, out_proj), with the packed
    projection split explicitly: the exported graph has no batch size baked in."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:  # batch-first
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
        return self.out_proj(multi_head_attention(q, k, v, self.heads))


class Resampler(nn.Module):
    def __init__(self, config: QwenVLResamplerConfig):
        super().__init__()
        grid = int(math.sqrt(config.queries))
        self.pos_embed = nn.Parameter(torch.from_numpy(sincos_2d(config.embed_dim, grid)).float(), requires_grad=False)
        self.query = nn.Parameter(torch.randn(config.queries, config.embed_dim) * 0.02)
        self.kv_proj = nn.Linear(config.vision_dim, config.embed_dim, bias=False)
        self.attn = MultiheadAttention(config.embed_dim, config.heads)
        self.ln_q = nn.LayerNorm(config.embed_dim, eps=config.eps)
        self.ln_kv = nn.LayerNorm(config.embed_dim, eps=config.eps)


class QwenVLResampler(nn.Module):
    def __init__(self, config: QwenVLResamplerConfig):
        super().__init__()
        self.tokens = config.tokens
        self.attn_pool = Resampler(config)
        self.ln_post = nn.LayerNorm(config.embed_dim, eps=config.eps)
        self.proj = nn.Parameter(config.embed_dim**-0.5 * torch.randn(config.embed_dim, config.embed_dim))
        self.register_buffer("key_pos", resize_positions(self.attn_pool.pos_embed.data, config.tokens), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module._refresh_key_pos())

    def _refresh_key_pos(self) -> None:
        self.key_pos = resize_positions(self.attn_pool.pos_embed.data, self.tokens)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        pool = self.attn_pool
        x = pool.ln_kv(pool.kv_proj(vision_features))
        q = (pool.ln_q(pool.query) + pool.pos_embed).expand(x.shape[0], -1, -1)
        out = pool.attn(q, x + self.key_pos, x)
        return self.ln_post(out) @ self.proj


def io_specs(config: QwenVLResamplerConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    return (
        [TensorSpec("vision_features", (BATCH, config.tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, config.queries, config.embed_dim))],
    )


def _from_weights(weights, config: QwenVLResamplerConfig) -> QwenVLResamplerConfig:
    queries, embed_dim = weights["attn_pool.query"].shape
    return QwenVLResamplerConfig(
        vision_dim=weights["attn_pool.kv_proj.weight"].shape[1],
        embed_dim=embed_dim,
        heads=embed_dim // 128,  # Qwen-VL: num_heads = output_dim // 128
        queries=queries,
        tokens=config.tokens,
        eps=config.eps,
    )


CONNECTOR = Connector(
    name="qwen-vl-resampler",
    family="cross-attention-resampler",
    systems=("Qwen-VL", "Qwen-VL-Chat"),
    presets={"qwen-vl-chat": QwenVLResamplerConfig(), "qwen-vl": QwenVLResamplerConfig()},
    default_preset="qwen-vl-chat",
    key_layouts=(
        KeyLayout(
            "qwen-vl-original",
            ((r"(?:base_model\.model\.)?transformer\.visual\.(attn_pool\..*|ln_post\.(?:weight|bias)|proj)", r"\1"),),
        ),
    ),
    build=QwenVLResampler,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
)
