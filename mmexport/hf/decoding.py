"""What a client sent, decoded: an image (PIL: JPEG, PNG ...), or a clip: an encoded video (MP4,
WebM, MKV ... decoded by PyAV, which ships FFmpeg) or a ZIP of frame images (taken in name order).
One clear InputError for an item that cannot be one: empty, not an image or a video, no frames,
frames of different sizes, a frame past the pixel limit (checked before decoding), too small,
or more frames than a clip may have."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

from ..errors import InputError, UsageError

MAX_PIXELS = 64_000_000  # a decoded image past this is refused before it takes the memory
MIN_SIDE = 8  # below this an image is a few pixels upscaled: nothing for a tower to read


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


MAX_FRAMES = 1024  # decoded frames per clip; a longer clip is refused before it takes the memory


def decode_clip(data: bytes) -> np.ndarray:
    """Frames [F, H, W, 3] uint8 (RGB)."""
    if not data:
        raise InputError("empty clip: the request carried no bytes")
    return stacked(_zipped_frames(data) if data[:2] == b"PK" and zipfile.is_zipfile(io.BytesIO(data)) else _video_frames(data))


def stacked(frames: list[np.ndarray]) -> np.ndarray:
    """Decoded frames as one clip [F, H, W, 3], or one clear InputError (none, or of different sizes)."""
    if not frames:
        raise InputError("the clip has no frames")
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        first, other = frames[0].shape, next(f.shape for f in frames if f.shape != frames[0].shape)
        raise InputError(f"the clip's frames differ in size ({first[1]}x{first[0]} and {other[1]}x{other[0]}); send frames of one size")
    return np.stack(frames)


def _zipped_frames(data: bytes) -> list[np.ndarray]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = sorted(n for n in archive.namelist() if not n.endswith("/"))
            if len(names) > MAX_FRAMES:
                raise InputError(f"the clip has {len(names)} frames, more than the {MAX_FRAMES} a clip may have")
            return [np.asarray(decode(archive.read(name))) for name in names]
    except zipfile.BadZipFile as exc:
        raise InputError(f"cannot read the ZIP of frames: {exc}") from None


def _video_frames(data: bytes) -> list[np.ndarray]:
    try:
        import av
    except ImportError as exc:
        raise UsageError("decoding video files needs PyAV: pip install 'mmexport[serve]' (or send a ZIP of frames)") from exc
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise InputError("the file has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > MAX_PIXELS:
                raise InputError(f"frames of {width}x{height} pixels are larger than the {MAX_PIXELS:,} pixels this service takes")
            frames: list[np.ndarray] = []
            for frame in container.decode(stream):
                if len(frames) == MAX_FRAMES:
                    raise InputError(f"the clip has more than the {MAX_FRAMES} frames a clip may have")
                frames.append(frame.to_ndarray(format="rgb24"))
            return frames
    except av.error.FFmpegError as exc:  # not a video, or truncated past what FFmpeg recovers
        raise InputError(f"not a video PyAV can decode ({len(data)} bytes starting {data[:8]!r}): {exc}") from None
