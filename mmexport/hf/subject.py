"""A part of a model folder as a subject: read the folder (config.json, then only the vision
parts' tensors) and make what every stage takes, for the connector alone or for the whole image
side. The gate's reference is always transformers' own code path (get_image_features, or the
connector module itself) on valid processor-layout inputs."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..calibration.synthetic import features
from ..derivations import Derivation, Feeds, Identity
from ..errors import InputError, UsageError
from ..parity import Case
from ..record import ArtifactRecord, ModelSection, WeightsRecord
from ..specs import Axis, TensorSpec, Tolerance
from ..subjects.base import Subject, as_numpy
from .family import Family
from .folder import Detected, detect
from .model import float32, image_owner, is_module, load_parts, module_path, skeleton

Sample = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Part:
    """The record's `config` for a model folder's artifact: which model and which part of it."""

    model_type: str
    part: str  # "vision" (pixel inputs to what the LLM receives) or "connector"


@dataclass
class Loaded:
    folder: Path
    found: Detected
    model: nn.Module  # the transformers model: vision parts on the CPU in fp32, the LLM on the meta device
    paths: list[str]

    @property
    def family(self) -> Family:
        return self.found.family

    @property
    def hf(self) -> Any:
        return self.found.hf_config


def load(folder: str | Path, part: str = "vision") -> Loaded:
    """The model's skeleton with the parts an artifact of `part` reads loaded (a video side may read more)."""
    folder = Path(folder)
    found = detect(folder)
    model = skeleton(found.hf_config, found.family.auto_class)
    paths = part_paths(model, found.family, "video" if part == "video" else "vision")
    load_parts(model, paths, folder)
    float32(model, paths)
    if not found.family.declared:  # transformers' own path: how it hands features on, seen once
        from .automatic import pooled_as, refusal

        with refusal(found.model_type):
            pooled = pooled_as(image_owner(model), found.family.images.samples(found.hf_config)[-1])
        found = dataclasses.replace(found, family=dataclasses.replace(found.family, pooled=pooled))
    return Loaded(folder, found, model, paths)


class Parts(nn.Module):
    """Registers the vision parts (so state_dict and the exporter see their tensors) without the
    model around them, whose LLM is on the meta device."""

    def __init__(self, model: nn.Module, paths: list[str]):
        super().__init__()
        self.parts = nn.ModuleDict({p.replace(".", "__"): model.get_submodule(p) for p in paths if is_module(model, p)})
        for p in paths:
            if not is_module(model, p):
                self.register_parameter(p.replace(".", "__"), model.get_parameter(p))
        object.__setattr__(self, "model", model)  # not a submodule


class ImageFeatures(Parts):
    """transformers' own get_image_features (or get_video_features), fed the processor's tensors by
    name; its pooler output (a tensor, or a list per image) as the graph's output(s), plus Qwen3-VL's deepstack."""

    def __init__(self, model: nn.Module, paths: list[str], names: list[str], pooled: str, method: str = "get_image_features"):
        super().__init__(model, paths)
        self.names, self.pooled, self.method = names, pooled, method

    def forward(self, *inputs: torch.Tensor) -> Any:
        out = getattr(image_owner(self.model), self.method)(**dict(zip(self.names, inputs)), return_dict=True)
        pooled = out.pooler_output
        if self.pooled != "tensor":
            pooled = torch.stack(list(pooled)) if self.pooled == "stack" else torch.cat(list(pooled))
        deepstack = getattr(out, "deepstack_features", None)
        if not deepstack:
            return pooled
        return (pooled, *(torch.cat(list(level)) for level in deepstack))


class Built(Parts):
    """A family's own form (an exportable vision side, or transformers' path where there is no
    get_image_features), with the parts registered."""

    def __init__(self, model: nn.Module, paths: list[str], inner: nn.Module):
        super().__init__(model, paths)
        self.inner = inner

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.inner(*inputs)


def _axis_sizes(inputs: list[TensorSpec], samples: list[Sample]) -> dict[str, list[int]]:
    return {a.name: [int(s[spec.name].shape[i]) for s in samples] for spec in inputs if spec.name in samples[0] for i, a in spec.axes.items()}


