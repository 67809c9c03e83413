"""`mmexport.client.embeddings(url, images)`: ask an mmexport encoder service (`mmexport serve
ARTIFACT --model DIR`) for images' embeddings and get back what a serving stack takes as
precomputed image embeddings: vLLM's `multi_modal_data["image"]` (`LLM(..., enable_mm_embeds=True)`),
and with `sglang(...)` SGLang's precomputed-embedding item.

    from vllm import LLM
    llm = LLM(model=DIR, enable_mm_embeds=True, limit_mm_per_prompt={"image": 0})
    image = mmexport.client.embeddings("127.0.0.1:8000", ["cat.jpg"])
    llm.generate([{"prompt": prompt, "multi_modal_data": {"image": image}}])
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
    """The service could not encode an image: the message says which and why."""


def _encoded(image: Any) -> bytes:
    """Bytes as they are, a file's bytes, or a PIL image as PNG."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _served(model: str | None) -> str:
    """The encoder model to ask: NAME_images for the name served, else `images` (the one served)."""
    if model is None:
        return "images"
    return model if model.endswith("_images") else f"{model}_images"


def _address(url: str) -> tuple[str, bool]:
    """host:port and whether it is https, from an address as people copy it (with or without a scheme)."""
    found = urlsplit(url if "://" in url else f"http://{url}")
    if found.scheme not in ("http", "https") or not found.netloc:
        raise UsageError(f"'{url}' is not an encoder service's address; give host:port or http://host:port")
    return found.netloc, found.scheme == "https"


def request(url: str, images: Sequence[Any], model: str | None = None, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Per image: its embeddings [tokens, D], its grid or size where the model has one, and what produced it."""
    import tritonclient.http as http

    address, ssl = _address(url)
    data = np.array([[_encoded(i)] for i in images], dtype=np.object_)
    tensor = http.InferInput("image", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    client = http.InferenceServerClient(address, ssl=ssl, connection_timeout=timeout, network_timeout=timeout)
    try:
        result = client.infer(_served(model), [tensor])
    finally:
        client.close()  # an open connection would hold the service's shutdown for Triton's exit timeout
    answers = []
    for k in range(len(images)):
        error = result.as_numpy("error")[k, 0].decode()
        if error:
            raise EncoderError(f"image {k}: {error}")
        tokens = int(result.as_numpy("image_tokens")[k, 0])
        answers.append(
            {
                "embeddings": result.as_numpy("image_embeds")[k, :tokens],
                "grid": result.as_numpy("image_grid_thw")[k],
                "size": result.as_numpy("image_sizes")[k],
                "producer": json.loads(result.as_numpy("producer")[k, 0].decode()),
            }
        )
    return answers


def embeddings(url: str, images: Sequence[Any], model: str | None = None) -> Any:
    """vLLM's `multi_modal_data["image"]` for these images: for models with a grid (Qwen2-VL,
    Qwen2.5-VL, Qwen3-VL, GLM-4V) {"image_embeds": [tokens, D] (rank 2), "image_grid_thw":
    [images, 3]}; for the others a tensor [images, tokens, D] (a list of [tokens, D] where the
    images differ in tokens)."""
    import torch

    answers = request(url, images, model)
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
