"""`mmexport.encoder_outputs(artifact, **processor_outputs)`: what a transformers VLM's forward
takes instead of pixel_values, computed by a vision-side artifact: `mm_encoder_outputs` (the
pooler output in the container the family's forward reads, Qwen3-VL's deepstack features
included, with the grid M-RoPE still reads) or, for Llama 3.2 Vision, `cross_attention_states`. Call the model with both:
`model(**text_inputs, **mmexport.encoder_outputs(artifact, **image_inputs))`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..runtime import Runtime, load
from .attach import image_output, pooled
from .automatic import recorded

STILL_READ = ("image_grid_thw", "video_grid_thw", "qformer_input_ids", "qformer_attention_mask")  # by the forward, beside the features


@functools.lru_cache(maxsize=4)
def _runtime(path: str, mtime: float, device: str) -> Runtime:
    return load(path, device)


def encoder_outputs(artifact: str | Path, device: str = "cpu", **processor_outputs: Any) -> dict[str, Any]:
    """Forward keyword arguments: {"mm_encoder_outputs": {"image": ...}} or {"cross_attention_states": ...}."""
    path = Path(artifact)
    runtime = _runtime(str(path.resolve()), path.stat().st_mtime if path.exists() else 0.0, device)
    record = runtime.record
    if record.model is None or record.model.part not in ("vision", "video"):
        raise UsageError(f"{path.name} is not a vision-side artifact of a model folder; export one with `mmexport onnx --model DIR --vision-tower`")
    found = recorded(record.model, tuple(s.name for s in runtime.inputs), path.name)
    if found.features_as is None:
        raise UsageError(
            f"the forward of '{record.model.model_type}' takes no precomputed image features; attach the artifact instead (mmexport.attach(model, '{path.name}'))"
        )
    present = {s.name: processor_outputs[s.name] for s in runtime.inputs if processor_outputs.get(s.name) is not None}
    arrays = {name: np.asarray(_host(value)).astype(runtime.dtypes[name]) for name, value in present.items()}
    out = runtime(**arrays)
    tensors = [torch.from_numpy(out[s.name]) for s in runtime.outputs]
    if found.features_as != "mm_encoder_outputs":  # Llama 3.2 Vision: the states its cross-attention reads
        return {found.features_as: tensors[0]}
    features, deepstack = pooled(found, record, tensors, arrays)
    modality = "video" if record.model.part == "video" else "image"
    given: dict[str, Any] = {"mm_encoder_outputs": {modality: image_output(pooler_output=features, deepstack_features=deepstack)}}
    # BLIP-2's forward takes pixel_values positionally (InstructBLIP the instruction too); M-RoPE
    # (Qwen, GLM) still reads the grid
    given["pixel_values_videos" if modality == "video" else "pixel_values"] = None
    for name in STILL_READ:
        if name in processor_outputs:
            given[name] = torch.as_tensor(_host(processor_outputs[name]))
    return given


def _host(value: Any) -> Any:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
