"""What every connector declares: its module, presets, I/O with named dynamic axes,
checkpoint key layouts and tolerances (in the spirit of Optimum's OnnxConfig)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..errors import UsageError
from ..specs import BATCH, BATCH_AXES, Axis, Dim, TensorSpec, Tolerance, axes_of

__all__ = ["BATCH", "BATCH_AXES", "Axis", "Connector", "Dim", "KeyLayout", "TensorSpec", "Tolerance"]


@dataclass(frozen=True)
class KeyLayout:
    """One checkpoint naming scheme: regex rules that map its keys onto the module's."""

    name: str
    rules: tuple[tuple[str, str], ...]

    def rename(self, key: str, layer: int | None = None) -> str | None:
        for pattern, replacement in self.rules:
            if "{layer}" in pattern:
                if layer is None:
                    continue
                pattern = pattern.replace("{layer}", str(layer))
            match = re.fullmatch(pattern, key)
            if match:
                return match.expand(replacement)
        return None


@dataclass
class Connector:
    """A connector family. Subclasses fill in the class attributes and the methods."""

    name: str
    family: str
    systems: tuple[str, ...]
    presets: dict[str, Any]  # preset name -> config dataclass instance
    default_preset: str
    key_layouts: tuple[KeyLayout, ...]
    build: Callable[[Any], nn.Module]
    io: Callable[[Any], tuple[list[TensorSpec], list[TensorSpec]]]  # config -> (inputs, outputs)
    config_from_weights: Callable[[dict[str, torch.Tensor], Any], Any] = lambda weights, config: config
    # Fix-ups that the original code applies on load (renamed keys in, module keys out).
    adapt_weights: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] = lambda weights: weights
    tolerance: Tolerance = field(default_factory=Tolerance)  # the fp32 export gate
    # Attention connectors (softmax over activation x activation products) get looser
    # low-precision gates than projections: see each precision's tolerance.
    attention: bool = False
    # Values for inputs that are not features (token ids, masks, media locations), which need
    # meaningful contents: (config, sizes, generator) -> {input name: tensor}.
    special_inputs: Callable[[Any, dict[str, int], torch.Generator], dict[str, torch.Tensor]] | None = None
    # For a connector that is one of several identical layers in a checkpoint: a regex whose
    # group 1 is the layer index; layouts write "{layer}" where the chosen index goes.
    layer_key: str | None = None

    def inputs(self, config: Any) -> list[TensorSpec]:
        return self.io(config)[0]

    def outputs(self, config: Any) -> list[TensorSpec]:
        return self.io(config)[1]

    def preset(self, name: str | None) -> Any:
        name = name or self.default_preset
        if name not in self.presets:
            raise UsageError(f"unknown preset '{name}' for connector '{self.name}'; choose one of: {', '.join(self.presets)}")
        return self.presets[name]

    def config_type(self) -> type:
        return type(self.presets[self.default_preset])

    def config_from_dict(self, values: dict[str, Any]) -> Any:
        return self.config_type()(**values)

    def parity_shapes(self, config: Any) -> list[dict[str, int]]:
        """One size dict per parity run: the i-th sample of every dynamic axis."""
        axes = axes_of(self.inputs(config))
        count = max(len(a.samples) for a in axes.values())
        return [{n: a.samples[i % len(a.samples)] for n, a in axes.items()} for i in range(count)]

    def check_sizes(self, config: Any, sizes: dict[str, int]) -> None:
        """A clear error for sizes the connector cannot take, before anything runs."""
        axes = axes_of(self.inputs(config))
        unknown = set(sizes) - set(axes)
        if unknown:
            fixed = ", ".join(f"{s.name} {s.describe()}" for s in self.inputs(config))
            raise UsageError(f"'{self.name}' has no dynamic axis {', '.join(sorted(unknown))}; its inputs are {fixed}")
        for name, axis in axes.items():
            if name not in sizes:
                raise UsageError(f"shape for '{self.name}' lacks axis '{name}'")
            axis.check(sizes[name], self.name)

    def example_sizes(self, config: Any) -> dict[str, int]:
        """Export-time sizes: >= 2 and unlike any static dim so the exporter specializes nothing."""
        specs = self.inputs(config)
        static = {d for s in specs for d in s.dims if isinstance(d, int)}
        sizes: dict[str, int] = {}
        for axis in (a for s in specs for a in s.axes.values()):
            size = max(axis.opt, 2 * axis.multiple_of, axis.min)
            while size in static or size in sizes.values():
                size += axis.multiple_of
            sizes[axis.name] = min(size, axis.max)
        return sizes

    def dummy_inputs(self, config: Any, sizes: dict[str, int], seed: int = 0) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        special = self.special_inputs(config, sizes, generator) if self.special_inputs else {}
        tensors = {}
        for spec in self.inputs(config):
            shape = spec.shape(sizes)
            if spec.name in special:
                tensors[spec.name] = special[spec.name]
            elif spec.dtype.startswith("float"):
                tensors[spec.name] = torch.randn(shape, generator=generator, dtype=getattr(torch, spec.dtype))
            else:
                tensors[spec.name] = torch.ones(shape, dtype=getattr(torch, spec.dtype))
        return tensors
