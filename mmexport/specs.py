"""The contract of a tensor (name, dims with named dynamic axes, dtype) and of a parity gate
(tolerance). Connectors declare them; artifact records store them; the runtime, engine
profiles and calibration data are checked against them with the same range rule."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from .errors import UsageError


@dataclass(frozen=True)
class Axis:
    """A dynamic dimension: its ONNX name, its range and the sizes the parity gate tries."""

    name: str
    min: int
    opt: int
    max: int
    samples: tuple[int, ...] = ()  # sizes checked by the parity gate, one per parity shape
    multiple_of: int = 1

    def __post_init__(self) -> None:
        # A connector that declares an impossible range is a bug: fail when it is built.
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"axis '{self.name}': needs 1 <= min <= opt <= max, got {self.min}, {self.opt}, {self.max}")
        if self.multiple_of < 1:
            raise ValueError(f"axis '{self.name}': multiple_of must be >= 1")
        for size in (self.opt, *self.samples):
            if not self.fits(size):
                raise ValueError(f"axis '{self.name}': size {size} is outside its own range ({self.rule()})")

    def fits(self, size: int) -> bool:
        return self.min <= size <= self.max and size % self.multiple_of == 0

    def rule(self) -> str:
        text = f"in [{self.min}, {self.max}]"
        return text + (f" and a multiple of {self.multiple_of}" if self.multiple_of > 1 else "")

    def check(self, size: int, where: str) -> None:
        """The one range check: runtime requests, engine profiles and calibration data use it."""
        if not self.fits(size):
            raise UsageError(f"{where}: axis '{self.name}' = {size} is out of range; it must be {self.rule()}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min": self.min,
            "opt": self.opt,
            "max": self.max,
            "multiple_of": self.multiple_of,
            "samples": list(self.samples),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Axis":
        return cls(
            str(data["name"]),
            int(data["min"]),
            int(data["opt"]),
            int(data["max"]),
            tuple(int(s) for s in data.get("samples", ())),
            int(data.get("multiple_of", 1)),
        )


Dim = int | Axis | str  # str: a derived output size such as "tokens/4", for names only

BATCH = Axis("batch", min=1, opt=1, max=64, samples=(1, 2, 3))
# Leading axes that index independent requests (images, crops, tiles): calibration splits
# samples on them and Triton batches on them.
BATCH_AXES = ("batch", "crops", "tiles")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dims: tuple[Dim, ...]
    dtype: str = "float32"
    optional: bool = False  # may be left out where transformers' own signature allows it (a default is derived)

    @property
    def axes(self) -> dict[int, Axis]:
        return {i: d for i, d in enumerate(self.dims) if isinstance(d, Axis)}

    @property
    def batch_axis(self) -> Axis | None:
        """The leading axis when it indexes independent requests (batch, crops, tiles)."""
        first = self.dims[0] if self.dims else None
        return first if isinstance(first, Axis) and first.name in BATCH_AXES else None

    def shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(sizes[d.name] if isinstance(d, Axis) else d for d in self.dims)  # type: ignore[misc]

    def labels(self) -> list[int | str]:
        return [d.name if isinstance(d, Axis) else d for d in self.dims]

    def describe(self) -> str:
        return "[" + ", ".join(map(str, self.labels())) + "]"

    def with_dtype(self, dtype: str) -> "TensorSpec":
        return replace(self, dtype=dtype)

    def check_values(self, array: Any, where: str) -> None:
        """The one rule for what a tensor given for this input holds, wherever it is given (a
        request, `check --inputs`, calibration files): the record's dtype, and finite floats."""
        import numpy as np

        if array.dtype != np.dtype(self.dtype):
            cast = f"np.{self.dtype}" if self.dtype != "bool" else "bool"
            raise UsageError(f"{where}: '{self.name}' must be {self.dtype}, got {array.dtype}; cast it (array.astype({cast}))")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UsageError(f"{where}: '{self.name}' has NaN or Inf values; an image or feature with them cannot give finite embeddings")

    def check_shape(self, shape: Sequence[int], where: str, skip: Sequence[int] = (), hint: str = "") -> dict[str, int]:
        """Rank, fixed sizes and dynamic ranges of a concrete shape; returns the axis sizes.
        `skip` lists axes not to range-check (a file holding many requests on its batch axis);
        `hint` ends the message for a wrong fixed size."""
        if len(shape) != len(self.dims):
            raise UsageError(f"{where}: '{self.name}' has shape {list(shape)}; it must have rank {len(self.dims)} {self.describe()}")
        sizes: dict[str, int] = {}
        for i, (size, dim) in enumerate(zip(shape, self.dims)):
            if isinstance(dim, int) and size != dim:
                raise UsageError(f"{where}: '{self.name}' has size {size} on axis {i}; it must be {dim} {self.describe()}{hint}")
            if isinstance(dim, Axis) and i not in skip:
                dim.check(int(size), f"{where}: '{self.name}'")
                sizes[dim.name] = int(size)
        return sizes

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "dtype": self.dtype,
            "shape": self.labels(),
            "dynamic_axes": {str(i): a.to_json() for i, a in self.axes.items()},
        }
        return data | ({"optional": True} if self.optional else {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TensorSpec":
        axes = {int(i): Axis.from_json(a) for i, a in data.get("dynamic_axes", {}).items()}
        dims = tuple(axes.get(i, label) for i, label in enumerate(data["shape"]))
        return cls(str(data["name"]), dims, str(data.get("dtype", "float32")), bool(data.get("optional", False)))


def axes_of(specs: Sequence[TensorSpec]) -> dict[str, Axis]:
    """Every named dynamic axis across tensors (a shared name is one axis)."""
    return {a.name: a for s in specs for a in s.axes.values()}


def check_shared_axes(specs: Sequence[TensorSpec], shapes: dict[str, Sequence[int]], where: str) -> dict[str, int]:
    """Range-check each tensor given and require shared axes (batch across inputs) to agree."""
    seen: dict[str, tuple[str, int]] = {}
    for spec in (s for s in specs if s.name in shapes):
        for axis, size in spec.check_shape(shapes[spec.name], where).items():
            first = seen.setdefault(axis, (spec.name, size))
            if first[1] != size:
                raise UsageError(f"{where}: '{spec.name}' axis '{axis}' = {size} but '{first[0]}' has {first[1]}; they must match")
    return {axis: size for axis, (_, size) in seen.items()}


@dataclass(frozen=True)
class Tolerance:
    """Parity thresholds. max_rel is the largest absolute error divided by the largest
    reference magnitude of that output (elementwise ratios explode near zero).
    min_token_cosine gates the 1st percentile of the per-token cosine (over the last axis):
    a global cosine can hide a few ruined tokens, and the LLM reads every one."""

    max_rel: float | None = 1e-4  # None: reported, not gated
    min_cosine: float = 0.99999
    min_token_cosine: float | None = None  # None: reported, not gated
    # where the original's own fp32 rounding exceeds max_rel, judge against its float64 run
    # (parity/report.py); an explicit --max-rel is held as given
    float64_floor: bool = True

    def passes(self, max_rel: float, cosine: float, token_cosine: float = 1.0) -> bool:
        return (
            (self.max_rel is None or max_rel <= self.max_rel)
            and cosine >= self.min_cosine
            and (self.min_token_cosine is None or token_cosine >= self.min_token_cosine)
        )

    def override(self, limits: "Limits | None") -> "Tolerance":
        """This tolerance with only the limits given changed (the others stay as they were)."""
        if limits is None:
            return self
        return Tolerance(
            self.max_rel if limits.max_rel is None else limits.max_rel,
            self.min_cosine if limits.min_cosine is None else limits.min_cosine,
            self.min_token_cosine if limits.min_token_cosine is None else limits.min_token_cosine,
            self.float64_floor and limits.max_rel is None,
        )

    def describe(self) -> str:
        parts = [] if self.max_rel is None else [f"max rel <= {self.max_rel:g}"]
        parts.append(f"cosine >= {self.min_cosine}")
        if self.min_token_cosine is not None:
            parts.append(f"token cosine p1 >= {self.min_token_cosine}")
        return " and ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"max_rel": self.max_rel, "min_cosine": self.min_cosine, "min_token_cosine": self.min_token_cosine, "float64_floor": self.float64_floor}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tolerance":
        return cls(data.get("max_rel"), float(data["min_cosine"]), data.get("min_token_cosine"), bool(data.get("float64_floor", True)))


@dataclass(frozen=True)
class Limits:
    """Limits a user sets (--max-rel, --min-cosine, --min-token-cosine); None keeps the
    artifact's own. Loosening one never tightens another."""

    max_rel: float | None = None
    min_cosine: float | None = None
    min_token_cosine: float | None = None
