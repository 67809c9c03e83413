"""PaliGemma (1 and 2): SigLIP's last hidden state, multi_modal_projector (one Linear)."""

from ..family import Family

FAMILY = Family(("paligemma",))
