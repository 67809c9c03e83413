"""Attention exported head by head computes what scaled_dot_product_attention computes, for every
way transformers and mmexport call it, and the exported graph holds one head's scores at a time."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch.nn import functional as F

from mmexport.exporter.attention_heads import one_head_at_a_time, per_head, where_length_grows
from mmexport.exporter.torch_to_onnx import export_module
from mmexport.parity import OrtRunner
from mmexport.specs import Axis, TensorSpec

G = torch.Generator().manual_seed(0)


def _qkv(heads: int, kv_heads: int, length: int = 7, dim: int = 8) -> tuple[torch.Tensor, ...]:
    return torch.randn(2, heads, length, dim, generator=G), *(torch.randn(2, kv_heads, length, dim, generator=G) for _ in range(2))


@pytest.mark.parametrize(
    "heads, kv_heads, mask_shape, kwargs",
    [
        (4, 4, None, {}),
        (4, 4, (2, 1, 7, 7), {}),  # a padding mask broadcast over heads
        (4, 4, (2, 4, 7, 7), {}),  # a mask per head
        (4, 4, (7, 7), {"scale": 0.3}),
        (4, 4, None, {"is_causal": True}),
        (6, 2, None, {"enable_gqa": True}),  # grouped-query heads
    ],
)
def test_per_head_is_attention(heads: int, kv_heads: int, mask_shape: tuple | None, kwargs: dict) -> None:
    q, k, v = _qkv(heads, kv_heads)
    mask = None if mask_shape is None else torch.randn(mask_shape, generator=G)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kwargs)
    assert torch.allclose(per_head(q, k, v, attn_mask=mask, **kwargs), want, atol=1e-6)


def test_the_patch_is_undone() -> None:
    original = F.scaled_dot_product_attention
    with pytest.raises(RuntimeError), one_head_at_a_time():
        assert F.scaled_dot_product_attention is where_length_grows
        raise RuntimeError
    assert F.scaled_dot_product_attention is original


class _Attention(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("length, softmaxes", [(Axis("length", 1, 7, 64), 4), (7, 1)], ids=["dynamic-length-per-head", "fixed-length-whole"])
def test_exported_graph_attends_head_by_head(tmp_path, length: Axis | int, softmaxes: int) -> None:
    specs = [TensorSpec(n, (Axis("batch", 1, 2, 8), 4, length, 8)) for n in "qkv"]
    q, k, v = _qkv(4, 4)
    path = tmp_path / "attention.onnx"
    export_module(_Attention(), specs, [TensorSpec("out", (Axis("batch", 1, 2, 8), 4, length, 8))], {"q": q, "k": k, "v": v}, path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Softmax") == softmaxes  # one per head where the length grows
    got = OrtRunner(path).run({"q": q.numpy(), "k": k.numpy(), "v": v.numpy()})["out"]
    assert np.abs(got - F.scaled_dot_product_attention(q, k, v).numpy()).max() < 1e-5
