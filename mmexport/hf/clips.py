"""A clip from the bytes a client sent: an encoded video (MP4, WebM, MKV ... decoded by PyAV, which
ships FFmpeg) or a ZIP of frame images (taken in name order). One clear InputError for a clip
that cannot be one: empty, not a video, no frames, frames of different sizes, a frame past the
pixel limit (checked before decoding), or more frames than a clip may have."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from ..errors import InputError, UsageError
from .service import MAX_PIXELS, decode

MAX_FRAMES = 1024  # decoded frames per clip; a longer clip is refused before it takes the memory


def decode_clip(data: bytes) -> np.ndarray:
    """Frames [F, H, W, 3] uint8 (RGB)."""
    if not data:
        raise InputError("empty clip: the request carried no bytes")
    frames = _zipped_frames(data) if data[:4] == b"PK\x03\x04" else _video_frames(data)
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
            frames = []
            for frame in container.decode(stream):
                if len(frames) == MAX_FRAMES:
                    raise InputError(f"the clip has more than the {MAX_FRAMES} frames a clip may have")
                frames.append(frame.to_ndarray(format="rgb24"))
            return frames
    except av.error.FFmpegError as exc:  # not a video, or truncated past what FFmpeg recovers
        raise InputError(f"not a video PyAV can decode ({len(data)} bytes starting {data[:8]!r}): {exc}") from None
