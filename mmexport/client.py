"""`mmexport.client.embeddings(url, images)` (or `videos=[...]`): ask an mmexport encoder service
(`mmexport serve ARTIFACT --model DIR`) for images' (clips') embeddings and get back what a serving
stack takes as precomputed embeddings: vLLM's `multi_modal_data["image"]` (`["video"]`)
(`LLM(..., enable_mm_embeds=True)`), and with `sglang(...)` SGLang's precomputed-embedding item.

    from vllm import LLM
    llm = LLM(model=DIR, enable_mm_embeds=True, limit_mm_per_prompt={"image": 0})
    image = mmexport.client.embeddings("127.0.0.1:8000", ["cat.jpg"])
    llm.generate([{"prompt": prompt, "multi_modal_data": {"image": image}}])
    video = mmexport.client.embeddings("127.0.0.1:8000", videos=["clip.mp4"])  # a video side's service
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np

from .errors import MmexportError, UsageError


class EncoderError(MmexportError):
    """The service could not encode an image or clip: the message says which and why."""


def _encoded(item: Any) -> bytes:
    """Bytes as they are, a file's bytes, a PIL image as PNG, or a clip given as frames (a list of
    PIL images or an array [F, H, W, 3]) as a ZIP of PNG frames (lossless; the service decodes it)."""
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, (str, Path)):
        return Path(item).read_bytes()
    if isinstance(item, (list, tuple, np.ndarray)):
        return _zipped(item)
    buffer = io.BytesIO()
    item.save(buffer, format="PNG")
    return buffer.getvalue()


def _zipped(frames: Any) -> bytes:
    import zipfile

    from PIL import Image

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i, frame in enumerate(frames):
            picture = Image.fromarray(np.asarray(frame, dtype=np.uint8)) if not hasattr(frame, "save") else frame
            png = io.BytesIO()
            picture.save(png, format="PNG")
            archive.writestr(f"{i:06d}.png", png.getvalue())
    return buffer.getvalue()


def _served(model: str | None, kind: str) -> str:
    """The encoder model to ask: NAME_images (NAME_videos) for the name served, else `images` (`videos`)."""
    if model is None:
        return f"{kind}s"
    return model if model.endswith(f"_{kind}s") else f"{model}_{kind}s"


def _address(url: str) -> tuple[str, bool]:
    """host:port and whether it is https, from an address as people copy it (with or without a scheme)."""
    found = urlsplit(url if "://" in url else f"http://{url}")
    if found.scheme not in ("http", "https") or not found.netloc:
        raise UsageError(f"'{url}' is not an encoder service's address; give host:port or http://host:port")
    return found.netloc, found.scheme == "https"


def request(url: str, images: Sequence[Any] = (), model: str | None = None, timeout: float = 120.0, videos: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Per image (or clip): its embeddings [tokens, D], its grid or size where the model has one, and what produced it."""
    import tritonclient.http as http

    kind, items = _kind(images, videos)
    address, ssl = _address(url)
    data = np.array([[_encoded(i)] for i in items], dtype=np.object_)
    tensor = http.InferInput(kind, list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    client = http.InferenceServerClient(address, ssl=ssl, connection_timeout=timeout, network_timeout=timeout)
    try:
        result = client.infer(_served(model, kind), [tensor])
    finally:
        client.close()  # an open connection would hold the service's shutdown for Triton's exit timeout
    answers = []
    for k in range(len(items)):
        error = result.as_numpy("error")[k, 0].decode()
        if error:
            raise EncoderError(f"{kind} {k}: {error}")
        tokens = int(result.as_numpy(f"{kind}_tokens")[k, 0])
        answers.append(
            {
                "embeddings": result.as_numpy(f"{kind}_embeds")[k, :tokens],
                "grid": result.as_numpy(f"{kind}_grid_thw")[k],
                "size": result.as_numpy("image_sizes")[k] if kind == "image" else np.zeros(2, np.int64),
                "timestamps": _times(result, k) if kind == "video" else None,
                "producer": json.loads(result.as_numpy("producer")[k, 0].decode()),
            }
        )
    return answers


def _times(result: Any, k: int) -> list[float] | None:
    """A clip's temporal patches' times (seconds), where the service sends them (Qwen3-VL)."""
    times = result.as_numpy("video_timestamps")
    row = [] if times is None else [float(t) for t in times[k] if not np.isnan(t)]
    return row or None


def _kind(images: Sequence[Any], videos: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    if bool(len(images)) == bool(len(videos)):
        raise UsageError("give images or videos (one kind per call: a service encodes one)")
    return ("image", images) if len(images) else ("video", videos)


def embeddings(url: str, images: Sequence[Any] = (), model: str | None = None, videos: Sequence[Any] = ()) -> Any:
    """vLLM's `multi_modal_data["image"]` for these images: for models with a grid (Qwen2-VL,
    Qwen2.5-VL, Qwen3-VL, GLM-4V) {"image_embeds": [tokens, D] (rank 2), "image_grid_thw":
    [images, 3]}; for the others a tensor [images, tokens, D] (a list of [tokens, D] where the
    images differ in tokens). With `videos` (files, bytes, or frames): `multi_modal_data["video"]`,
    {"video_embeds": [tokens, D], "video_grid_thw": [clips, 3]}, and for Qwen3-VL "timestamps" (per
    clip, each temporal patch's seconds, its frames taken at 2 per second), which vLLM reads as prompt text."""
    import torch

    answers = request(url, images, model, videos=videos)
    if len(videos):
        video = {
            "video_embeds": torch.from_numpy(np.concatenate([a["embeddings"] for a in answers])),
            "video_grid_thw": torch.from_numpy(np.stack([a["grid"] for a in answers])),
        }
        times = [a["timestamps"] for a in answers]
        return video | ({"timestamps": times} if all(t is not None for t in times) else {})
    if any(a["grid"].any() for a in answers):
        return {
            "image_embeds": torch.from_numpy(np.concatenate([a["embeddings"] for a in answers])),
            "image_grid_thw": torch.from_numpy(np.stack([a["grid"] for a in answers])),
        }
    rows = [torch.from_numpy(np.array(a["embeddings"])) for a in answers]
    return torch.stack(rows) if len({r.shape for r in rows}) == 1 else rows


def sglang(value: Any) -> dict[str, Any]:
    """SGLang's precomputed-embedding image item for what `embeddings` returned."""
    if isinstance(value, dict):
        return {"format": "precomputed_embedding", "feature": value["image_embeds"], "image_grid_thw": value["image_grid_thw"]}
    return {"format": "precomputed_embedding", "feature": value}
