"""mPLUG-Owl's visual abstractor (X-PLUG/mPLUG-Owl, modeling_mplug_owl.py): 64 learned queries,
6 layers of cross-attention whose keys and values are [normed queries, normed vision tokens],
a SwiGLU MLP with a LayerNorm inside, then `visual_fc` into the LLM width and a learned
`vit_eos` token appended: [batch, 257, 1024] -> [batch, 65, 4096]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec
from .blocks import multi_head_attention


@dataclass(frozen=True)
class OwlAbstractorConfig:
    vision_dim: int = 1024  # ViT-L/14 (encoder_hidden_size); keys see [queries, vision], so it equals hidden
    hidden: int = 1024
    llm_dim: int = 4096
    layers: int = 6
    heads: int = 16
    intermediate: int = 2816
    queries: int = 64
    ffn_eps: float = 1e-6  # ffn_ln takes layer_norm_eps; norm1/normk/norm2 keep LayerNorm's 1e-5
    tokens: int = 257  # 224 px, CLS kept


class MultiHeadAttention(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.heads = config.heads
        self.query = nn.Linear(config.hidden, config.hidden)
        self.key = nn.Linear(config.vision_dim, config.hidden)
        self.value = nn.Linear(config.vision_dim, config.hidden)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return multi_head_attention(self.query(queries), self.key(context), self.value(context), self.heads)


class SwiGLUWithNorm(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.w1 = nn.Linear(config.hidden, config.intermediate)
        self.w2 = nn.Linear(config.intermediate, config.hidden)
        self.w3 = nn.Linear(config.hidden, config.intermediate)
        self.ffn_ln = nn.LayerNorm(config.intermediate, eps=config.ffn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.ffn_ln(F.silu(self.w1(x)) * self.w3(x)))


class CrossOutput(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.out_proj = nn.Linear(config.hidden, config.hidden)
        self.norm2 = nn.LayerNorm(config.hidden)
        self.mlp = SwiGLUWithNorm(config)

    def forward(self, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        x = residual + self.out_proj(attended)
        return x + self.mlp(self.norm2(x))


class CrossAttention(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.attention = MultiHeadAttention(config)
        self.output = CrossOutput(config)
        self.norm1 = nn.LayerNorm(config.hidden)
        self.normk = nn.LayerNorm(config.hidden)

    def forward(self, queries: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        queries = self.norm1(queries)  # the original's residual is the normed queries too
        context = torch.cat([queries, self.normk(vision)], dim=1)
        return self.output(self.attention(queries, context), queries)


class AbstractorLayer(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.crossattention = CrossAttention(config)


class Encoder(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.layers = nn.ModuleList(AbstractorLayer(config) for _ in range(config.layers))


class Abstractor(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.encoder = Encoder(config)
        self.visual_fc = nn.Linear(config.hidden, config.llm_dim)
        self.vit_eos = nn.Parameter(0.02 * torch.randn(1, 1, config.llm_dim))


class OwlAbstractor(nn.Module):
    def __init__(self, config: OwlAbstractorConfig):
        super().__init__()
        self.query_tokens = nn.Parameter(0.02 * torch.randn(1, config.queries, config.hidden))
        self.abstractor = Abstractor(config)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        x = self.query_tokens.expand(vision_features.shape[0], -1, -1)
        for layer in self.abstractor.encoder.layers:
            x = layer.crossattention(x, vision_features)
        x = self.abstractor.visual_fc(x)
        return torch.cat([x, self.abstractor.vit_eos.expand(x.shape[0], -1, -1)], dim=1)


def io_specs(config: OwlAbstractorConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    tokens = Axis("tokens", min=1, opt=config.tokens, max=4 * config.tokens, samples=(config.tokens, 7, 2 * config.tokens - 1))
    return (
        [TensorSpec("vision_features", (BATCH, tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, config.queries + 1, config.llm_dim))],
    )


def _from_weights(weights, config: OwlAbstractorConfig) -> OwlAbstractorConfig:
    _, queries, hidden = weights["query_tokens"].shape
    prefix = "abstractor.encoder.layers.0.crossattention."
    return OwlAbstractorConfig(
        vision_dim=weights[prefix + "attention.key.weight"].shape[1],
        hidden=hidden,
        llm_dim=weights["abstractor.visual_fc.weight"].shape[0],
        layers=1 + max(int(k.split(".")[3]) for k in weights if k.startswith("abstractor.encoder.layers.")),
        heads=config.heads,  # not recoverable from shapes
        intermediate=weights[prefix + "output.mlp.w1.weight"].shape[0],
        queries=queries,
        ffn_eps=config.ffn_eps,
        tokens=config.tokens,
    )


CONNECTOR = Connector(
    name="owl-abstractor",
    family="cross-attention-resampler",
    systems=("mPLUG-Owl",),
    presets={"mplug-owl-llama-7b": OwlAbstractorConfig()},
    default_preset="mplug-owl-llama-7b",
    key_layouts=(
        KeyLayout(
            "mplug-owl-original",
            (
                (r"(?:model\.)?query_tokens", "query_tokens"),
                (r"(?:model\.)?abstractor\.(encoder\.layers\.\d+\.crossattention\..*|visual_fc\.(?:weight|bias)|vit_eos)", r"abstractor.\1"),
            ),
        ),
    ),
    build=OwlAbstractor,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
)