def measured_outputs(names: tuple[str, ...], produced: list[tuple[torch.Tensor, ...]], inputs: list[TensorSpec], samples: list[Sample]) -> list[TensorSpec]:
    """Output specs from the outputs of the sample cases: a size that follows an input axis is
    that axis; one that changes otherwise is a dynamic 'tokens' axis; one that stays is fixed."""
    if len(produced[0]) != len(names):  # a config the declaration does not expect (deepstack taps on one layer, say)
        raise UsageError(f"transformers' path gives {len(produced[0])} output(s) for this config, where the family expects {', '.join(names)}")
    by_sizes = {tuple(sizes): name for name, sizes in _axis_sizes(inputs, samples).items()}
    axes = {a.name: a for spec in inputs for a in spec.axes.values()}
    specs = []
    for k, name in enumerate(names):
        dims: list[Any] = []
        for i, size in enumerate(produced[0][k].shape):
            sizes = tuple(int(p[k].shape[i]) for p in produced)
            if len(set(sizes)) == 1:
                dims.append(int(size))
            elif sizes in by_sizes:
                dims.append(axes[by_sizes[sizes]])
            else:
                top = max(a.max for a in axes.values())
                dims.append(Axis("tokens", 1, max(sizes), max(top, max(sizes))))
        specs.append(TensorSpec(name, tuple(dims)))
    return specs


def _run(module: nn.Module, names: list[str], samples: list[Sample]) -> list[tuple[torch.Tensor, ...]]:
    produced = []
    with torch.no_grad():
        for sample in samples:
            out = module(*(sample[n] for n in names))
            produced.append(tuple(out) if isinstance(out, (tuple, list)) else (out,))
    return produced


def _has_attention(module: nn.Module) -> bool:
    return any("Attention" in type(m).__name__ for m in module.modules())


def fingerprint(model: nn.Module, paths: list[str]) -> list[float]:
    """Of the parts an artifact covers, by their names in the model: the same in memory at attach."""
    from ..connectors.loading import weights_fingerprint

    return weights_fingerprint(Parts(model, paths).state_dict())


def part_paths(model: nn.Module, family: Family, part: str) -> list[str]:
    """The modules an artifact of `part` covers: the vision parts (images or video), or the connector."""
    if part == "connector":
        return [module_path(model, str(name)) for name in family.connector or ()]
    present = {n.rsplit(".", 1)[-1] for n, _ in [*model.named_modules(), *model.named_parameters()]}
    extra = tuple(name for name in family.video_parts if name in present) if part == "video" else ()
    return [module_path(model, str(name)) for name in (*family.parts, *extra)]


