"""Video inputs for the tests without torchvision (transformers' video processors need it, and
the registries only have CUDA builds of it): clips of real photos panning across frames, resized,
rescaled, normalised and cut into patches exactly as Qwen2-VL's processor cuts an image (the
image processor's own layout, checked against it in test_video.py), with frames grouped by
temporal_patch_size. Where torchvision imports, the folder's real video processor is used."""

from __future__ import annotations

import numpy as np
import torch

from mmexport.hf.layouts import temporal_patch_size
from mmexport.samples import clip


def patchify(frames: np.ndarray, processor, temporal: int, patch: int, merge: int) -> tuple[torch.Tensor, list[int]]:
    """Frames [F, H, W, 3] uint8 (H, W multiples of patch*merge) -> [patches, C*T*P*P] and (t, h, w),
    in Qwen2-VL's order: merge-size blocks row-major, each patch channel, time, row, column."""
    mean, std = np.asarray(processor.image_mean, np.float32), np.asarray(processor.image_std, np.float32)
    x = (frames.astype(np.float32) * processor.rescale_factor - mean) / std
    if len(x) % temporal:
        x = np.concatenate([x, np.repeat(x[-1:], temporal - len(x) % temporal, 0)])  # the last frame repeated, as the processor pads
    t, h, w = len(x) // temporal, x.shape[1] // patch, x.shape[2] // patch
    x = x.transpose(0, 3, 1, 2).reshape(t, temporal, 3, h // merge, merge, patch, w // merge, merge, patch)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(t * h * w, 3 * temporal * patch * patch)
    return torch.from_numpy(np.ascontiguousarray(x)), [t, h, w]


VIDEO_MERGE = 2  # VideoLLaMA3's video processor merges 2x2 (its config has no merge size; each clip's is an input)


def clips(config, processor, shapes: list[tuple[int, int, int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """pixel_values_videos and video_grid_thw (and video_merge_sizes where the family takes them)
    for clips of (frames, rows, columns) merged tokens."""
    from mmexport.hf import family
    from mmexport.hf.layouts import MoonViTPatches

    vision, layout = config.vision_config, family(config.model_type).video
    merge = getattr(vision, "spatial_merge_size", VIDEO_MERGE)
    unit = vision.patch_size * merge
    temporal = temporal_patch_size(vision)
    chunked = isinstance(layout, MoonViTPatches)  # Kimi-K2.5: raster order, [patches, 3, P, P], clips cut into rows of pos_emb_time frames
    parts, grids = [], []
    for i, (frames, rows, cols) in enumerate(shapes):
        pixels, (t, h, w) = patchify(clip(frames, rows * unit, cols * unit, seed + i), processor, temporal, vision.patch_size, 1 if chunked else merge)
        parts.append(pixels)
        step = vision.pos_emb_time if chunked else t
        grids += [[min(step, t - start), h, w] for start in range(0, t, step)]
    pixels = torch.cat(parts)
    if chunked:
        pixels = pixels.reshape(len(pixels), 3, vision.patch_size, vision.patch_size)
    made = {"pixel_values_videos": pixels, "video_grid_thw": torch.tensor(grids)}
    sized = "video_merge_sizes" in layout.names
    return made | ({"video_merge_sizes": torch.full((len(shapes),), merge)} if sized else {})


def mp4(frames: np.ndarray, codec: str = "libx264") -> bytes:
    """Frames encoded as an MP4 file (what a client uploads), by PyAV."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=4)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def zipped(pictures: list) -> bytes:
    """PNG frames in a ZIP, in name order (a clip sent as frames)."""
    import io
    import zipfile

    from PIL import Image

    from mmexport.samples import png

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, picture in enumerate(pictures):
            if isinstance(picture, np.ndarray):
                picture = Image.fromarray(picture)
            archive.writestr(f"{i:04d}.png", picture if isinstance(picture, bytes) else png(picture))
    return buffer.getvalue()
