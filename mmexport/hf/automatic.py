"""Model types with no declaration: transformers' own get_image_features, exported as it is
written, fed what the folder's image processor returns, gated against transformers as every
artifact is. The vision parts are the modules beside the language model in the model that owns
get_image_features; the inputs and their dynamic axes are observed from the processor's answers
for one, two and three photos of different sizes. What does not export or does not pass is
refused in one line; a type worth more is declared (families/, or register_family)."""

from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from ..derivations import Derivation, Feeds, Identity
from ..errors import InputError, UsageError
from ..specs import Axis, TensorSpec
from .family import Family, image_embeds

Sample = dict[str, torch.Tensor]
NOTE = "no declaration: transformers' own path, gated"
SKIPPED = ("language_model", "lm_head", "audio", "text_model", "embed_tokens")  # what is not the vision side
CALLS = (1, 2, 3)  # photos per processor call: which axes follow the images, which follow sizes
MAX_ROWS = 64


@contextlib.contextmanager
def refusal(model_type: str) -> Iterator[None]:
    """A cause found on transformers' own path, as the one line the user gets."""
    try:
        yield
    except UsageError as exc:
        raise UsageError(f"model_type '{model_type}' has no declaration, and transformers' own path {exc}; declare its family (README)") from exc


def image_text_types() -> list[str]:
    """Every image-text-to-text model type of the installed transformers."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return sorted(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def vision_parts(model: nn.Module) -> tuple[str, ...]:
    """The dotted paths of the modules (and loose parameters) of the model owning get_image_features,
    other than its language model, text embeddings and audio side."""
    from .model import image_owner

    owner = image_owner(model)
    prefix = next(name for name, m in model.named_modules() if m is owner)
    language = getattr(owner, "language_model", None)
    parts = [name for name, child in owner.named_children() if child is not language and not any(s in name for s in SKIPPED)]
    parts += [name for name, _ in owner.named_parameters(recurse=False) if not any(s in name for s in SKIPPED)]
    return tuple(f"{prefix}.{name}" if prefix else name for name in parts)


def _images(count: int, seed: int) -> list[Any]:
    """Real photos where scikit-image is installed, generated ones otherwise, of different sizes."""
    from PIL import Image

    try:
        from ..samples import photos

        return photos(count, seed, sizes=((480, 320), (240, 720), (672, 448), (384, 384)))
    except UsageError:
        rng = np.random.default_rng(seed)
        sizes = ((480, 320), (240, 720), (672, 448))
        return [Image.fromarray(rng.integers(0, 255, (*sizes[(seed + i) % 3], 3), dtype=np.uint8)) for i in range(count)]


@functools.lru_cache(maxsize=8)
def _processor(folder: str) -> Any:
    from ..calibration.images import image_processor

    return image_processor(folder)


def _process(folder: str, names: tuple[str, ...], count: int, seed: int) -> Sample:
    made = _processor(folder)(images=_images(count, seed), return_tensors="pt")
    sample = {}
    for name in names:
        value = made[name]
        sample[name] = value.float() if value.is_floating_point() else value.long() if value.dtype != torch.bool else value
    return sample


def accepted(owner: nn.Module, folder: str) -> tuple[str, ...]:
    """What the processor returns that get_image_features takes, in the processor's order."""
    made = _processor(folder)(images=_images(1, 0), return_tensors="pt")
    takes = set(inspect.signature(owner.get_image_features).parameters)
    names = tuple(k for k, v in made.items() if k in takes)
    lists = [k for k in names if not isinstance(made[k], torch.Tensor)]
    if lists:
        raise UsageError(f"cannot be exported: its processor returns {', '.join(lists)} as Python lists, which a graph cannot take")
    if "pixel_values" not in names:
        raise UsageError(f"cannot be exported: its processor returns {', '.join(made)}, and get_image_features takes none of them as pixel_values")
    return names


def _axis(name: str, i: int, sizes: tuple[int, ...]) -> Axis:
    if sizes == CALLS:
        return Axis("images", 1, 1, MAX_ROWS)
    top = max(sizes)
    return Axis(f"{name}_{i}" if i else f"{name}_rows", 1, top, max(MAX_ROWS, 8 * top))


def observed_specs(samples: list[Sample]) -> list[TensorSpec]:
    """Specs from the processor's answers for 1, 2 and 3 photos: a size that never changes is fixed;
    sizes that change together are one dynamic axis; those that follow the photo count are `images`."""
    named: dict[tuple[int, ...], Axis] = {}
    specs = []
    for name, tensor in samples[0].items():
        dims: list[Any] = []
        for i, size in enumerate(tensor.shape):
            sizes = tuple(int(s[name].shape[i]) for s in samples)
            dims.append(int(size) if len(set(sizes)) == 1 else named.setdefault(sizes, _axis(name, i, sizes)))
        dtype = "float32" if tensor.is_floating_point() else "bool" if tensor.dtype == torch.bool else "int64"
        specs.append(TensorSpec(name, tuple(dims), dtype))
    return specs


