"""The artifact record: one typed JSON file beside every artifact (`NAME.onnx.json`,
`NAME.engine.json`) holding everything the next stage needs, so no stage guesses."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from .derivations import Derivation, Derived, Identity
from .errors import MmexportError, UsageError
from .specs import TensorSpec, Tolerance

FORMAT = "mmexport.artifact/2"
OLDER_FORMATS = ("mmexport.manifest/1", "mmexport.engine/1")
KINDS = ("onnx", "engine")
TOOLS = ("mmexport", "torch", "onnx", "onnxscript", "onnxruntime", "tensorrt", "tensorrt_rtx", "transformers")


def record_path(artifact: str | Path) -> Path:
    """Where an artifact's record lives: beside it, with `.json` appended."""
    return Path(str(artifact) + ".json")


def kind_of(path: Path) -> str:
    """The artifact kind a file name implies (the record then says for sure)."""
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix in (".engine", ".plan"):
        return "engine"
    raise UsageError(f"{path} is neither an .onnx nor an .engine made by mmexport")


@dataclass
class WeightsRecord:
    """Where the connector's weights came from; `check` rebuilds the reference from this."""

    source: str = "random"  # "random" (seeded) or "checkpoint"
    seed: int | None = 0
    path: str | None = None
    layout: str | None = None
    digest: str | None = None
    ignored_keys: int | None = None
    layer: int | None = None
    fingerprint: list[float] | None = None  # tells these weights from others whatever their dtype (connectors.loading)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "WeightsRecord":
        values: dict[str, Any] = {f.name: data.get(f.name) for f in dataclasses.fields(cls)}
        return cls(**values)


@dataclass
class HeldOut:
    """The samples a variant's gate ran on, kept beside it so `check` reruns the same gate."""

    file: str  # name of the .npz beside the artifact
    sha256: str
    samples: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HeldOut":
        return cls(str(data["file"]), str(data["sha256"]), int(data["samples"]))


@dataclass
class EngineInfo:
    """What a TensorRT build made: flavor, version, targets and one profile per entry."""

    flavor: str
    tensorrt_version: str
    targets: list[str]
    built_on: str | None
    profiles: list[dict[str, dict[str, list[int]]]]  # [{input: {"min", "opt", "max"}}]
    builder: dict[str, Any]
    build_seconds: float
    engine_bytes: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EngineInfo":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class ModelSection:
    """The record's section for a part of a model folder: which model, which part, where it was."""

    model_type: str
    part: str  # "vision" (the image side: pixels to what the LLM receives) or "connector"
    folder: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # config.json keys that decide the part
    declared: bool = True  # False: no declaration, transformers' own path (gated as always)
    pooled: str | None = None  # with no declaration: how get_image_features hands features on (attach rebuilds it)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelSection":
        part = data.get("part") or ("vision" if data.get("vision_tower") else "connector")  # records before the section was typed
        return cls(
            str(data["model_type"]), str(part), data.get("folder"), dict(data.get("settings") or {}), bool(data.get("declared", True)), data.get("pooled")
        )


