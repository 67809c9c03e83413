"""Building blocks shared by several connectors, written so that they export everywhere."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def adaptive_pool_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) matrix equal to AdaptiveAvgPool1d: window [floor(i*in/out), ceil((i+1)*in/out)).
    As a MatMul it exports to every runtime, also where the output size does not divide the input."""
    matrix = torch.zeros(size_out, size_in)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -((-(i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class AdaptiveAvgPool2dAsMatMul(nn.Module):
    """AdaptiveAvgPool2d for a fixed input grid, as one MatMul over the flattened grid."""

    def __init__(self, size_in: int, size_out: int):
        super().__init__()
        pool = adaptive_pool_matrix(size_in, size_out)
        self.size_out = size_out
        self.register_buffer("matrix", torch.kron(pool, pool).T.contiguous(), persistent=False)

    matrix: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, h, w)
        pooled = x.flatten(2) @ self.matrix
        return pooled.unflatten(2, (self.size_out, self.size_out))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) tensor (timm's LayerNorm2d / LayerNormAct2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class RMSNorm(nn.Module):
    """RMSNorm as Qwen2/Llama compute it: variance in fp32, then the weight."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def tokens_to_grid(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side*side, C) -> (B, C, side, side)"""
    return x.transpose(1, 2).unflatten(2, (side, side))


def grid_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)"""
    return x.flatten(2).transpose(1, 2)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[b, n, h*d] -> [b, h, n, d]; -1 for the head size keeps batch and sequence dynamic in the export."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[b, h, n, d] -> [b, n, h*d]."""
    return x.transpose(1, 2).flatten(2)


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention over `heads` heads of [b, n, h*d] projections (mask additive or boolean)."""
    return merge_heads(F.scaled_dot_product_attention(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), attn_mask=mask))