class FolderPart(Subject):
    """The connector or the image side of a model folder, with transformers' code as its reference."""

    def __init__(self, loaded: Loaded, part: str, inputs: list[TensorSpec], outputs: list[TensorSpec], samples: list[Sample], derivation: Derivation):
        found = loaded.found
        self.loaded, self.part, self.samples = loaded, part, samples
        self.name = found.model_type if part == "connector" else f"{found.model_type}-{part}"
        self.preset = loaded.folder.resolve().name
        self.config = Part(found.model_type, part)
        self.inputs, self.outputs, self.derivation = inputs, outputs, derivation
        self.tolerance, self.attention = Tolerance(), True
        self.bench_clip = (16, 448, 448)  # frames, H, W of each clip `bench` times (--video)
        self.bench_image = (448, 448)  # H, W of each photo `bench` times (--image)
        if part == "connector":
            self.gate_inputs = "the connector's inputs as transformers' forward feeds it"
        elif part == "video":
            self.gate_inputs = "valid inputs in the video processor's layout (clips of several lengths and sizes)"
        elif found.family.declared:
            self.gate_inputs = "valid inputs in the processor's layout (images of several sizes)"
        else:
            self.gate_inputs = "the image processor's outputs for 1, 2 and 3 photos"
        prints = fingerprint(loaded.model, part_paths(loaded.model, found.family, part))
        self.source = WeightsRecord("checkpoint", None, str(loaded.folder.resolve()), "transformers", fingerprint=prints)
        pooled = None if found.family.declared else found.family.pooled
        self.model = ModelSection(found.model_type, part, str(loaded.folder.resolve()), found.settings, declared=found.family.declared, pooled=pooled)
        self.warnings = [] if found.family.declared else [f"no declaration for model_type '{found.model_type}': transformers' own path, gated"]
        self.notes = list(found.family.notes)
        self._builders: tuple[Callable[[], nn.Module], Callable[[], nn.Module | None]] | None = None

    def with_forms(self, reference: Callable[[], nn.Module], export: Callable[[], nn.Module | None]) -> "FolderPart":
        self._builders = (reference, export)
        return self

    def build(self) -> tuple[nn.Module, nn.Module | None]:
        if self._builders is None:  # released: read the folder again
            again = connector_part(self.loaded.folder) if self.part == "connector" else side_part(self.loaded.folder, self.part)
            self.loaded, self._builders = again.loaded, again._builders
        assert self._builders is not None
        reference, export = self._builders
        module, exported = reference(), export()
        return module.eval(), exported.eval() if exported is not None else None

    def release_module(self) -> None:
        super().release_module()
        self._builders = None
        self.loaded = dataclasses.replace(self.loaded, model=None)

    def cases(self, shapes: list[dict[str, int]] | None = None) -> list[Case]:
        if shapes:
            raise UsageError("--shape does not apply to a model folder's artifact (its inputs must agree with each other); pass --inputs FILE.npz")
        return self.cases_from([as_numpy(s) for s in self.samples])

    def example(self) -> dict[str, torch.Tensor]:
        return self.samples[-1]  # the most images, crops, tiles

    def request(self, images: int, seed: int = 0) -> Feeds:
        family, hf = self.loaded.family, self.loaded.hf
        if self.part != "connector":
            return as_numpy(family.layout(self.part).request(hf, images, seed))
        sample = self.samples[seed % len(self.samples)]  # the connector: transformers' own inputs, repeated along the rows
        dynamic = {s.name for s in self.inputs if s.dims and not isinstance(s.dims[0], int)}
        return {k: (v[:1].repeat(images, *([1] * (v.dim() - 1))) if k in dynamic else v).numpy() for k, v in sample.items()}

    def bench_inputs(self, batch: int, tokens: int | None) -> tuple[Feeds, int | None]:
        """An image side is timed on what users send: `batch` photos of `bench_image` through the folder's
        processor (its cosine against eager then means something for int8); random pixels where
        the folder has no image processor or it does not give every input."""
        feeds, used = super().bench_inputs(batch, tokens)
        if self.part == "video":
            return self._bench_clips(batch) or feeds, used
        if self.part != "vision":
            return feeds, used
        from ..calibration.images import image_processor
        from ..samples import photos

        try:
            made = image_processor(self.loaded.folder)(images=photos(batch, sizes=(tuple(self.bench_image),)), return_tensors="np")
            given = {s.name: np.ascontiguousarray(made[s.name], dtype=s.dtype) for s in self.inputs if s.name in made}
            for spec in self.inputs:
                if spec.name in given:
                    spec.check_shape(given[spec.name].shape, "photos")
        except (UsageError, ValueError, TypeError, KeyError):  # a processor that wants other calls, or sizes the graph does not take
            return feeds, used
        return (given, used) if all(s.name in given or s.optional for s in self.inputs) else (feeds, used)

    def _bench_clips(self, count: int) -> Feeds | None:
        """`count` clips of `bench_clip` (frames, H, W) panning across photos, through the folder's
        video processor, in one call; None where the folder has none that runs here."""
        from ..samples import clip
        from .video_processing import processed_clips

        try:
            made = processed_clips(self.loaded.folder, self.inputs, [clip(*self.bench_clip, seed=i) for i in range(count)])
        except (UsageError, InputError) as exc:
            frames, height, width = self.bench_clip
            self.bench_notes = [f"not timed on {frames}x{height}x{width} clips: {exc}; timed the synthetic clips the table names instead"]
            return None
        return self.loaded.family.video.collate(made)

    def synthetic(self, count: int, family: str) -> tuple[list[Feeds], str]:
        if self.part != "connector":
            return super().synthetic(count, family)
        samples = []  # the connector: features of the family at the shapes transformers feeds it
        for i in range(count):
            sample = as_numpy(self.samples[i % len(self.samples)])
            samples.append({k: features(family, v.shape, seed=i) if v.dtype.kind == "f" else v for k, v in sample.items()})
        return samples, f"synthetic:{family}/{self.name}/{count}"

    def reads_folder(self, source: Path) -> bool:
        return source.is_dir() if self.part == "video" else super().reads_folder(source)

    def from_images(self, source: Path, count: int) -> list[Feeds]:
        if self.part == "video":
            from .video_processing import clips_in, processed_clips

            return processed_clips(self.loaded.folder, self.inputs, clips_in(source, count))
        if self.part != "vision":
            return super().from_images(source, count)
        from ..calibration.images import processed

        samples = processed(self.loaded.folder, self.inputs, source, count)
        for sample in samples:  # what images do not give (InstructBLIP's instruction): the gate's own, one per row
            rows = sample["pixel_values"].shape[0]
            for spec in (s for s in self.inputs if not s.optional and s.name not in sample):
                sample[spec.name] = np.repeat(self.samples[0][spec.name][:1].numpy(), rows, axis=0)
        return samples

    def describe_sizes(self, feeds: Feeds) -> str:
        if self.part != "connector":
            return self.loaded.family.layout(self.part).describe(self.loaded.hf, feeds)
        return super().describe_sizes(feeds)

    def weights_record(self) -> WeightsRecord:
        return self.source


