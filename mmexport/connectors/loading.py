"""Map a checkpoint's keys onto a connector, take its dims from the weights, build the module."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import Checkpoint, open_checkpoint
from ..errors import WeightsError
from .base import Connector, KeyLayout

RANDOM_SEED = 0


@dataclass
class ConnectorWeights:
    config: Any
    state_dict: dict[str, torch.Tensor]
    layout: str
    path: str
    ignored_keys: int  # checkpoint keys that are not the connector's (vision tower, LLM...)
    digest: str
    layer: int | None = None  # which layer, for per-layer connectors


def _layer(connector: Connector, keys: list[str], layer: int | None, path: str | Path) -> int | None:
    """The checkpoint layer to take: the one asked for, else the first one there."""
    if connector.layer_key is None:
        if layer is not None:
            raise WeightsError(f"'{connector.name}' is not a per-layer connector; drop --layer")
        return None
    found = sorted({int(m.group(1)) for m in (re.match(connector.layer_key, k) for k in keys) if m})
    if layer is None:
        return found[0] if found else None
    if found and layer not in found:
        shown = ", ".join(map(str, found[:12])) + (", ..." if len(found) > 12 else "")
        raise WeightsError(f"{path} has no '{connector.name}' layer {layer}; its layers are {shown}")
    return layer


def _best_layout(connector: Connector, keys: list[str], layer: int | None = None) -> tuple[KeyLayout, dict[str, str]]:
    """The layout that maps the most checkpoint keys; returns module key -> checkpoint key."""
    best: tuple[KeyLayout, dict[str, str]] | None = None
    for layout in connector.key_layouts:
        mapping: dict[str, str] = {}
        for key in keys:
            renamed = layout.rename(key, layer)
            if renamed is not None:
                mapping.setdefault(renamed, key)
        if best is None or len(mapping) > len(best[1]):
            best = (layout, mapping)
    assert best is not None
    return best


def digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes: the same weights from any file format match."""
    sha = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().contiguous().cpu()
        sha.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        sha.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + sha.hexdigest()


FINGERPRINT_SAMPLES = 4096  # values taken from each tensor, at fixed strides


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> list[float]:
    """Four fixed random projections and the norm of a strided sample of every tensor (sorted by
    name), in float64: equal for the same weights in any dtype (up to its rounding), unlike a digest."""
    samples = []
    for name in sorted(state_dict):
        flat = state_dict[name].detach().reshape(-1)
        step = max(1, flat.numel() // FINGERPRINT_SAMPLES)
        samples.append(flat[::step][:FINGERPRINT_SAMPLES].to(torch.float64).cpu())
    values = torch.cat(samples) if samples else torch.zeros(1, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(4, values.numel(), generator=generator, dtype=torch.float64)
    return [round(float(v), 6) for v in (directions @ values).tolist()] + [round(float(values.norm()), 6)]


def same_weights(a: list[float], b: list[float], tolerance: float = 2e-2) -> bool:
    """Fingerprints of the same weights, stored in different dtypes (bf16 rounds ~0.4%)."""
    scale = max(a[-1], b[-1], 1e-12)
    return len(a) == len(b) and all(abs(x - y) <= tolerance * scale for x, y in zip(a, b))


def load_weights(connector: Connector, path: str | Path | Checkpoint, preset_config: Any, layer: int | None = None) -> ConnectorWeights:
    checkpoint: Checkpoint = path if isinstance(path, Checkpoint) else open_checkpoint(path)
    path = checkpoint.path
    keys = checkpoint.keys()
    layer = _layer(connector, keys, layer, path)
    layout, mapping = _best_layout(connector, keys, layer)
    if not mapping:
        layouts = ", ".join(layout.name for layout in connector.key_layouts)
        sample = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        raise WeightsError(f"{path} holds no '{connector.name}' weights (keys like {sample}); expected a checkpoint in one of these layouts: {layouts}")
    state = connector.adapt_weights({name: checkpoint.tensor(source) for name, source in mapping.items()})
    try:
        config = connector.config_from_weights(state, preset_config)
    except KeyError as exc:
        raise WeightsError(f"{path} ({layout.name} layout) lacks the connector key {exc}; is it a '{connector.name}' checkpoint?") from exc
    with torch.device("meta"):  # names and shapes only, no memory
        expected = connector.build(config).state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise WeightsError(f"{path} ({layout.name} layout) is missing connector keys: {shown}")
    misshaped = [f"{name} {tuple(state[name].shape)} (expected {tuple(t.shape)})" for name, t in expected.items() if state[name].shape != t.shape]
    if misshaped:
        raise WeightsError(f"{path} has mis-shaped connector keys: {', '.join(misshaped[:5])}")
    state = {name: state[name] for name in expected}
    return ConnectorWeights(
        config=config,
        state_dict=state,
        layout=layout.name,
        path=str(Path(path).resolve()),
        ignored_keys=len(keys) - len(state),
        digest=digest(state),
        layer=layer,
    )


def build_module(connector: Connector, config: Any, weights: ConnectorWeights | None = None) -> nn.Module:
    """fp32 module in eval mode; random weights come from a fixed seed so `check` can rebuild them."""
    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_SEED)
        module = connector.build(config)
    if weights is not None:
        module.load_state_dict({k: v.float() for k, v in weights.state_dict.items()})
    return module.float().eval()
