"""ONNX translations mmexport gives the exporter where torch's own fails on valid models.

- aten.bucketize: without a translation the exporter decomposes it, and with an empty boundary
  list (a position table of one patch per side, as transformers' own Idefics2 test config has)
  the decomposition yields float indices that the position embedding's Gather rejects. Here it
  is what it means: how many boundaries lie below each value (at or below, with right=True),
  the same comparisons bucketize makes, for any number of boundaries.
- aten._is_all_true: what a `torch._check` over a tensor leaves in the graph (SigLIP2's mask checks);
  it has no translation of its own: every element true."""

from __future__ import annotations

from typing import Any, Callable

import torch
from onnxscript import BOOL, FLOAT, INT64
from onnxscript import opset18 as op


def bucketize_right(x: FLOAT, boundaries: FLOAT) -> INT64:
    hit = op.GreaterOrEqual(op.Unsqueeze(x, op.Constant(value_ints=[-1])), boundaries)
    return op.ReduceSum(op.Cast(hit, to=7), op.Constant(value_ints=[-1]), keepdims=0)


def bucketize_left(x: FLOAT, boundaries: FLOAT) -> INT64:
    hit = op.Greater(op.Unsqueeze(x, op.Constant(value_ints=[-1])), boundaries)
    return op.ReduceSum(op.Cast(hit, to=7), op.Constant(value_ints=[-1]), keepdims=0)


def is_all_true(x: BOOL) -> BOOL:
    return op.Cast(op.ReduceMin(op.Cast(x, to=6), keepdims=0), to=9)


def _bucketize(x: Any, boundaries: Any, out_int32: bool = False, right: bool = False) -> Any:
    out = (_scripted()[0] if right else _scripted()[1])(x, boundaries)
    return op.Cast(out, to=6) if out_int32 else out


_SCRIPTED: list = []


def _scripted() -> list:
    """The onnxscript functions, made on first use (onnxscript reads their source)."""
    if not _SCRIPTED:
        import onnxscript

        _SCRIPTED.extend(onnxscript.script()(f) for f in (bucketize_right, bucketize_left, is_all_true))
    return _SCRIPTED


def _is_all_true(x: Any) -> Any:
    return _scripted()[2](x)


def table() -> dict[Callable, Callable]:
    return {torch.ops.aten.bucketize.Tensor: _bucketize, torch.ops.aten._is_all_true.default: _is_all_true}
