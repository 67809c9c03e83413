"""Small configs with the release presets' structure, for fast tests of every connector."""

from mmexport.connectors.c_abstractor import CAbstractorConfig
from mmexport.connectors.concat_linear import ConcatLinearConfig
from mmexport.connectors.gated_xattn import GatedXAttnConfig
from mmexport.connectors.glu import GLUConfig
from mmexport.connectors.h_reducer import HReducerConfig
from mmexport.connectors.idefics2 import Idefics2Config
from mmexport.connectors.instructblip import InstructBlipConfig
from mmexport.connectors.ldp import LDPConfig
from mmexport.connectors.linear import LinearConfig
from mmexport.connectors.mlp import MLPConfig
from mmexport.connectors.owl_abstractor import OwlAbstractorConfig
from mmexport.connectors.patch_merger import PatchMergerConfig
from mmexport.connectors.perceiver import PerceiverConfig
from mmexport.connectors.pixel_shuffle import PixelShuffleConfig
from mmexport.connectors.qformer import QFormerConfig
from mmexport.connectors.qwen_vl_resampler import QwenVLResamplerConfig

TINY = {  # small dims, same structure as the release presets: fast builds
    "linear": LinearConfig(32, 48, 16),
    "mlp": MLPConfig(32, 48, 16),
    "qformer": QFormerConfig(vision_dim=40, llm_dim=24, num_queries=8, hidden=48, layers=2, heads=4, intermediate=64, tokens=17),
    "glu": GLUConfig(40, 48, 64, 16),
    "concat-linear": ConcatLinearConfig(24, 32, 4, 16),
    "h-reducer": HReducerConfig(16, 32),
    "c-abstractor": CAbstractorConfig(16, 16, 24, depth=1),
    "ldp": LDPConfig(1, 16, 32),
    "ldp-v2": LDPConfig(2, 16, 32),
    "pixel-shuffle": PixelShuffleConfig(16, 32),
    "patch-merger": PatchMergerConfig("rmsnorm", 16, 32, 4, 64),
    "instructblip": InstructBlipConfig(
        vision_dim=40, llm_dim=24, num_queries=8, hidden=48, layers=2, heads=4, intermediate=64, tokens=17, vocab_size=100, max_positions=64, text_tokens=6
    ),
    "minigpt4": QFormerConfig(vision_dim=40, llm_dim=32, num_queries=8, hidden=48, layers=2, heads=4, intermediate=64, tokens=17),
    "perceiver": PerceiverConfig(dim=32, depth=2, heads=2, dim_head=16, num_latents=8, ff_mult=2, tokens=16),
    "gated-xattn": GatedXAttnConfig(dim=32, dim_visual=24, heads=2, dim_head=16, ff_mult=2, latents=8, text_tokens=12),
    "qwen-vl-resampler": QwenVLResamplerConfig(vision_dim=40, embed_dim=64, heads=2, queries=16, tokens=64),
    "idefics2": Idefics2Config(vision_dim=24, text_dim=32, intermediate=48, latents=8, depth=2, heads=4, head_dim=8, kv_heads=2, tokens=64),
    "owl-abstractor": OwlAbstractorConfig(vision_dim=32, hidden=32, llm_dim=40, layers=2, heads=4, intermediate=48, queries=8, tokens=17),
}
