"""Small configs with the release presets' structure, for fast tests of every connector."""

from mmexport.connectors.c_abstractor import CAbstractorConfig
from mmexport.connectors.concat_linear import ConcatLinearConfig
from mmexport.connectors.glu import GLUConfig
from mmexport.connectors.h_reducer import HReducerConfig
from mmexport.connectors.ldp import LDPConfig
from mmexport.connectors.linear import LinearConfig
from mmexport.connectors.mlp import MLPConfig
from mmexport.connectors.patch_merger import PatchMergerConfig
from mmexport.connectors.pixel_shuffle import PixelShuffleConfig
from mmexport.connectors.qformer import QFormerConfig

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
}
