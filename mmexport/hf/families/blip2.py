"""BLIP-2: EVA ViT-g (its last hidden state, CLS kept), query tokens, Q-Former, language_projection."""

from ..family import Family
from ..qformer import QFormerPart, attach_connector, attach_vision, connector_inputs

PARTS = ("vision_model", "query_tokens", "qformer", "language_projection")

FAMILY = Family(
    ("blip-2",),
    parts=PARTS,
    connector=PARTS[1:],
    connector_module=QFormerPart,
    connector_inputs=connector_inputs,
    attach_vision=attach_vision,  # generate() runs the three modules itself, not get_image_features
    attach_connector=attach_connector,
    settings=("num_query_tokens",),
)
