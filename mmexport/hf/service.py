"""The encoder service's work: encoded images (JPEG, PNG ...) or clips (MP4, WebM, a ZIP of frames)
in, the model folder's own processor, one artifact call for every item of a batch, and per item
the embeddings in the layout vLLM and SGLang take as precomputed ones: [tokens, D] (Qwen3-VL: its
deepstack features concatenated along D, as vLLM reads them), with the grid (image_grid_thw,
video_grid_thw) or image size that goes with them. A bad item gets its own error; the others of
the batch are encoded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration.images import image_processor
from ..errors import InputError, UsageError
from ..runtime import Runtime, validate
from .automatic import recorded
from .decoding import decode, decode_clip


@dataclass
class Encoded:
    """One item's answer: its embeddings, or why there are none."""

    embeddings: np.ndarray | None = None  # [tokens, D]
    grid: np.ndarray | None = None  # [3] image_grid_thw or video_grid_thw (Qwen family, GLM-4V)
    size: np.ndarray | None = None  # [2] image_sizes (Mistral 3)
    error: str = ""
    timestamps: list[float] | None = None  # seconds of each temporal patch, where vLLM takes them (Qwen3-VL's videos)


class Encoder:
    """A vision- or video-side artifact of a model folder, loaded once, and that folder's processor:
    encoded items in, one artifact call for the batch, each item's embeddings out (the server runs
    the same Runtime for its tensors endpoint). `kind`: "image" or "video"."""

    kind = "image"
    part = "vision"

    def __init__(self, runtime: Runtime, folder: str | Path):
        record = runtime.record
        self.runtime = runtime
        if record.model is None or record.model.part != self.part:
            found = record.model.part if record.model is not None else "connector"
            raise UsageError(
                f"{record.artifact} is a {found} artifact; the {self.kind} service takes a {self.part} side (export one with {EXPORTS[self.part]})"
            )
        self.family = recorded(record.model, tuple(s.name for s in runtime.inputs), record.artifact)
        extra = [s.name for s in runtime.inputs if s.name not in self.layout.names]
        if extra:
            raise UsageError(f"{record.artifact} takes more than {self.kind}s ({', '.join(extra)}); serve it with its tensors")
        self.processor_class, self.notes = self.load_processor(folder)
        self.producer = json.dumps(
            {"model": str(Path(folder).resolve()), "artifact": record.artifact, "sha256": record.sha256, "processor": self.processor_class}
        )

    @property
    def layout(self) -> Any:
        return self.family.images if self.part == "vision" else self.family.video

    def load_processor(self, folder: str | Path) -> tuple[str, list[str]]:
        raise NotImplementedError

    def prepare(self, data: bytes) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def prepare_item(self, data: bytes) -> tuple[dict[str, np.ndarray], list[float] | None]:
        """The item's tensors, and its temporal patches' times where the answer carries them."""
        return self.prepare(data), None

    def __call__(self, items: list[bytes]) -> list[Encoded]:
        answers: list[Encoded] = []
        ready: list[tuple[int, dict[str, np.ndarray]]] = []
        times: dict[int, list[float] | None] = {}
        for i, data in enumerate(items):
            try:
                tensors, times[i] = self.prepare_item(data)
                validate(self.runtime.inputs, tensors)  # this item alone fits the artifact (its ranges, its profile)
                ready.append((i, tensors))
                answers.append(Encoded())
            except InputError as exc:
                answers.append(Encoded(error=str(exc)))
        if ready:
            for (i, _), answer in zip(ready, self.encode([item for _, item in ready])):
                answers[i] = answer
                answer.timestamps = times[i] if answer.embeddings is not None else None
        return answers

    def encode(self, items: list[dict[str, np.ndarray]]) -> list[Encoded]:
        """One artifact call for all the items, split back per item; one call each where together
        they pass what one call takes (a batch of long clips)."""
        try:
            return self._encode_together(items)
        except InputError as exc:
            if len(items) == 1:
                return [Encoded(error=str(exc))]
            return [self.encode([item])[0] for item in items]

    def _encode_together(self, items: list[dict[str, np.ndarray]]) -> list[Encoded]:
        layout = self.layout
        out = self.runtime(**layout.collate(items))
        parts = [layout.per_item(out[s.name], items, self.runtime.record.derivation) for s in self.runtime.outputs]
        grid = {"image": "image_grid_thw", "video": "video_grid_thw"}[self.kind]
        return [
            Encoded(
                np.concatenate([p[k] for p in parts], axis=-1),  # Qwen3-VL: [tokens, D * (1 + deepstack levels)]
                item[grid][0] if grid in item else None,
                item["image_sizes"][0] if "image_sizes" in item else None,
            )
            for k, item in enumerate(items)
        ]


