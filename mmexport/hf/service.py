"""The encoder service's work: encoded images (JPEG, PNG ...) in, the model folder's own image
processor, one artifact call for every image of a batch, and per image the embeddings in the
layout vLLM and SGLang take as precomputed ones: [tokens, D] (Qwen3-VL: its deepstack features
concatenated along D, as vLLM reads them), with the grid (image_grid_thw) or image size that
goes with them. A bad image gets its own error; the other images of the batch are encoded."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration.images import image_processor
from ..errors import InputError, UsageError
from ..runtime import Runtime
from .automatic import recorded

MAX_PIXELS = 64_000_000  # a decoded image past this is refused before it takes the memory
MIN_SIDE = 8  # below this an image is a few pixels upscaled: nothing for a tower to read


@dataclass
class Encoded:
    """One image's answer: its embeddings, or why there are none."""

    embeddings: np.ndarray | None = None  # [tokens, D]
    grid: np.ndarray | None = None  # [3] image_grid_thw (Qwen family, GLM-4V)
    size: np.ndarray | None = None  # [2] image_sizes (Mistral 3)
    error: str = ""


def decode(data: bytes) -> Any:
    """An RGB PIL image from encoded bytes, or one clear InputError."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError("empty image: the request carried no bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InputError(f"image of {image.width}x{image.height} pixels is larger than the {MAX_PIXELS:,} pixels this service takes")
            if min(image.width, image.height) < MIN_SIDE:
                raise InputError(f"image of {image.width}x{image.height} pixels is smaller than {MIN_SIDE} pixels a side; send the image itself")
            image.load()
            return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise InputError(f"image refused as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise InputError(f"not an image PIL can read ({len(data)} bytes starting {data[:8]!r})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise InputError(f"cannot decode the image: {exc}") from None


def to_rgb(image: Any) -> Any:
    """16-bit images scaled to 8 bits (PIL's own conversion would clip them white); CMYK,
    palette and grey converted as PIL converts them."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.uint32)
        top = 65535 if image.mode.startswith("I;16") or values.max() > 255 else 255
        return Image.fromarray((values * 255 // top).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


class ImageEncoder:
    """The model folder's processor and a vision-side artifact of that folder, loaded once (the
    server runs the same Runtime for its tensors endpoint)."""

    def __init__(self, runtime: Runtime, folder: str | Path):
        record = runtime.record
        self.runtime = runtime
        if record.model is not None and record.model.part == "video":
            raise UsageError(f"{record.artifact} is a video side; the encoder service takes images (serve its tensors with `mmexport serve` without --model)")
        if record.model is None or record.model.part != "vision":
            raise UsageError(f"{record.artifact} is not a vision-side artifact; export one with `mmexport onnx --model DIR --vision-tower`")
        found = recorded(record.model, tuple(s.name for s in runtime.inputs), record.artifact)
        self.family = found
        extra = [s.name for s in runtime.inputs if s.name not in found.images.names]
        if extra:
            raise UsageError(f"{record.artifact} takes more than images ({', '.join(extra)}); serve it with its tensors")
        self.processor = image_processor(folder)
        self.processor_class = type(self.processor).__name__
        self.notes = processor_notes(folder, self.processor_class)
        self.producer = json.dumps(
            {"model": str(Path(folder).resolve()), "artifact": record.artifact, "sha256": record.sha256, "processor": self.processor_class}
        )

    def prepare(self, data: bytes) -> dict[str, np.ndarray]:
        """What the processor returns for one image, checked as the runtime checks a request."""
        image = decode(data)
        try:
            made = self.processor(images=[image], return_tensors="np")
        except Exception as exc:  # the processor's own refusal (too small, odd aspect ratio)
            raise InputError(f"the model's processor cannot take this {image.width}x{image.height} image: {str(exc).splitlines()[0]}") from None
        return {s.name: np.asarray(made[s.name]).astype(s.dtype) for s in self.runtime.inputs if s.name in made}

    def __call__(self, images: list[bytes]) -> list[Encoded]:
        answers: list[Encoded] = []
        ready: list[tuple[int, dict[str, np.ndarray]]] = []
        for i, data in enumerate(images):
            try:
                ready.append((i, self.prepare(data)))
                answers.append(Encoded())
            except InputError as exc:
                answers.append(Encoded(error=str(exc)))
        if ready:
            for (i, _), answer in zip(ready, self.encode([item for _, item in ready])):
                answers[i] = answer
        return answers

    def encode(self, items: list[dict[str, np.ndarray]]) -> list[Encoded]:
        """One artifact call for all the images, split back per image."""
        layout = self.family.images
        out = self.runtime(**layout.collate(items))
        parts = [layout.per_item(out[s.name], items, self.runtime.record.derivation) for s in self.runtime.outputs]
        return [
            Encoded(
                np.concatenate([p[k] for p in parts], axis=-1),  # Qwen3-VL: [tokens, D * (1 + deepstack levels)]
                item["image_grid_thw"][0] if "image_grid_thw" in item else None,
                item["image_sizes"][0] if "image_sizes" in item else None,
            )
            for k, item in enumerate(items)
        ]


def processor_notes(folder: str | Path, loaded: str) -> list[str]:
    """Say when the processor running here is not the one the folder names (transformers falls back
    to a PIL one without torchvision): its pixels differ slightly from a serving stack's own."""
    try:
        named = json.loads((Path(folder) / "preprocessor_config.json").read_text()).get("image_processor_type")
    except (OSError, ValueError):
        return []
    if not named or named == loaded:
        return []
    return [
        f"the folder's processor is {named}, which needs torchvision; this service runs {loaded}, whose pixels differ slightly "
        f"(up to ~0.015) from those a server with torchvision (vLLM) makes: install torchvision for the same embeddings"
    ]
