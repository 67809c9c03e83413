"""BLIP-2's Q-Former as a connector: learned queries -> Q-Former (cross-attending to the
vision features) -> language_projection. Parameter names follow transformers' Blip2Model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec
from .blocks import multi_head_attention


@dataclass(frozen=True)
class QFormerConfig:
    vision_dim: int = 1408
    llm_dim: int = 2560
    num_queries: int = 32
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072
    cross_attention_every: int = 2
    layer_norm_eps: float = 1e-12
    tokens: int = 257  # EVA-CLIP-g 224 px, CLS kept


class Attention(nn.Module):
    """Multi-head attention; keys and values come from `context` (cross) or the queries (self)."""

    def __init__(self, hidden: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(context_dim, hidden)
        self.value = nn.Linear(context_dim, hidden)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask`: additive, broadcastable to [batch, heads, queries, keys]."""
        return multi_head_attention(self.query(x), self.key(context), self.value(context), self.heads, mask)


class ResidualOutput(nn.Module):
    def __init__(self, in_dim: int, hidden: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(in_dim, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class AttentionBlock(nn.Module):
    def __init__(self, config: QFormerConfig, context_dim: int):
        super().__init__()
        self.attention = Attention(config.hidden, context_dim, config.heads)
        self.output = ResidualOutput(config.hidden, config.hidden, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.attention(x, context, mask), x)


class Intermediate(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden, config.intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # exact erf GELU, as BERT's "gelu"


class QFormerLayer(nn.Module):
    def __init__(self, config: QFormerConfig, index: int):
        super().__init__()
        self.attention = AttentionBlock(config, config.hidden)
        self.has_cross_attention = index % config.cross_attention_every == 0
        if self.has_cross_attention:
            self.crossattention = AttentionBlock(config, config.vision_dim)
        self.intermediate_query = Intermediate(config)
        self.output_query = ResidualOutput(config.intermediate, config.hidden, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, x)
        if self.has_cross_attention:
            x = self.crossattention(x, vision)
        return self.output_query(self.intermediate_query(x), x)


class QFormerEncoder(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.layer = nn.ModuleList(QFormerLayer(config, i) for i in range(config.layers))


class QFormer(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        self.layernorm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.encoder = QFormerEncoder(config)

    def forward(self, queries: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        x = self.layernorm(queries)
        for layer in self.encoder.layer:
            x = layer(x, vision)
        return x


class QFormerConnector(nn.Module):
    def __init__(self, config: QFormerConfig):
        super().__init__()
        # Released checkpoints overwrite this; the std only matters for random-weight exports.
        self.query_tokens = nn.Parameter(torch.randn(1, config.num_queries, config.hidden) * 0.02)
        self.qformer = QFormer(config)
        self.language_projection = nn.Linear(config.hidden, config.llm_dim)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(vision_features.shape[0], -1, -1)
        return self.language_projection(self.qformer(queries, vision_features))


def io_specs(config: QFormerConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    tokens = Axis("tokens", min=1, opt=config.tokens, max=4 * config.tokens, samples=(config.tokens, 7, 2 * config.tokens - 1))
    return (
        [TensorSpec("vision_features", (BATCH, tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, config.num_queries, config.llm_dim))],
    )


ConfigT = TypeVar("ConfigT", bound=QFormerConfig)


def _from_weights(weights, config: ConfigT) -> ConfigT:
    """Dims from the weights (heads, eps and cross-attention frequency are not in the shapes).
    `replace` keeps the config's own type, so subclasses (InstructBLIP) build on this."""
    _, num_queries, hidden = weights["query_tokens"].shape
    layer_ids = {int(k.split(".")[3]) for k in weights if k.startswith("qformer.encoder.layer.")}
    return dataclasses.replace(
        config,
        vision_dim=weights["qformer.encoder.layer.0.crossattention.attention.key.weight"].shape[1],
        llm_dim=weights["language_projection.weight"].shape[0],
        num_queries=num_queries,
        hidden=hidden,
        layers=max(layer_ids) + 1,
        intermediate=weights["qformer.encoder.layer.0.intermediate_query.dense.weight"].shape[0],
    )


# LAVIS names (BLIP-2, MiniGPT-4, InstructBLIP): Qformer.bert.* -> qformer.*, attention.self -> attention.attention.
LAVIS_QFORMER_RULES = (
    (r"query_tokens", "query_tokens"),
    (r"Qformer\.bert\.embeddings\.LayerNorm\.(weight|bias)", r"qformer.layernorm.\1"),
    (r"Qformer\.bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.self\.(.*)", r"qformer.encoder.layer.\1.\2.attention.\3"),
    (
        r"Qformer\.bert\.encoder\.layer\.(\d+)\.((?:attention|crossattention)\.output|intermediate_query|output_query)\.(.*)",
        r"qformer.encoder.layer.\1.\2.\3",
    ),
)
_QFORMER_BODY = r"(layernorm\..*|encoder\.layer\.\d+\.(?:attention|crossattention|intermediate_query|output_query)\..*)"

CONNECTOR = Connector(
    name="qformer",
    family="q-former",
    systems=("BLIP-2",),
    presets={
        "blip2-opt-2.7b": QFormerConfig(llm_dim=2560),
        "blip2-opt-6.7b": QFormerConfig(llm_dim=4096),
        "blip2-flan-t5-xl": QFormerConfig(llm_dim=2048),
    },
    default_preset="blip2-opt-2.7b",
    key_layouts=(
        KeyLayout(
            "transformers",
            (
                (r"(?:model\.)?query_tokens", "query_tokens"),
                (r"(?:model\.)?qformer\." + _QFORMER_BODY, r"qformer.\1"),
                (r"(?:model\.)?language_projection\.(weight|bias)", r"language_projection.\1"),
            ),
        ),
        KeyLayout("lavis-original", LAVIS_QFORMER_RULES + ((r"(?:opt_proj|t5_proj)\.(weight|bias)", r"language_projection.\1"),)),
    ),
    build=QFormerConnector,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
)