@dataclass(frozen=True)
class Processed:
    """Whatever the folder's image processor returns, as it returns it (nothing derived)."""

    folder: str
    names: tuple[str, ...]
    derives: Any = None

    def samples(self, hf: Any = None) -> list[Sample]:
        return [_process(self.folder, self.names, count, seed=count) for count in CALLS]

    def inputs(self, hf: Any = None) -> list[TensorSpec]:
        return observed_specs(self.samples())

    def derivation(self, hf: Any = None) -> Derivation:
        return Identity(tuple(self.inputs()))

    def first_axis(self, hf: Any = None) -> Axis:
        return next(d for d in self.inputs()[0].dims if isinstance(d, Axis))

    def collate(self, items: list[Feeds]) -> Feeds:
        if any(items[0][n].shape[1:] != item[n].shape[1:] for item in items for n in self.names):
            raise InputError("these processor outputs differ past their first axis; an artifact with no declaration takes one call's outputs at a time")
        return {n: np.concatenate([item[n] for item in items]) for n in self.names}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        return _process(self.folder, self.names, images, seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        rows = [len(item[self.names[0]]) for item in items]
        if len(items) > 1 and output.shape[0] != sum(rows):
            raise InputError("the output does not follow the input's rows; send one processor call per request")
        return np.split(output, np.cumsum(rows)[:-1]) if len(items) > 1 else [output]

    def describe(self, hf: Any, feeds: Feeds) -> str:
        return ", ".join(f"{n} {list(np.asarray(feeds[n]).shape)}" for n in self.names)


def _outputs(hf: Any) -> tuple[str, ...]:
    levels = getattr(getattr(hf, "vision_config", None), "deepstack_visual_indexes", None) or ()
    return (*image_embeds(hf), *(f"deepstack_{i}" for i in range(len(levels))))


def family_for(hf_config: Any, folder: str | None) -> Family:
    """A family for an undeclared image-text-to-text type, or one line saying why there is none."""
    from .model import image_owner, skeleton

    model_type = hf_config.model_type
    if model_type not in image_text_types():
        raise UsageError(f"model_type '{model_type}' is not an image-text-to-text model of the installed transformers (mmexport list --models --all)")
    model = skeleton(hf_config)
    owner = image_owner(model)
    if not callable(getattr(owner, "get_image_features", None)):
        raise UsageError(f"model_type '{model_type}' has no get_image_features in transformers and no declaration; it cannot be exported automatically")
    with refusal(model_type):
        names = accepted(owner, folder) if folder else ("pixel_values",)
    layout = Processed(folder or "", names)
    return Family((model_type,), images=layout, parts=vision_parts(model), connector=None, pooled="tensor", outputs=_outputs, declared=False, notes=(NOTE,))


def pooled_as(owner: nn.Module, sample: Sample) -> str:
    """How get_image_features hands its features on (the record keeps it, attach rebuilds it): a
    tensor, a list of equal tensors (stacked), or a list of unequal ones (concatenated)."""
    try:
        with torch.no_grad():
            out = owner.get_image_features(**sample, return_dict=True)
    except Exception as exc:  # transformers raises many types; all mean it cannot run on the vision parts alone
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"does not run on the vision modules alone ({cause})") from exc
    pooled = getattr(out, "pooler_output", None)
    if any(t.is_meta for t in (pooled if isinstance(pooled, (list, tuple)) else [pooled]) if isinstance(t, torch.Tensor)):
        raise UsageError("reads weights beside the vision modules (the language model's)")
    if isinstance(pooled, torch.Tensor):
        return "tensor"
    if not isinstance(pooled, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in pooled):
        raise UsageError(f"returns {type(pooled).__name__} as get_image_features' pooler_output, not tensors")
    return "stack" if len({tuple(t.shape) for t in pooled}) == 1 else "cat"


def recorded(section: Any, names: tuple[str, ...], artifact: str) -> Family:
    """The family an artifact's record stands for: its declaration, or, for a type exported with
    none, what the record says (inputs as the processor returns them, how features are handed on)."""
    from . import family

    found = family(section.model_type)
    if found is not None:
        return found
    if section.declared:
        raise UsageError(f"{artifact} was exported from a '{section.model_type}' model, whose declaration this mmexport does not have")
    layout = Processed(section.folder or "", names)
    return Family((section.model_type,), images=layout, parts=(), connector=None, pooled=section.pooled or "tensor", declared=False, notes=(NOTE,))
