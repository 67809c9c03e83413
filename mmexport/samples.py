"""Sample images for trying things out and for tests, with no download: real photos that
scikit-image ships (`pip install scikit-image`) at small sizes of different aspect ratios, and
generated images in colours the photos lack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")
SIZES = ((60, 40), (30, 90), (84, 56), (48, 48))  # (height, width): different grids, crops and tiles
FOLDER_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "coins")


def _skimage() -> Any:
    try:
        import skimage.data
    except ImportError as exc:
        raise UsageError("sample photos come from scikit-image: pip install scikit-image") from exc
    return skimage.data


def photo(name: str) -> Any:
    """One of scikit-image's photos as an RGB PIL image, at its own size."""
    from PIL import Image

    return Image.fromarray(getattr(_skimage(), name)()).convert("RGB")


def photos(count: int, seed: int = 0, sizes: tuple[tuple[int, int], ...] = SIZES) -> list[Any]:
    """`count` real photos resized to (height, width) `sizes` in turn."""
    images = []
    for i in range(count):
        height, width = sizes[(seed + i) % len(sizes)]
        images.append(photo(PHOTOS[(seed + i) % len(PHOTOS)]).resize((width, height)))
    return images


def clip(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A clip of a real photo: [frames, H, W, 3] uint8, a window panning across it one step per frame."""
    step_h, step_w = max(1, height // 32), max(1, width // 32)
    picture = np.asarray(photo(PHOTOS[seed % 4]).resize((width + step_w * frames, height + step_h * frames)))
    return np.stack([picture[i * step_h : i * step_h + height, i * step_w : i * step_w + width] for i in range(frames)])


def write_photos(folder: Path, generated: int = 6) -> list[Path]:
    """scikit-image's photos at their own sizes, and generated images, as PNG files in `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FOLDER_PHOTOS:
        paths.append(folder / f"{name}.png")
        photo(name).save(paths[-1])
    rng = np.random.default_rng(0)
    for i in range(generated):  # gradients with noise, in colours the photos lack
        y, x = np.mgrid[0:64, 0:64]
        base = np.stack([(x * (i + 1)) % 256, (y * (7 - i)) % 256, (x + y) * 2 % 256], axis=-1)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"generated-{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def png(image: Any) -> bytes:
    """A PIL image as PNG bytes (what a client sends)."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bad_images() -> dict[str, bytes]:
    """Inputs an image service must refuse one by one, keyed by the phrase its error names:
    truncated, a few pixels, a decompression bomb, empty, not an image."""
    import io

    from PIL import Image

    jpeg = io.BytesIO()
    photos(1)[0].save(jpeg, format="JPEG")
    huge = io.BytesIO()
    Image.new("1", (20000, 20000)).save(huge, format="PNG")  # small on disk, 400M pixels decoded
    return {
        "cannot decode the image": jpeg.getvalue()[: len(jpeg.getvalue()) // 2],
        "smaller than 8 pixels": png(Image.new("RGB", (1, 1))),
        "decompression bomb": huge.getvalue(),
        "empty image": b"",
        "not an image": b"GIF89a but not really an image",
    }