@dataclass
class ArtifactRecord:
    kind: str  # "onnx" or "engine"
    artifact: str  # file name, beside the record
    connector: str
    preset: str
    config: dict[str, Any]
    weights: WeightsRecord
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    precision: str = "fp32"
    target: str | None = None  # what a variant was made for ("tensorrt", "cpu"); None: any
    opset: int | None = None
    external_data: str | None = None
    sha256: str | None = None  # of the artifact file
    tolerance: Tolerance | None = None  # what the artifact was gated at; `check` starts from it
    parity: dict[str, Any] | None = None  # the gate's report (parity.ParityReport.to_json)
    heldout: HeldOut | None = None
    quantization: dict[str, Any] | None = None  # what the precision plug-in chose and why
    source: dict[str, Any] | None = None  # the artifact this one was made from: name, sha256, precision
    size_ratio_vs_fp32: float | None = None
    engine: EngineInfo | None = None
    model: ModelSection | None = None  # a model folder's part: model_type, part, folder, settings
    derived: Derived | None = None  # graph inputs mmexport derives from `inputs` (the processor's tensors)
    tools: dict[str, str] = field(default_factory=lambda: tool_versions())
    created: str = field(default_factory=lambda: now())
    warnings: list[str] = field(default_factory=list)

    @property
    def derivation(self) -> Derivation:
        """From the inputs a user passes to the graph's: what mmexport derives, or the identity."""
        return self.derived or Identity(tuple(self.inputs))

    @property
    def graph_inputs(self) -> list[TensorSpec]:
        """What the graph itself takes."""
        return list(self.derivation.inputs)

    def with_input_dtypes(self, dtype_of: Any) -> dict[str, Any]:
        """`inputs` (and the derived graph inputs) with dtypes changed by `dtype_of(spec)`."""
        changes: dict[str, Any] = {"inputs": [s.with_dtype(dtype_of(s)) for s in self.inputs]}
        if self.derived is not None:
            changes["derived"] = dataclasses.replace(self.derived, inputs=tuple(s.with_dtype(dtype_of(s)) for s in self.derived.inputs))
        return changes

    @property
    def gate_passed(self) -> bool | None:
        return None if self.parity is None else bool(self.parity.get("passed"))

    def derive(self, **changes: Any) -> "ArtifactRecord":
        """A record for an artifact made from this one: new tools and time, the rest kept."""
        return dataclasses.replace(self, tools=tool_versions(), created=now(), **changes)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("inputs", "outputs"):
                value = [s.to_json() for s in value]
            elif hasattr(value, "to_json"):
                value = value.to_json()
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ArtifactRecord":
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["weights"] = WeightsRecord.from_json(data["weights"])
        values["inputs"] = [TensorSpec.from_json(s) for s in data["inputs"]]
        values["outputs"] = [TensorSpec.from_json(s) for s in data["outputs"]]
        values["heldout"] = HeldOut.from_json(data["heldout"]) if data.get("heldout") else None
        values["engine"] = EngineInfo.from_json(data["engine"]) if data.get("engine") else None
        values["tolerance"] = Tolerance.from_json(data["tolerance"]) if data.get("tolerance") else None
        values["model"] = ModelSection.from_json(data["model"]) if data.get("model") else None
        derived = data.get("derived") or data.get("grid")  # "grid": records of mmexport before 0.2
        values["derived"] = Derived.from_json(derived) if derived else None
        return cls(**values)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


REQUIRED = ("kind", "artifact", "connector", "preset", "config", "weights", "inputs", "outputs")


def read(artifact: str | Path, kind: str | None = None) -> ArtifactRecord:
    """The record beside `artifact`, with one clear error for a missing, broken, older or
    foreign file, or one that describes another kind of artifact."""
    artifact = Path(artifact)
    if not artifact.is_file():
        raise UsageError(f"artifact not found: {artifact}")
    path = record_path(artifact)
    if not path.is_file():
        raise UsageError(f"no manifest beside {artifact} (expected {path.name}); was it made by mmexport?")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"manifest {path} is not valid JSON ({exc}); re-export the artifact") from exc
    found = data.get("format") if isinstance(data, dict) else None
    if found in OLDER_FORMATS:
        raise UsageError(f"{path} was written by an older mmexport (format {found}); re-export the artifact with this version")
    if found != FORMAT:
        raise UsageError(f"{path} is not an mmexport manifest (format {FORMAT} expected); re-export the artifact")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise UsageError(f"manifest {path} lacks '{missing[0]}'; re-export the artifact")
    try:
        record = ArtifactRecord.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"manifest {path} is malformed ({exc}); re-export the artifact") from exc
    if record.kind not in KINDS or (kind is not None and record.kind != kind):
        raise UsageError(f"{artifact} is a '{record.kind}' artifact; this step takes a '{kind}' artifact")
    return record


@contextlib.contextmanager
def reading(artifact: Path, record: ArtifactRecord) -> Iterator[None]:
    """Whatever fails while an artifact is read (a truncated or corrupted file gives protobuf's or
    ONNX Runtime's own words): one line that says whether the file still matches its record."""
    try:
        yield
    except MmexportError:
        raise
    except Exception as exc:
        if record.sha256 and artifact.is_file() and file_sha256(artifact) != record.sha256:
            raise UsageError(
                f"{artifact.name} does not match the sha256 in its record ({record_path(artifact).name}): the file is truncated or was changed "
                f"after it was made; copy it again, or make it again with the command that made it"
            ) from exc
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MmexportError(f"{artifact.name} cannot be read ({detail}); make it again with this mmexport") from exc


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return "sha256:" + sha.hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
