"""Gemma 3 and ShieldGemma 2: SigLIP, then Gemma3MultiModalProjector (average pool to
mm_tokens_per_image, Gemma RMSNorm, matmul). Pan-and-scan crops are more rows of the batch."""

from ..family import Family

FAMILY = Family(("gemma3", "shieldgemma2"), settings=("mm_tokens_per_image",))
