"""Optimization profiles from the record's dynamic axes, overridable per input."""

from __future__ import annotations

import re

from ..errors import UsageError
from ..specs import Axis, TensorSpec

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input -> (min, opt, max)


def _dims(text: str, where: str) -> Shape:
    if not re.fullmatch(r"\d+(x\d+)*", text):
        raise UsageError(f"--shapes {where}: '{text}' is not a shape like 1x576x1024")
    return tuple(int(v) for v in text.split("x"))


def parse_overrides(values: list[str] | None) -> list[Profile]:
    """`NAME:MIN:OPT:MAX` (trtexec style, e.g. vision_features:1x1x1024:1x576x1024:8x1152x1024).
    The k-th override of an input goes to profile k, so repeating one asks for several profiles."""
    profiles: list[Profile] = []
    counts: dict[str, int] = {}
    for value in values or []:
        parts = value.split(":")
        if len(parts) != 4:
            raise UsageError(f"--shapes '{value}' is not NAME:MIN:OPT:MAX")
        name, low, opt, high = parts
        index = counts.get(name, 0)
        counts[name] = index + 1
        while len(profiles) <= index:
            profiles.append({})
        profiles[index][name] = (_dims(low, value), _dims(opt, value), _dims(high, value))
    return profiles


def _bound(spec: TensorSpec, pick: str) -> Shape:
    return tuple(getattr(d, pick) if isinstance(d, Axis) else int(d) for d in spec.dims)


def default_profile(inputs: list[TensorSpec]) -> Profile:
    """min/opt/max from each dynamic axis's range (batch 1 / release size / the connector's max)."""
    return {s.name: (_bound(s, "min"), _bound(s, "opt"), _bound(s, "max")) for s in inputs}


def build_profiles(inputs: list[TensorSpec], overrides: list[str] | None) -> list[Profile]:
    base = default_profile(inputs)
    specs = {s.name: s for s in inputs}
    profiles = []
    for override in parse_overrides(overrides) or [{}]:
        unknown = set(override) - set(base)
        if unknown:
            raise UsageError(f"--shapes names unknown input(s) {', '.join(sorted(unknown))}; inputs: {', '.join(base)}")
        profile = dict(base) | override
        for name, (low, opt, high) in profile.items():
            for label, dims in (("min", low), ("opt", opt), ("max", high)):
                _check(specs[name], label, dims)
            if not all(a <= b <= c for a, b, c in zip(low, opt, high)):
                raise UsageError(f"--shapes {name}: needs min <= opt <= max on every axis")
        profiles.append(profile)
    return profiles


def _check(spec: TensorSpec, label: str, dims: Shape) -> None:
    spec.check_shape(dims, f"--shapes {spec.name} {label}")  # the one range rule (specs.Axis.check)


def fits(profile: Profile, shapes: dict[str, Shape]) -> bool:
    """Whether concrete input shapes lie within a profile."""
    return all(
        name in shapes and len(shapes[name]) == len(low) and all(lo <= d <= hi for d, lo, hi in zip(shapes[name], low, high))
        for name, (low, _, high) in profile.items()
    )
