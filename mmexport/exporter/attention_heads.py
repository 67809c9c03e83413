"""Attention exported one head at a time. torch's exporter writes scaled_dot_product_attention as
MatMul, Softmax and MatMul over [batch, heads, queries, keys] scores. ONNX Runtime's CPU provider
then holds several such tensors at once (2 GB each for a 64-frame clip's full-attention block of
Qwen2.5-VL, which ran out of 24 GB), and at 1024 keys it ran 4-5x slower than over one head's
[batch, queries, keys]. Split by heads, the graph computes the same numbers in a sixteenth of the
memory; the split is static (heads are fixed by the config), so the graph keeps its dynamic axes.
Only attention whose length is a dynamic axis (packed patches, frames) is split: a fixed length
(a Q-Former's 32 queries, CLIP's 577 tokens) stays small, and the split graph costs torch's ONNX
optimizer minutes per export (a BLIP-2 Q-Former: 14 s whole, 178 s split)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch.nn import functional as F

_ORIGINAL = F.scaled_dot_product_attention


def _head(mask: torch.Tensor | None, heads: int, h: int) -> torch.Tensor | None:
    """The mask as one head sees it: sliced where it has a heads axis, else as it is (it broadcasts)."""
    if mask is None or mask.dim() < 3 or mask.shape[-3] != heads:
        return mask
    return mask[..., h : h + 1, :, :]


def per_head(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
    """scaled_dot_product_attention, each query head on its own (grouped-query heads read their
    key/value head). Anything not [batch, heads, length, dim] with a static head count runs whole."""
    heads = query.shape[-3] if query.dim() == 4 else None
    if not isinstance(heads, int) or heads < 2 or key.dim() != 4 or args or heads % key.shape[-3]:
        return _ORIGINAL(query, key, value, attn_mask, *args, **kwargs)
    kwargs.pop("enable_gqa", None)  # each query head is given its own key/value head below
    repeat = heads // key.shape[-3]
    outputs = [
        _ORIGINAL(query[:, h : h + 1], key[:, h // repeat : h // repeat + 1], value[:, h // repeat : h // repeat + 1], _head(attn_mask, heads, h), **kwargs)
        for h in range(heads)
    ]
    return torch.cat(outputs, dim=1)


def where_length_grows(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """per_head where the query length is a dynamic axis while tracing (a torch.SymInt), else whole."""
    if query.dim() >= 2 and isinstance(query.shape[-2], torch.SymInt):
        return per_head(query, key, value, *args, **kwargs)
    return _ORIGINAL(query, key, value, *args, **kwargs)


@contextlib.contextmanager
def one_head_at_a_time() -> Iterator[None]:
    """While exporting: every call of F.scaled_dot_product_attention (transformers' sdpa, mmexport's
    grouped attention and connectors) over a dynamic length is traced head by head."""
    F.scaled_dot_product_attention = where_length_grows
    try:
        yield
    finally:
        F.scaled_dot_product_attention = _ORIGINAL
