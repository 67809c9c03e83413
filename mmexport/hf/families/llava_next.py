"""LLaVA-NeXT, LLaVA-OneVision and LLaVA-NeXT-Video: one row per tile; their anyres packing (unpadding,
image_newline) runs inside get_image_features, in transformers, after the graph. Videos (OneVision,
NeXT-Video): frames at the tower's size, pooled per frame in get_video_features, exported whole."""

from ..family import Family
from ..layers import feature_layers
from ..layouts import Frames, Pixels

FAMILY = Family(
    ("llava_next", "llava_onevision", "llava_next_video"),
    images=Pixels(axis="tiles"),
    video=Frames(),  # OneVision and NeXT-Video: their get_video_features (frame pooling, newline) as transformers writes it
    video_pooled="tensor",
    video_parts=("image_newline", "vision_resampler"),
    vision=feature_layers,
    reference=feature_layers,  # per tile: get_image_features itself packs the tiles of each image
    settings=("vision_feature_layer", "vision_feature_select_strategy", "image_grid_pinpoints"),
    attach_why_not="its tiles are packed (anyres) inside get_image_features, after the projector; attach the connector artifact",
    notes=("the graph gives each tile's embeddings; pack_image_features (anyres unpadding, image_newline) stays in transformers",),
)