def _forms(loaded: Loaded, names: list[str], part: str = "vision") -> tuple[Callable[[], nn.Module], Callable[[], nn.Module | None]]:
    family, model = loaded.family, loaded.model
    method = "get_video_features" if part == "video" else "get_image_features"

    if part == "video" and family.video_pooled is not None:  # its own video path, exported as transformers writes it
        return (lambda: ImageFeatures(model, loaded.paths, names, family.video_pooled, method)), (lambda: None)

    def reference() -> nn.Module:
        if family.reference is not None:  # transformers' path where there is no get_image_features
            return Built(model, loaded.paths, family.reference(model))
        return ImageFeatures(model, loaded.paths, names, family.pooled, method)

    return reference, (lambda: family.vision(model) if family.vision else None)


def _output_names(family: Family, hf: Any, part: str) -> tuple[str, ...]:
    names = family.outputs(hf)
    return tuple("video_embeds" if n == "image_embeds" else n for n in names) if part == "video" else names


def side_part(folder: str | Path, part: str = "vision") -> FolderPart:
    """What the processor returns (pixel_values and the rest; for "video", the video processor's
    pixel_values_videos and the rest) -> what the LLM receives."""
    loaded = load(folder, part)
    family, hf = loaded.family, loaded.hf
    if part == "video" and (family.video is None or not callable(getattr(image_owner(loaded.model), "get_video_features", None))):
        raise UsageError(f"model_type '{loaded.found.model_type}' has no declared video side (mmexport list --models); export its images without --video")
    layout = family.layout(part)
    inputs = layout.inputs(hf)
    names = [s.name for s in inputs]
    reference, export = _forms(loaded, names, part)
    samples = layout.samples(hf)
    outputs = measured_outputs(_output_names(family, hf, part), _run(reference(), names, samples), inputs, samples)
    return FolderPart(loaded, part, inputs, outputs, samples, layout.derivation(hf)).with_forms(reference, export)


def vision_part(folder: str | Path) -> FolderPart:
    """pixel_values (and whatever else the processor returns) -> what the LLM receives."""
    return side_part(folder, "vision")


def video_part(folder: str | Path) -> FolderPart:
    """pixel_values_videos and video_grid_thw -> what the LLM receives for each clip."""
    return side_part(folder, "video")


