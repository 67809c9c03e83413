"""InstructBLIP's Q-Former: the instruction's tokens join the 32 learned queries in self-attention,
only the queries cross-attend to the image and go through `language_projection`. Parameter names
follow transformers' InstructBlipModel (query_tokens, qformer.*, language_projection)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec
from .qformer import LAVIS_QFORMER_RULES, AttentionBlock, Intermediate, QFormerConfig, ResidualOutput
from .qformer import _from_weights as qformer_dims

# Large enough to zero a softmax weight in fp32, small enough to stay finite in fp16.
MASKED = -10000.0


@dataclass(frozen=True)
class InstructBlipConfig(QFormerConfig):
    vocab_size: int = 30523  # bert-base-uncased + [DEC]
    max_positions: int = 512
    text_tokens: int = 32  # typical instruction length, for the axis' opt size


class InstructBlipLayer(nn.Module):
    def __init__(self, config: InstructBlipConfig, index: int):
        super().__init__()
        self.attention = AttentionBlock(config, config.hidden)
        self.has_cross_attention = index % config.cross_attention_every == 0
        if self.has_cross_attention:
            self.crossattention = AttentionBlock(config, config.vision_dim)
        self.intermediate = Intermediate(config)  # text tokens' feed-forward
        self.output = ResidualOutput(config.intermediate, config.hidden, config.layer_norm_eps)
        self.intermediate_query = Intermediate(config)
        self.output_query = ResidualOutput(config.intermediate, config.hidden, config.layer_norm_eps)

    def forward(self, x: torch.Tensor, vision: torch.Tensor, mask: torch.Tensor, queries: int) -> torch.Tensor:
        x = self.attention(x, x, mask)
        q, text = x[:, :queries], x[:, queries:]
        if self.has_cross_attention:
            q = self.crossattention(q, vision)
        q = self.output_query(self.intermediate_query(q), q)
        text = self.output(self.intermediate(text), text)
        return torch.cat([q, text], dim=1)


class Embeddings(nn.Module):
    def __init__(self, config: InstructBlipConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(config.max_positions, config.hidden)
        self.layernorm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)

    def forward(self, queries: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_embeddings.weight[: input_ids.shape[1]]
        text = self.word_embeddings(input_ids) + positions
        return self.layernorm(torch.cat([queries, text], dim=1))


class Encoder(nn.Module):
    def __init__(self, config: InstructBlipConfig):
        super().__init__()
        self.layer = nn.ModuleList(InstructBlipLayer(config, i) for i in range(config.layers))


class InstructBlipQFormer(nn.Module):
    def __init__(self, config: InstructBlipConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)


class InstructBlipConnector(nn.Module):
    def __init__(self, config: InstructBlipConfig):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.randn(1, config.num_queries, config.hidden) * 0.02)
        self.qformer = InstructBlipQFormer(config)
        self.language_projection = nn.Linear(config.hidden, config.llm_dim)

    def forward(self, vision_features: torch.Tensor, qformer_input_ids: torch.Tensor, qformer_attention_mask: torch.Tensor) -> torch.Tensor:
        batch, queries = vision_features.shape[0], self.query_tokens.shape[1]
        x = self.qformer.embeddings(self.query_tokens.expand(batch, -1, -1), qformer_input_ids)
        # Queries always attend; text tokens where the mask is 1. Additive, [batch, 1, 1, keys].
        keep = torch.cat([torch.ones_like(qformer_attention_mask[:, :1]).expand(-1, queries), qformer_attention_mask], dim=1)
        mask = ((1.0 - keep.to(x.dtype)) * MASKED)[:, None, None, :]
        for layer in self.qformer.encoder.layer:
            x = layer(x, vision_features, mask, queries)
        return self.language_projection(x[:, :queries])


def io_specs(config: InstructBlipConfig) -> tuple[list[TensorSpec], list[TensorSpec]]:
    tokens = Axis("tokens", min=1, opt=config.tokens, max=4 * config.tokens, samples=(config.tokens, 7, 2 * config.tokens - 1))
    longest = config.max_positions  # position embeddings cover the instruction only (queries come first, unpositioned)
    opt = min(config.text_tokens, longest)
    text = Axis("text_tokens", min=1, opt=opt, max=longest, samples=(opt, 1, min(61, longest)))
    return (
        [
            TensorSpec("vision_features", (BATCH, tokens, config.vision_dim)),
            TensorSpec("qformer_input_ids", (BATCH, text), "int64"),
            TensorSpec("qformer_attention_mask", (BATCH, text), "int64"),
        ],
        [TensorSpec("llm_embeds", (BATCH, config.num_queries, config.llm_dim))],
    )


def special_inputs(config: InstructBlipConfig, sizes: dict[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Token ids in the vocabulary and right padding of different lengths per row (at least one real token)."""
    batch, length = sizes["batch"], sizes["text_tokens"]
    ids = torch.randint(1, config.vocab_size, (batch, length), generator=generator)
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    return {"qformer_input_ids": ids * mask, "qformer_attention_mask": mask}


def _from_weights(weights, config: InstructBlipConfig) -> InstructBlipConfig:
    vocab, _ = weights["qformer.embeddings.word_embeddings.weight"].shape
    positions, _ = weights["qformer.embeddings.position_embeddings.weight"].shape
    return dataclasses.replace(qformer_dims(weights, config), vocab_size=vocab, max_positions=positions)


CONNECTOR = Connector(
    name="instructblip",
    family="q-former",
    systems=("InstructBLIP",),
    presets={
        "instructblip-vicuna-7b": InstructBlipConfig(llm_dim=4096),
        "instructblip-vicuna-13b": InstructBlipConfig(llm_dim=5120),
        "instructblip-flan-t5-xl": InstructBlipConfig(llm_dim=2048),
        "instructblip-flan-t5-xxl": InstructBlipConfig(llm_dim=4096),
    },
    default_preset="instructblip-vicuna-7b",
    key_layouts=(
        KeyLayout(
            "transformers",
            (
                (r"(?:model\.)?query_tokens", "query_tokens"),
                (r"(?:model\.)?qformer\.(embeddings\.(?:word_embeddings|position_embeddings|layernorm)\..*)", r"qformer.\1"),
                (
                    r"(?:model\.)?qformer\.(encoder\.layer\.\d+\.(?:attention|crossattention|intermediate|output|intermediate_query|output_query)\..*)",
                    r"qformer.\1",
                ),
                (r"(?:model\.)?language_projection\.(weight|bias)", r"language_projection.\1"),
            ),
        ),
        KeyLayout(
            "lavis-original",
            tuple(rule for rule in LAVIS_QFORMER_RULES if "LayerNorm" not in rule[0] and "output|intermediate_query" not in rule[0])
            + (
                (r"Qformer\.bert\.embeddings\.LayerNorm\.(weight|bias)", r"qformer.embeddings.layernorm.\1"),
                (r"Qformer\.bert\.embeddings\.(word_embeddings|position_embeddings)\.weight", r"qformer.embeddings.\1.weight"),
                (
                    r"Qformer\.bert\.encoder\.layer\.(\d+)\.((?:attention|crossattention)\.output|intermediate|output|intermediate_query|output_query)\.(.*)",
                    r"qformer.encoder.layer.\1.\2.\3",
                ),
                (r"(?:llm_proj|t5_proj)\.(weight|bias)", r"language_projection.\1"),
            ),
        ),
    ),
    build=InstructBlipConnector,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
    special_inputs=special_inputs,
)
