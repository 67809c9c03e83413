"""LightOnOCR: Mistral 3's Pixtral tower and projector at other names (`vision_encoder`,
`vision_projection`), reading the tower's last hidden state."""

from ..family import Family
from ..layouts import Sized
from ..native import PixtralStyle

FAMILY = Family(
    ("lighton_ocr",),
    images=Sized(),
    parts=("vision_encoder", "vision_projection"),
    connector=None,
    vision=PixtralStyle(tower="vision_encoder", projector="vision_projection", layer=-1),
    pooled="split",
    settings=("spatial_merge_size",),
)