def _captured(module: nn.Module, call: nn.Module, names: list[str], samples: list[Sample]) -> tuple[list[str], list[Sample]]:
    """The connector's inputs as transformers' forward calls it, on each sample (by name)."""
    seen: list[Sample] = []
    params = [p for p in inspect.signature(module.forward).parameters if p not in ("self", "args", "kwargs")]

    def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        bound = dict(zip(params, args)) | {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
        seen.append({k: v.detach().clone() for k, v in bound.items() if isinstance(v, torch.Tensor)})

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        _run(call, names, samples)
    finally:
        handle.remove()
    if len(seen) != len(samples):
        raise UsageError(f"the connector ran {len(seen)} times for {len(samples)} calls of get_image_features; export --vision-tower instead")
    return list(seen[0]), seen


def _connector_inputs(captured: list[Sample], first: Axis, images: list[TensorSpec], samples: list[Sample]) -> list[TensorSpec]:
    """Specs of the connector's inputs: what the processor gives passes as the processor gave it
    (an instruction); a leading axis that follows the processor's (batch, tiles, crops, patches)
    is that axis; other sizes that change between samples are dynamic too; the rest fixed."""
    given = {s.name: s for s in images}
    leading = tuple(_axis_sizes(images, samples).get(first.name, ())) or tuple(int(c[next(iter(c))].shape[0]) for c in captured)
    named: dict[tuple[int, ...], Axis] = {leading: first}  # sizes that move together are one axis
    specs = []
    for name, tensor in captured[0].items():
        if name in given:
            specs.append(given[name])
            continue
        dims: list[Any] = []
        for i, size in enumerate(tensor.shape):
            sizes = tuple(int(c[name].shape[i]) for c in captured)
            if len(set(sizes)) == 1:
                dims.append(int(size))
            else:
                dims.append(named.setdefault(sizes, Axis(f"{name}_{i}" if i else "tokens", 1, max(sizes), max(first.max, max(sizes)))))
        dtype = "float32" if tensor.is_floating_point() else str(tensor.dtype).replace("torch.", "")
        specs.append(TensorSpec(name, tuple(dims), dtype))
    return specs


class _Positional(nn.Module):
    """Calls a module with its inputs by keyword (the exporter passes them by position)."""

    def __init__(self, module: nn.Module, names: list[str]):
        super().__init__()
        self.module, self.names = module, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.module(**dict(zip(self.names, inputs)))
        return out[0] if isinstance(out, (tuple, list)) else getattr(out, "last_hidden_state", out)


def _connector_module(loaded: Loaded, samples: list[Sample]) -> tuple[nn.Module, list[str], list[Sample]]:
    """The connector and its inputs on each sample, as transformers' forward feeds it."""
    family, model = loaded.family, loaded.model
    if family.connector_module is not None:
        module = family.connector_module(model)
        with torch.no_grad():
            captured = [family.connector_inputs(model, s) for s in samples] if family.connector_inputs else []
        return module, list(captured[0]), captured
    module = model.get_submodule(part_paths(model, family, "connector")[0])
    image_names = [s.name for s in family.images.inputs(loaded.hf)]
    names, captured = _captured(module, _forms(loaded, image_names)[0](), image_names, samples)
    return module, names, captured


def connector_part(folder: str | Path) -> FolderPart:
    """The connector alone, fed what transformers feeds it (the tower's features of the sample
    inputs, captured in transformers' own forward)."""
    loaded = load(folder)
    family, hf = loaded.family, loaded.hf
    if family.connector is None:
        raise UsageError(f"model_type '{loaded.found.model_type}' has no connector-only export; export --vision-tower")
    samples = family.images.samples(hf)
    module, names, captured = _connector_module(loaded, samples)
    captured = [{k: v.float() if v.is_floating_point() else v for k, v in s.items()} for s in captured]
    inputs = _connector_inputs(captured, family.images.first_axis(hf), family.images.inputs(hf), samples)
    positional = _Positional(module, names).eval()
    outputs = measured_outputs(("llm_embeds",), _run(positional, names, captured), inputs, captured)
    part = FolderPart(loaded, "connector", inputs, outputs, captured, Identity(tuple(inputs)))
    part.attention = _has_attention(module)
    return part.with_forms(lambda: positional, lambda: None)


def from_record(artifact: Path, record: ArtifactRecord) -> FolderPart:
    """A model folder's artifact rebuilt from the folder it names, checked against its weights."""
    from ..connectors.loading import same_weights

    assert record.model is not None
    folder = Path(record.model.folder or "")
    if not (folder / "config.json").is_file():
        raise UsageError(f"{artifact.name} was exported from the model folder {folder}, which is not there; it is needed to check it")
    subject = connector_part(folder) if record.model.part == "connector" else side_part(folder, record.model.part)
    if record.weights.fingerprint and not same_weights(subject.weights_record().fingerprint or [], record.weights.fingerprint):
        raise UsageError(f"the weights in {folder} differ from those {artifact.name} was exported from; re-export it")
    return subject
