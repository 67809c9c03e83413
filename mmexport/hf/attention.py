"""Attention within groups of patches (one image, frame or window each), given to transformers' own
vision attention modules in the place of flash-attention's variable-length kernel. The modules'
own code then runs as written (projections, q/k norms, grouped-query heads, rotary) and only the
kernel differs: the groups come in as gather indices derived beside the graph, so every shape
follows the inputs and the graph has no data-dependent loop."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch.nn import functional as F

NAME = "mmexport_grouped_flash"  # "flash" in the name: the modules take their variable-length path
MASKED = 10000.0
_registered: list[bool] = []


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, groups: tuple[torch.Tensor, ...], scale: float | None) -> torch.Tensor:
    """Attention within groups: q, k, v [patches, heads, d]; groups = (index [G, L], valid [G, L],
    inverse [patches]). Padding slots are masked as keys; their query rows are never read back."""
    index, valid, inverse = groups
    gathered = [x[index].transpose(1, 2) for x in (q, k, v)]  # [G, heads, L, d]
    # A finite large negative on padding keys (as every mmexport mask): fp16 graphs stay finite.
    bias = (valid.to(q.dtype) - 1.0)[:, None, None, :] * MASKED
    out = F.scaled_dot_product_attention(*gathered, attn_mask=bias, scale=scale)
    return out.transpose(1, 2).flatten(0, 1)[inverse]  # [patches, heads, d]


def _varlen(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any = None, **kwargs: Any) -> tuple:
    """The attention interface transformers calls: q [1, heads, patches, d], k and v [1, kv heads,
    patches, d] -> ([1, patches, heads, d], None), within the groups passed as `mmexport_groups`."""
    repeat = query.shape[1] // key.shape[1]  # grouped-query heads: each kv head serves `repeat` query heads in turn
    q, k, v = (x[0].transpose(0, 1) for x in (query, key.repeat_interleave(repeat, 1), value.repeat_interleave(repeat, 1)))
    return grouped_attention(q, k, v, kwargs["mmexport_groups"], kwargs.get("scaling")).unsqueeze(0), None


@contextlib.contextmanager
def within_groups(config: Any) -> Iterator[None]:
    """While it lasts, modules reading `config` attend within the groups they are given."""
    from transformers import AttentionInterface

    if not _registered:
        AttentionInterface.register(NAME, _varlen)
        _registered.append(True)
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
