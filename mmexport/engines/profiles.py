"""Optimization profiles from the manifest's dynamic axes, overridable per input."""

from __future__ import annotations

import re
from typing import Any

from ..errors import UsageError

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input -> (min, opt, max)


def _dims(text: str, where: str) -> Shape:
    if not re.fullmatch(r"\d+(x\d+)*", text):
        raise UsageError(f"--shapes {where}: '{text}' is not a shape like 1x576x1024")
    return tuple(int(v) for v in text.split("x"))


def parse_overrides(values: list[str] | None) -> list[dict[str, tuple[Shape, Shape, Shape]]]:
    """`NAME:MIN:OPT:MAX` (trtexec style, e.g. vision_features:1x1x1024:1x576x1024:8x1152x1024).
    The k-th override of an input goes to profile k, so repeating one asks for several profiles."""
    profiles: list[dict[str, tuple[Shape, Shape, Shape]]] = []
    counts: dict[str, int] = {}
    for value in values or []:
        parts = value.split(":")
        if len(parts) != 4:
            raise UsageError(f"--shapes '{value}' is not NAME:MIN:OPT:MAX")
        name, *shapes = parts
        index = counts.get(name, 0)
        counts[name] = index + 1
        while len(profiles) <= index:
            profiles.append({})
        profiles[index][name] = tuple(_dims(s, value) for s in shapes)  # type: ignore[assignment]
    return profiles


def default_profile(record: dict[str, Any]) -> Profile:
    """min/opt/max from each dynamic axis's range in the manifest (batch 1 / release size / max)."""
    profile: Profile = {}
    for spec in record["inputs"]:
        axes = {int(i): a for i, a in spec["dynamic_axes"].items()}
        profile[spec["name"]] = tuple(  # type: ignore[assignment]
            tuple(axes[i][key] if i in axes else d for i, d in enumerate(spec["shape"])) for key in ("min", "opt", "max")
        )
    return profile


def build_profiles(record: dict[str, Any], overrides: list[str] | None) -> list[Profile]:
    base = default_profile(record)
    specs = {s["name"]: s for s in record["inputs"]}
    profiles = []
    for override in parse_overrides(overrides) or [{}]:
        unknown = set(override) - set(base)
        if unknown:
            raise UsageError(f"--shapes names unknown input(s) {', '.join(sorted(unknown))}; inputs: {', '.join(base)}")
        profile = dict(base) | override
        for name, (low, opt, high) in profile.items():
            _check(specs[name], low, opt, high)
        profiles.append(profile)
    return profiles


def _check(spec: dict[str, Any], low: Shape, opt: Shape, high: Shape) -> None:
    name, shape = spec["name"], spec["shape"]
    axes = {int(i): a for i, a in spec["dynamic_axes"].items()}
    for label, dims in (("min", low), ("opt", opt), ("max", high)):
        if len(dims) != len(shape):
            raise UsageError(f"--shapes {name}: {label} has rank {len(dims)}, the input has rank {len(shape)} {shape}")
        for i, d in enumerate(dims):
            if i not in axes and d != shape[i]:
                raise UsageError(f"--shapes {name}: {label} axis {i} is {d} but that axis is fixed at {shape[i]}")
            if i in axes and not axes[i]["min"] <= d <= axes[i]["max"]:
                a = axes[i]
                raise UsageError(f"--shapes {name}: {label} {a['name']}={d} is outside the connector's range [{a['min']}, {a['max']}]")
            if i in axes and d % a_multiple(axes[i]):
                raise UsageError(f"--shapes {name}: {label} {axes[i]['name']}={d} must be a multiple of {a_multiple(axes[i])}")
    if not all(a <= b <= c for a, b, c in zip(low, opt, high)):
        raise UsageError(f"--shapes {name}: needs min <= opt <= max on every axis")


def a_multiple(axis: dict[str, Any]) -> int:
    return int(axis.get("multiple_of", 1))
