"""Video-LLaVA: LLaVA-1.5's path with its own image tower (`image_tower`, CLIP's hidden states at
vision_feature_layer, CLS dropped by the 'default' strategy) and projector; its processor calls
the pixels `pixel_values_images`. Videos: a second tower (`video_tower`) over every frame, all
its tokens kept, the same projector: get_video_features exported as transformers writes it."""

from torch import nn

from ..family import Family
from ..layers import FeatureLayers
from ..layouts import Frames, Pixels


def image_tower_layers(model: nn.Module) -> nn.Module:
    return FeatureLayers(model, tower="image_tower").eval()


FAMILY = Family(
    ("video_llava",),
    images=Pixels(name="pixel_values_images"),
    video=Frames(),
    video_pooled="tensor",
    video_parts=("video_tower",),
    parts=("image_tower", "multi_modal_projector"),
    vision=image_tower_layers,
    renamed=(("pixel_values_images", "pixel_values"),),  # transformers 5.23 renamed the argument, not the processor's output
    settings=("vision_feature_layer", "vision_feature_select_strategy"),
)
