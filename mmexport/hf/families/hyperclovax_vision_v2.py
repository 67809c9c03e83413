"""HyperCLOVA X Vision v2: Qwen2.5-VL's tower and merger at `vision_model`, then a Linear
projection to the LLM's width that the model applies to the merger's output."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("hyperclovax_vision_v2",), QwenStyle(windows=True, tower="vision_model", projector="projector"))
