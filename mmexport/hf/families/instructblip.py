"""InstructBLIP: BLIP-2's vision side with the instruction (qformer_input_ids, its mask) read by the Q-Former."""

from ..family import Family
from ..layouts import Pixels
from ..qformer import QFormerPart, attach_connector, connector_inputs
from .blip2 import PARTS

FAMILY = Family(
    ("instructblip",),
    images=Pixels(text=True),
    parts=PARTS,
    connector=PARTS[1:],
    connector_module=QFormerPart,
    connector_inputs=connector_inputs,
    attach_connector=attach_connector,
    settings=("num_query_tokens",),
)