EXPORTS = {"vision": "`mmexport onnx --model DIR --vision-tower`", "video": "`mmexport onnx --model DIR --vision-tower --video`"}


class ImageEncoder(Encoder):
    """Encoded images (JPEG, PNG ...) through the folder's image processor."""

    def load_processor(self, folder: str | Path) -> tuple[str, list[str]]:
        self.processor = image_processor(folder)
        loaded = type(self.processor).__name__
        return loaded, processor_notes(folder, loaded)

    def prepare(self, data: bytes) -> dict[str, np.ndarray]:
        """What the processor returns for one image."""
        image = decode(data)
        try:
            made = self.processor(images=[image], return_tensors="np")
        except Exception as exc:  # the processor's own refusal (too small, odd aspect ratio)
            raise InputError(f"the model's processor cannot take this {image.width}x{image.height} image: {str(exc).splitlines()[0]}") from None
        return {s.name: np.asarray(made[s.name]).astype(s.dtype) for s in self.runtime.inputs if s.name in made}


class VideoEncoder(Encoder):
    """Encoded clips (MP4, WebM ... or a ZIP of frames) through the folder's video processor."""

    kind = "video"
    part = "video"

    def load_processor(self, folder: str | Path) -> tuple[str, list[str]]:
        from .video_processing import video_processor

        self.processor, notes = video_processor(folder)
        vision = json.loads((Path(folder) / "config.json").read_text()).get("vision_config") or {}
        self.temporal = int(vision.get("temporal_patch_size") or 1)  # frames per temporal patch
        return ("PIL frames (Qwen2-VL packing)" if notes else "the folder's video processor"), notes

    def prepare(self, data: bytes) -> dict[str, np.ndarray]:
        return self.prepare_item(data)[0]

    def prepare_item(self, data: bytes) -> tuple[dict[str, np.ndarray], list[float] | None]:
        frames = decode_clip(data)
        made = self.processor(frames)
        tensors = {s.name: np.asarray(made[s.name]).astype(s.dtype) for s in self.runtime.inputs if s.name in made}
        if not self.family.video_timestamps:
            return tensors, None
        return tensors, patch_times(len(frames), int(tensors["video_grid_thw"][0, 0]), self.temporal)


FRAMES_PER_SECOND = 2.0  # the rate a clip's frames are taken at: Qwen3-VL's processor samples 2 per second


def patch_times(frames: int, patches: int, per_patch: int) -> list[float]:
    """Each temporal patch's time in seconds, as vLLM computes it from a clip's frame indices: the
    mean of its first and last frame's (the last frame repeated to fill the final patch)."""
    index = [min(i, frames - 1) for i in range(per_patch * patches)]
    return [(index[k * per_patch] + index[(k + 1) * per_patch - 1]) / 2 / FRAMES_PER_SECOND for k in range(patches)]


def encoder_for(runtime: Runtime, folder: str | Path) -> Encoder:
    """The encoder for the artifact's part: images for a vision side, clips for a video side."""
    video = runtime.record.model is not None and runtime.record.model.part == "video"
    return (VideoEncoder if video else ImageEncoder)(runtime, folder)


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
