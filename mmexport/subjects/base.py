"""What an artifact covers, as one subject every stage asks: a connector (mmexport's module and
weights) or a part of a model folder (its connector, its image side). A subject knows its inputs,
what is derived beside its graph (the identity where nothing is), its fp32 reference, its gate's
cases and its record section; no stage asks which kind it is."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..derivations import Derivation, Feeds
from ..errors import UsageError
from ..parity import Case, TorchRunner
from ..record import ModelSection, WeightsRecord
from ..specs import TensorSpec, Tolerance


class Subject(ABC):
    name: str  # the record's `connector`: a connector's name, or MODEL_TYPE-vision
    preset: str
    config: Any  # a dataclass: the record's `config`
    inputs: list[TensorSpec]  # what a user passes, by name
    outputs: list[TensorSpec]
    derivation: Derivation  # from those inputs to the graph's (the identity where nothing is derived)
    bench_notes: list[str] = []  # what bench_inputs could not do as asked, for the bench's notes (a subject sets its own list)
    tolerance: Tolerance  # the fp32 export gate
    attention: bool  # softmax over activation products: looser low-precision gates
    warnings: list[str]
    model: ModelSection | None = None  # the record's section for a model folder's part
    gate_inputs: str = "random inputs at the parity shapes"  # what the fp32 gate feeds, in words

    _module: nn.Module | None = None
    _export: nn.Module | None = None

    @abstractmethod
    def build(self) -> tuple[nn.Module, nn.Module | None]:
        """The fp32 reference, and the form that exports where it is not the reference itself."""

    @abstractmethod
    def cases(self, shapes: list[dict[str, int]] | None = None) -> list[Case]:
        """The gate's cases (by the inputs' names), never the export example."""

    @abstractmethod
    def example(self) -> dict[str, torch.Tensor]:
        """Export-time inputs: every dynamic size >= 2 and unlike any static one."""

    @abstractmethod
    def request(self, images: int, seed: int = 0) -> Feeds:
        """One request of `images` images (or a batch of that size): bench, synthetic calibration."""

    @abstractmethod
    def weights_record(self) -> WeightsRecord: ...

    @property
    def module(self) -> nn.Module:
        if self._module is None:
            self._module, self._export = self.build()
        return self._module

    @property
    def exported(self) -> nn.Module:
        module = self.module
        return self._export if self._export is not None else module

    def release_module(self) -> None:
        """Let the PyTorch module go (its outputs were computed); `module` builds it again."""
        self._module = self._export = None

    def runner(self) -> TorchRunner:
        return TorchRunner(self.module, [s.name for s in self.inputs], [s.name for s in self.outputs])

    def sizes_of(self, feeds: dict[str, Any]) -> dict[str, int]:
        """Axis sizes read off concrete inputs (an optional input left out has none)."""
        return {a.name: feeds[s.name].shape[i] for s in self.inputs if s.name in feeds for i, a in s.axes.items()}

    def cases_from(self, samples: list[Feeds]) -> list[Case]:
        return [Case(self.sizes_of(sample), dict(sample)) for sample in samples]

    def synthetic(self, count: int, family: str) -> tuple[list[Feeds], str]:
        """Calibration samples made here (`--calib synthetic`), and their digest."""
        samples = [self.request(1, i) for i in range(count)]
        return samples, "sha256:" + hashlib.sha256(f"synthetic/{self.name}/{family}/{count}".encode()).hexdigest()

    def reads_folder(self, source: Path) -> bool:
        """Whether --calib SOURCE is a folder this subject reads through a processor (images)."""
        from ..calibration.images import image_files

        return bool(image_files(source))

    def from_images(self, source: Path, count: int) -> list[Feeds]:
        raise UsageError(f"{source} holds images; this graph takes features: calibrate with features (mmexport features) or export --vision-tower")

    def bench_inputs(self, batch: int, tokens: int | None) -> tuple[Feeds, int | None]:
        """The inputs `bench` times at one --batch, and the token count it says it timed."""
        if tokens is not None:
            raise UsageError("--tokens does not apply to a model folder's artifact: its sizes follow the images (--batch)")
        return self.request(batch), None

    def describe_weights(self) -> str | None:
        """Where the weights came from, in a line (None: nothing worth saying)."""
        return None

    def describe_sizes(self, feeds: Feeds) -> str:
        """What a bench row timed, in words (image sizes, patches, rows)."""
        return ", ".join(f"{name} {size}" for name, size in self.sizes_of(feeds).items())


def as_numpy(sample: dict[str, torch.Tensor]) -> Feeds:
    return {k: v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in sample.items()}
