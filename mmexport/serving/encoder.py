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

from ..errors import InputError, UsageError
from ..serving.runtime import Runtime, load

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
    """The model folder's processor and a vision-side artifact of that folder."""

    def __init__(self, artifact: str | Path, folder: str | Path, device: str = "cpu"):
        from transformers import AutoImageProcessor

        from ..hf import family

        self.runtime: Runtime = load(artifact, device)
        record = self.runtime.record
        if record.model is None or not record.model.get("vision_tower"):
            raise UsageError(f"{Path(artifact).name} is not a vision-side artifact; export one with `mmexport onnx --model DIR --vision-tower`")
        found = family(record.model["model_type"])
        assert found is not None  # the record was written from a registered family
        self.family = found
        names = {s.name for s in self.runtime.inputs}
        if names - {"pixel_values", "image_grid_thw", "image_sizes", "pixel_attention_mask", "aspect_ratio_ids", "aspect_ratio_mask"}:
            raise UsageError(f"{Path(artifact).name} takes more than images ({', '.join(sorted(names))}); serve it with its tensors")
        try:
            self.processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UsageError(f"no image processor in {folder} (preprocessor_config.json): {str(exc).splitlines()[0]}") from None
        self.producer = json.dumps({"model": str(Path(folder).resolve()), "artifact": Path(artifact).name, "sha256": record.sha256})

    def prepare(self, data: bytes) -> dict[str, np.ndarray]:
        """What the processor returns for one image, checked as the runtime checks a request."""
        image = decode(data)
        try:
            made = self.processor(images=[image], return_tensors="np")
        except Exception as exc:  # the processor's own refusal (too small, odd aspect ratio)
            raise InputError(f"the model's processor cannot take this {image.width}x{image.height} image: {str(exc).splitlines()[0]}") from None
        return {s.name: np.asarray(made[s.name]).astype(s.dtype) for s in self.runtime.inputs}

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
        feeds = self.family.images.collate(items)
        out = self.runtime(**feeds)
        outputs = [out[s.name] for s in self.runtime.outputs]
        if self.runtime.record.grid is not None:
            sizes = self.runtime.record.grid.split(feeds)
            parts = [np.split(o, np.cumsum(sizes)[:-1]) for o in outputs]
        else:  # one row per image: [images, tokens, D]
            parts = [list(o.reshape(len(items), -1, o.shape[-1])) for o in outputs]
        grids = feeds.get("image_grid_thw")
        sizes_px = feeds.get("image_sizes")
        return [
            Encoded(
                np.concatenate([p[k] for p in parts], axis=-1),  # Qwen3-VL: [tokens, D * (1 + deepstack levels)]
                grids[k] if grids is not None else None,
                sizes_px[k] if sizes_px is not None else None,
            )
            for k in range(len(items))
        ]
