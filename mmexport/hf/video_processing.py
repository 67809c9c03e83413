"""The model folder's video processor: frames [F, H, W, 3] in, the tensors its video side takes
out (pixel_values_videos, video_grid_thw). transformers' video processors need torchvision, which
the registries only have as CUDA builds; where it does not import, a Qwen2-VL-style video
processor (Qwen2-VL, Qwen2.5-VL and the folders that reuse it) runs as transformers' PIL image
processor for the resize and normalisation of each frame, with the frames then stacked in time
as the video processor stacks them. Its pixels differ slightly from torchvision's resize (the
service says so); frames already at the processor's size are the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError, UsageError

FrameProcessor = Callable[[np.ndarray], dict[str, np.ndarray]]
PIL_PACKED = ("Qwen2VLVideoProcessor",)  # video processors whose packing the PIL path reproduces
QWEN2_VIDEO_TYPES = ("qwen2_vl", "qwen2_5_vl")  # model types whose auto video processor is Qwen2VLVideoProcessor


def video_processor(folder: str | Path) -> tuple[FrameProcessor, list[str]]:
    """The processor, and notes on how it departs from the folder's own."""
    config = _config(Path(folder))
    named = config.get("video_processor_type") or _mapped(Path(folder))
    try:
        from transformers import AutoVideoProcessor

        own = AutoVideoProcessor.from_pretrained(str(folder), local_files_only=True)
    except ImportError:
        own = None
    except (OSError, ValueError) as exc:
        raise UsageError(f"needs a video processor: {folder} has none that loads ({str(exc).splitlines()[0][:160]})") from exc
    if own is not None:
        return (lambda frames: _call(own, frames)), []
    if named not in PIL_PACKED:
        raise UsageError(f"the folder's video processor ({named}) needs torchvision here; install torchvision, or send the processor's tensors")
    note = (
        f"the folder's video processor is {named}, which needs torchvision; this service resizes frames with PIL, whose pixels differ slightly (up to ~0.015)"
    )
    return _pil_qwen(config), [note]


def _mapped(folder: Path) -> str:
    """The video processor transformers' auto class names for the folder's model type, where the
    folder was saved with its image processor only (transformers blanks those names when
    torchvision is missing, so the Qwen2-VL ones are listed here)."""
    try:
        model_type = json.loads((folder / "config.json").read_text())["model_type"]
    except (OSError, ValueError, KeyError):
        return "?"
    return "Qwen2VLVideoProcessor" if model_type in QWEN2_VIDEO_TYPES else f"the video processor of {model_type}"


def _config(folder: Path) -> dict[str, Any]:
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        path = folder / name
        if path.is_file():
            return json.loads(path.read_text())
    raise UsageError(f"needs a video processor: {folder} has no video_preprocessor_config.json")


def _call(processor: Any, frames: np.ndarray) -> dict[str, np.ndarray]:
    try:
        made = processor(videos=[frames], return_tensors="np", do_sample_frames=False)
    except Exception as exc:  # the processor's own refusal (too small, too few frames)
        raise InputError(f"the model's video processor cannot take this clip of {len(frames)} frames: {str(exc).splitlines()[0]}") from None
    return {k: np.asarray(v) for k, v in made.items()}


def _pil_qwen(config: dict[str, Any]) -> FrameProcessor:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    temporal = int(config.get("temporal_patch_size", 2))
    kept = ("size", "patch_size", "merge_size", "image_mean", "image_std", "rescale_factor", "do_resize", "do_rescale", "do_normalize", "resample")
    frame_processor = Qwen2VLImageProcessorPil(**{k: config[k] for k in kept if k in config}, temporal_patch_size=1)

    def process(frames: np.ndarray) -> dict[str, np.ndarray]:
        from PIL import Image

        if len(frames) % temporal:  # the last frame repeated, as the video processor pads
            frames = np.concatenate([frames, np.repeat(frames[-1:], temporal - len(frames) % temporal, 0)])
        try:
            made = frame_processor(images=[Image.fromarray(f) for f in frames], return_tensors="np")
        except Exception as exc:
            raise InputError(f"the model's processor cannot take this clip's {frames.shape[2]}x{frames.shape[1]} frames: {str(exc).splitlines()[0]}") from None
        return _stacked_in_time(np.asarray(made["pixel_values"]), np.asarray(made["image_grid_thw"]), temporal)

    return process


def _stacked_in_time(pixels: np.ndarray, grids: np.ndarray, temporal: int) -> dict[str, np.ndarray]:
    """Per-frame patches [F * n, C*P*P] -> the clip's [F/T * n, C*T*P*P]: each patch's frames side by
    side along T (channel, time, row, column), in the frames' own patch order."""
    frames, (_, rows, cols) = len(grids), grids[0]
    per_frame = int(rows * cols)
    x = pixels.reshape(frames // temporal, temporal, per_frame, 3, -1)  # [t, T, n, C, P*P]
    x = x.transpose(0, 2, 3, 1, 4).reshape((frames // temporal) * per_frame, -1)
    grid = np.array([[frames // temporal, rows, cols]], dtype=np.int64)
    return {"pixel_values_videos": np.ascontiguousarray(x, dtype=np.float32), "video_grid_thw": grid}


VIDEO_TYPES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")


def clips_in(source: Path, count: int) -> list[np.ndarray]:
    """Up to `count` clips from a folder: video files, and subfolders of frame images (name order)."""
    from ..calibration.images import image_files
    from .decoding import decode_clip

    found = sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_TYPES or (p.is_dir() and image_files(p))) if source.is_dir() else []
    if not found:
        raise UsageError(f"{source} holds no clips: give video files ({', '.join(VIDEO_TYPES)}) or folders of frames")
    clips = []
    for path in found[:count]:
        try:
            clips.append(decode_clip(path.read_bytes()) if path.is_file() else _frames_of(path))
        except InputError as exc:
            raise UsageError(f"{path.name}: {exc}") from None
    return clips


def _frames_of(folder: Path) -> np.ndarray:
    from ..calibration.images import image_files
    from .decoding import decode, stacked

    return stacked([np.asarray(decode(p.read_bytes())) for p in image_files(folder)])


def processed_clips(folder: str | Path, specs: list[Any], clips: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One sample per clip: what the folder's video processor makes of it, by the graph's input names."""
    process, _ = video_processor(folder)
    samples = []
    for frames in clips:
        made = process(frames)
        samples.append({s.name: np.asarray(made[s.name]).astype(s.dtype) for s in specs if s.name in made})
    return samples
