"""Generic tiny random models of any image-text-to-text type of the installed transformers, for
the coverage table (scripts/coverage.py) and the tests of types mmexport does not declare:

    tiny_config(model_type)          -> shrunk config of the model type (defaults of its own config class)
    tiny_processor(model_type, cfg)  -> the mapped image processor (non-torchvision variant), sized for cfg, or None
    save_tiny(model_type, folder)    -> a random model of that config saved in bf16 with its processor

The shrinking works on the config's to_dict() (recursively into every nested sub-config dict), then rebuilds the
config class from the dict, so that the class' own __init__/__post_init__ validation and derivations run.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import math
import re
from pathlib import Path
from typing import Any

from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from . import family

W = 64  # every width-like field (so that cross-config references such as out_hidden_size stay consistent)
HEADS = 2
HEAD_DIM = W // HEADS  # 32
SMALL_HEAD_DIM = 16  # other *_head_dim fields (MLA parts, linear attention, mamba...)
FFN = 2 * W
RANK = 16  # LoRA-like ranks
N_LAYERS = 2
MAX_LAYERS = 4  # upper bound when more layers are needed to keep one layer of each kind
EXPERTS = 4
TOPK = 2
GRID = 4  # target patches per image side (before merges), rounded up to a multiple of the merge factors

# --------------------------------------------------------------------------------------------- key classification
LAYER_COUNT_KEYS = {
    "num_hidden_layers",
    "num_layers",
    "depth",
    "n_layers",
    "layers",
    "encoder_layers",
    "decoder_layers",
    "num_decoder_layers",
    "decoder_num_layers",
    "conf_num_hidden_layers",
    "resampler_depth",
    "num_global_layers",
    "aligner_num_add_layers",
    "num_encoder_layers",
    "text_layers",
    "vision_layers",
    "num_lstm_layers",
    "n_layer",
    "num_blocks",
    "mm_projector_depth",
    "projector_depth",
    "num_res_blocks",
}
HEAD_KEYS_RE = re.compile(r"(^|_)(num_attention_heads|num_heads|attention_heads|n_heads?|heads|n_head)$")
KV_HEAD_KEYS_RE = re.compile(r"(^|_)(num_key_value_heads|num_kv_heads|n_kv_heads|kv_heads)$")
HEAD_DIM_RE = re.compile(r"^(head_dim|attention_head_dim|dim_head)$")
OTHER_HEAD_DIM_RE = re.compile(r"(_head_dim|^d_kv|_dim_head)$")
FFN_RE = re.compile(
    r"(intermediate_size|ffn_dim|^d_ff$|mlp_dim$|_ff_dim$|moe_hidden_size|share_expert_dim|"
    r"intermediate_size_mlp|projection_intermediate_size|^mlp_hidden_size$)"
)
WIDTH_RE = re.compile(
    r"(hidden_size|^d_model$|embed_dim$|^n_embd$|^width$|^dim$|hidden_dim$|_out_dim$|_in_dim$|"
    r"^output_dim$|^projection_dim$|_output_dim$|^out_hidden_size$|proj_dim$|_input_dim$|"
    r"^image_token_embed_dim$|^text_hidden_size$|^codebook_dim$|"
    r"^latent_channels$|^output_channels$|^conv_output_size$|^vision_output_dim$|"
    r"^merged_hidden_size$|^adapter_input_size$|_proj_dims$)"
)
WIDTH_EXCLUDE_RE = re.compile(r"(patch|action|state|head_dim|^max_|position|_size_per_layer$|kernel|mel|feat)")
EXPERT_RE = re.compile(r"^(num_experts|n_routed_experts|num_local_experts|moe_num_experts)$")
TOPK_RE = re.compile(r"^(num_experts_per_tok|moe_k|moe_topk|top_k|num_experts_per_token|top_k_experts)$")
SHARED_EXPERT_RE = re.compile(r"^(n_shared_experts|moe_num_shared_experts|num_shared_experts)$")
RANK_RE = re.compile(r"(lora_rank|_rank$|^hc_lowrank$)")
INDEX_KEY_RE = re.compile(
    r"(indexes|indices|idxs|_layer_ids?$|^insert_layer_id$|feature_layers?$|target_layers$|"
    r"^cross_attention_layers$|^moe_layers$|^mlp_only_layers$|^rope_scaling_layers$|"
    r"^full_attention_layers$|^sliding_layers$|^global_layers$|^loop_layer_index_(start|end)$|"
    r"^spatial_vision_layer$|^select_layer$|^vision_select_layer$|^feature_layer$)"
)
PER_LAYER_LIST_HINT = re.compile(
    r"(types?$|layers$|_pattern$|layers_block_type|^layer_|_layers_|sources?_layers|"
    r"^no_rope|sparsity_pattern|rope_theta$)"
)
MERGE_KEYS = (
    "spatial_merge_size",
    "merge_size",
    "downsample_factor",
    "scale_factor",
    "pooling_kernel_size",
    "adapter_merge_size",
    "spatial_pool_stride",
    "downsample_ratio",
    "merge_kernel_size",
    "window_kernel_size",
    "compress",
    "hidden_stride",
    "pixel_shuffle_ratio",
    "spatial_scale_factor",
    "projector_pooling_ratio",
    "pooling_stride",
    "spatial_merge",
)
# per-stage lists of hierarchical encoders (their count is the number of stages, not of blocks)
STAGE_LIST_KEYS = {
    "depths",
    "hidden_sizes",
    "patch_sizes",
    "patch_stride",
    "embed_dims",
    "num_heads",
    "strides",
    "patch_padding",
    "patch_prenorm",
    "num_groups",
    "mlp_ratios",
    "downsample_channels",
}
# layer-index sets (membership of a layer): become a per-layer flag column for the layer plan
SET_INDEX_KEYS = {
    "fullatt_block_indexes",
    "global_attn_indexes",
    "cross_attention_layers",
    "moe_layers",
    "mlp_only_layers",
    "rope_scaling_layers",
    "full_attn_idxs",
    "full_attention_layers",
    "sliding_layers",
    "global_layers",
    "ple_layer_ids",
    "full_attention_idxs",
    "swa_layers",
    "dense_layers",
    "nope_layers",
    "attention_layer_indices",
    "mamba_layer_indices",
}
PREFIX_KEYS = {"first_k_dense_replace", "max_window_layers", "first_dense_layers", "num_dense_layers"}
SUFFIX_KEYS = {"num_kv_shared_layers"}
BOUNDARY_KEYS = {"loop_layer_index_start", "loop_layer_index_end"}
# "every k-th layer" periods: must not exceed the new layer count
PERIOD_KEYS = {
    "n_layers_per_attn_res_block",
    "no_rope_layer_interval",
    "sliding_window_pattern",
    "_sliding_window_pattern",
    "cross_attention_frequency",
    "interleave_moe_layer_step",
    "decoder_sparse_step",
    "cross_layer_interval",
    "moe_layer_freq",
    "moe_layer_interval",
}
INDEX_KEY_RE = re.compile(INDEX_KEY_RE.pattern + "|^(" + "|".join(sorted(SET_INDEX_KEYS | BOUNDARY_KEYS)) + ")$")
OTHER_HEAD_COUNT_KEYS = {
    "linear_num_key_heads",
    "linear_num_value_heads",
    "linear_num_heads",
    "mamba_num_heads",
    "heads_per_ngram",
    "index_n_heads",
    "indexer_n_heads",
    "indexer_kv_heads",
    "swa_num_attention_heads",
    "conf_num_attention_heads",
    "resampler_n_heads",
    "resampler_heads",
    "num_sliding_attention_heads",
}


def _is_cfg_dict(v):
    return isinstance(v, dict) and "model_type" in v


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _layer_count(d):
    for k in ("num_hidden_layers", "depth", "num_layers", "n_layers", "layers", "encoder_layers", "decoder_layers", "n_layer"):
        v = d.get(k)
        if _is_int(v) and v > 0:
            return k, v
    return None, None


def _map_index(i, l0, n):
    """Proportional map of a layer / hidden-state index from range(l0) into range(n); negatives stay negative."""
    if not _is_int(i):
        return i
    if l0 <= 1 or n <= 1:
        return 0 if i >= 0 else -1
    if i < 0:
        p = l0 + i
        q = round(max(p, 0) * (n - 1) / (l0 - 1))
        return q - n
    return min(round(min(i, l0 - 1) * (n - 1) / (l0 - 1)), n - 1)


def _hashable(x):
    return x if isinstance(x, (str, int, float, bool, type(None))) else repr(x)


def _plan_layers(d, l0):
    """Choose which original layers to keep: the first layers, plus one layer of every distinct per-layer "kind"
    (combination of per-layer list values, membership in layer-index sets, prefix/suffix thresholds and
    per_layer_config entries). Returns the sorted list of kept original layer indices."""
    if l0 <= MAX_LAYERS and any(isinstance(v, (list, tuple)) and len(v) == l0 and k in STAGE_LIST_KEYS for k, v in d.items()):
        return list(range(l0))  # "layers" are stages of a hierarchical encoder: keep them (depths go to 1)
    columns = []  # per-layer signature columns
    for k, v in d.items():
        if (
            isinstance(v, (list, tuple))
            and len(v) == l0
            and l0 > 1
            and not INDEX_KEY_RE.search(k)
            and (l0 > 4 or PER_LAYER_LIST_HINT.search(k))
            and not k.startswith(("norm_", "image_", "id2", "label"))
        ):
            columns.append([_hashable(x) for x in v])
        elif k in SET_INDEX_KEYS and isinstance(v, (list, tuple)) and all(_is_int(x) for x in v):
            s = {x % l0 for x in v}
            columns.append([i in s for i in range(l0)])
        elif k in PREFIX_KEYS and _is_int(v) and 0 < v < l0:
            columns.append([i < v for i in range(l0)])
        elif k in SUFFIX_KEYS and _is_int(v) and 0 < v < l0:
            columns.append([i >= l0 - v for i in range(l0)])
    bounds = [d[k] for k in BOUNDARY_KEYS if _is_int(d.get(k)) and 0 < d[k] < l0]
    if bounds:  # one region column: before / inside / after the [start, end) span
        columns.append([sum(i >= b for b in bounds) for i in range(l0)])
    plc = d.get("per_layer_config")
    if isinstance(plc, dict) and plc:
        keys = {int(x) % l0: repr(y) for x, y in plc.items() if str(x).lstrip("-").isdigit()}
        columns.append([keys.get(i) for i in range(l0)])
    if not columns:
        return _with_room_for_taps(d, l0, [])
    # greedy cover of every (column, value) pair, earliest layers first
    need = {(c, col[i]) for c, col in enumerate(columns) for i in range(l0)}
    sel = []
    while need:
        best = max(range(l0), key=lambda i: (sum((c, col[i]) in need for c, col in enumerate(columns)), -i))
        gain = {(c, col[best]) for c, col in enumerate(columns)} & need
        if not gain:
            break
        sel.append(best)
        need -= gain
        if len(sel) >= MAX_LAYERS:
            break
    return _with_room_for_taps(d, l0, sel)


def _with_room_for_taps(d, l0, sel):
    """At least N_LAYERS layers, and one more than a deepstack list's distinct taps (mapped
    proportionally, they stay distinct: merged, transformers would hand on fewer features)."""
    taps = [len(set(v)) for k, v in d.items() if "deepstack" in k and isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v)]
    wanted = min(l0, max([N_LAYERS, *(t + 1 for t in taps)]))
    for i in range(l0):
        if len(sel) >= wanted:
            break
        if i not in sel:
            sel.append(i)
    return sorted(sel)


def _rescale_sections(sec, target):
    """Rescale a rope section list so that it sums to target (each part >= 1)."""
    s = sum(sec)
    target = max(len(sec), int(target))
    raw = [x * target / s for x in sec]
    out = [max(1, int(math.floor(r))) for r in raw]
    # equal sections stay equal (ERNIE-4.5-VL stacks its h and w sections): the remainder goes to whole groups first
    groups = sorted({x: [j for j in range(len(sec)) if sec[j] == x] for x in sec}.values(), key=lambda g: raw[g[0]] - out[g[0]], reverse=True)
    for group in groups:
        if len(group) <= target - sum(out):
            for j in group:
                out[j] += 1
    while sum(out) < target:
        j = max(range(len(sec)), key=lambda j: raw[j] - out[j])
        out[j] += 1
    while sum(out) > target:
        j = max(range(len(sec)), key=lambda j: out[j])
        out[j] -= 1
    return out


def _rope(rp, dims):
    """dims: list of (old_rotary_dim, new_rotary_dim) candidates; sections summing to old/2 are rescaled to new/2."""
    if not isinstance(rp, dict):
        return rp
    rp = dict(rp)
    for k, v in list(rp.items()):
        if isinstance(v, dict):
            rp[k] = _rope(v, dims)
        elif "section" in k and isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v) and sum(v) > 0:
            s = sum(v)
            old, new = next(((o, n) for o, n in dims if o and o // 2 == s), dims[-1])
            rp[k] = _rescale_sections(list(v), s * new / old if old else s)
    return rp


def _lcm_merge(d, parents):
    m = 1
    for src in [d] + parents:
        for k in MERGE_KEYS:
            v = src.get(k)
            if isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v):
                v = max(v)
            if isinstance(v, float) and v >= 1 and v == int(v):
                v = int(v)
            if _is_int(v) and 1 < v <= 8:
                m = m * v // math.gcd(m, v)
    return m


def _shrink_scalar(k, v, ctx):
    """Generic rule for one integer field. ctx: dict(old_heads=...)."""
    if not _is_int(v) or v <= 0:
        return v
    if k in LAYER_COUNT_KEYS or (k.endswith("_layers") and k.startswith(("num_", "n_")) and k not in PREFIX_KEYS and k not in SUFFIX_KEYS and "nextn" not in k):
        return min(v, N_LAYERS)
    if KV_HEAD_KEYS_RE.search(k):
        oh = ctx.get("old_heads")
        return HEADS if (not oh or v >= oh) else 1
    if HEAD_KEYS_RE.search(k) or k.endswith("_attention_heads") or k in OTHER_HEAD_COUNT_KEYS:
        return min(v, HEADS)
    if HEAD_DIM_RE.match(k):
        return HEAD_DIM
    if OTHER_HEAD_DIM_RE.search(k) or k == "rotary_dim":
        return 2 * SMALL_HEAD_DIM if k == "qk_head_dim" else SMALL_HEAD_DIM
    if RANK_RE.search(k):
        return min(v, RANK)
    if EXPERT_RE.match(k):
        return min(v, EXPERTS)
    if TOPK_RE.match(k):
        return min(v, TOPK)
    if SHARED_EXPERT_RE.match(k):
        return min(v, 1)
    if k in ("n_group", "topk_group", "n_groups"):
        return 1
    if FFN_RE.search(k):
        return FFN
    if k == "base_channels":
        return min(v, 32)  # VQ-GAN conv stacks multiply it per stage; GroupNorm(32) needs >= 32
    if k in ("num_filters",) or k.endswith("_per_layer_input") and "vocab" not in k:
        return min(v, 8)  # conv filter base (doubles per stage) / per-layer-embedding width (x vocab x layers)
    if k.endswith("_channels") and not re.match(r"^(in|out|num|input|audio|image|output)_channels$", k) and v > W:
        return W
    if WIDTH_RE.search(k) and not WIDTH_EXCLUDE_RE.search(k) and v > 16:
        return W
    return v


def _ctx(val, ctx):
    h = next((val[k] for k in ("num_attention_heads", "num_heads") if _is_int(val.get(k))), None)
    return {"old_heads": h} if h else ctx


def _sub_layer_range(d, parents, subs):
    """(l0, n) of the sub-config (vision tower / text model) a top-level index field refers to."""
    for src in [d] + parents:
        for sub in subs:
            s = src.get(sub)
            if _is_cfg_dict(s):
                lk, sl0 = _layer_count(s)
                if not sl0 and _is_cfg_dict(s.get("encoder_config")):
                    s = s["encoder_config"]
                    lk, sl0 = _layer_count(s)
                if sl0:
                    return sl0, len(_plan_layers(s, sl0))
    return None, None


VISION_SUBS = ("vision_config", "encoder_config", "vision_tower_config", "encoder")
TEXT_SUBS = ("text_config", "language_config", "llm_config", "decoder")


def _shrink(d, parents):
    d = dict(d)
    orig = copy.deepcopy(d)
    lk, l0 = _layer_count(d)
    old_heads = next(
        (d[k] for k in ("num_attention_heads", "num_heads", "n_head", "n_heads", "attention_heads", "encoder_attention_heads") if _is_int(d.get(k))), None
    )
    old_hidden = next((d[k] for k in ("hidden_size", "d_model", "embed_dim", "width", "n_embd", "dim") if _is_int(d.get(k))), None)
    old_hd = d["head_dim"] if _is_int(d.get("head_dim")) else (old_hidden // old_heads if old_hidden and old_heads else None)
    ctx = {"old_heads": old_heads}

    # ---- layers: choose kept layers, cut per-layer lists, remap layer indices / thresholds
    sel = _plan_layers(d, l0) if l0 else None
    n = len(sel) if sel else None
    if sel:
        pos = {o: i for i, o in enumerate(sel)}
        d[lk] = n
        for k, v in list(d.items()):
            if k == lk:
                continue
            if (
                isinstance(v, (list, tuple))
                and len(v) == l0
                and l0 > 1
                and not INDEX_KEY_RE.search(k)
                and (l0 > 4 or PER_LAYER_LIST_HINT.search(k))
                and not k.startswith(("norm_", "image_", "id2", "label"))
            ):
                new = [v[i] for i in sel]
                if all(_is_int(x) for x in v) and "source" in k:  # values are layer indices too
                    new = [pos.get(x, min(i, _map_index(x, l0, n))) for i, x in enumerate(new)]
                d[k] = type(v)(new) if isinstance(v, tuple) else new
            elif k in SET_INDEX_KEYS and isinstance(v, (list, tuple)) and all(_is_int(x) for x in v):
                s = {x % l0 for x in v}
                d[k] = type(v)(i for i, o in enumerate(sel) if o in s)
            elif k in PREFIX_KEYS and _is_int(v) and v > 0:
                d[k] = sum(o < v for o in sel)
            elif k in SUFFIX_KEYS and _is_int(v) and v > 0:
                d[k] = sum(o >= l0 - v for o in sel) if v < l0 else n
            elif k in BOUNDARY_KEYS and _is_int(v):
                d[k] = sum(o < v for o in sel) if v >= 0 else v
            elif k == "per_layer_config" and isinstance(v, dict):
                newp = {}
                for key, val in v.items():
                    if str(key).lstrip("-").isdigit() and int(key) % l0 in pos:
                        nk = pos[int(key) % l0]
                        newp[type(key)(nk) if not isinstance(key, str) else f"{nk:0{len(key)}d}"] = (
                            {kk: _shrink_scalar(kk, vv, _ctx(val, ctx)) for kk, vv in val.items()} if isinstance(val, dict) else val
                        )
                d[k] = newp
    if sel:
        for k, v in list(d.items()):
            if k in PERIOD_KEYS and _is_int(v) and v > 0:
                p = min(v, n)
                # layer boundaries (loop start/end) that were multiples of the period must stay multiples
                if any(_is_int(orig.get(b)) and orig[b] % v == 0 and d[b] % p for b in BOUNDARY_KEYS if b in d):
                    p = 1
                d[k] = p
    # ---- index fields that tap hidden states (feature layers): proportional map into the kept range
    for k, v in list(d.items()):
        if not (INDEX_KEY_RE.search(k) and k not in SET_INDEX_KEYS and k not in BOUNDARY_KEYS):
            continue
        if not (_is_int(v) or (isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v))):
            continue
        vision_ref = any(s in k for s in ("vision", "feature", "visual", "select", "deepstack"))
        if l0 and (not vision_ref or "vision" in str(d.get("model_type", "")) or "deepstack" in k):
            ll0, nn = l0, n
        else:
            ll0, nn = _sub_layer_range(d, parents, VISION_SUBS if vision_ref else TEXT_SUBS)
        if not ll0:
            continue
        if _is_int(v):
            d[k] = _map_index(v, ll0, nn)
        else:
            d[k] = type(v)(_map_index(x, ll0, nn) for x in v)

    # ---- scalar sizes
    for k, v in list(d.items()):
        if _is_cfg_dict(v) or k == lk:
            continue
        if _is_int(v):
            if k in PREFIX_KEYS or k in SUFFIX_KEYS or k in BOUNDARY_KEYS or k in PERIOD_KEYS or INDEX_KEY_RE.search(k):
                continue
            d[k] = _shrink_scalar(k, v, ctx)
        elif v is None and HEAD_DIM_RE.match(k) and old_heads:
            d[k] = HEAD_DIM  # "head_dim: None" in a default config: give the value the model would compute
        elif isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v):
            if k == "depths":
                d[k] = type(v)(min(x, 1) for x in v)
            elif k in ("hidden_sizes", "embed_dims", "downsample_channels", "dims", "embed_dim", "channels") or (
                WIDTH_RE.search(k) and not WIDTH_EXCLUDE_RE.search(k)
            ):
                f = max(1, max(v) // W)
                d[k] = type(v)(max(16, x // f) for x in v)
            elif k in ("num_heads", "num_attention_heads", "heads", "num_groups"):
                d[k] = type(v)(min(x, HEADS) for x in v)

    # ---- conv stacks whose last stage width is another width field (VQ-GAN: base_channels * mult[-1] == hidden)
    mult = d.get("channel_multiplier")
    if _is_int(orig.get("base_channels")) and isinstance(mult, (list, tuple)) and mult and _is_int(mult[-1]):
        tied = [k for k in ("hidden_size", "embed_dim") if _is_int(orig.get(k)) and orig[k] == orig["base_channels"] * mult[-1]]
        if tied:
            d["base_channels"] = min(orig["base_channels"], 32)
            for k in tied:
                d[k] = d["base_channels"] * mult[-1]
    # ---- rope sections follow the rotary dim
    new_hd = d["head_dim"] if _is_int(d.get("head_dim")) else HEAD_DIM
    dims = []
    for rk in ("qk_rope_head_dim", "rotary_dim"):
        if _is_int(orig.get(rk)) and _is_int(d.get(rk)):
            dims.append((orig[rk], d[rk]))
    if old_hd:
        for rk in ("rope_parameters", "rope_scaling"):
            prf = (d.get(rk) or {}).get("partial_rotary_factor") if isinstance(d.get(rk), dict) else None
            if prf:
                dims.append((int(old_hd * prf), int(new_hd * prf)))
        dims.append((old_hd, new_hd))
        for rk in ("rope_parameters", "rope_scaling"):
            if isinstance(d.get(rk), dict):
                d[rk] = _rope(d[rk], dims)
    if "qk_head_dim" in d and _is_int(d.get("qk_nope_head_dim")) and _is_int(d.get("qk_rope_head_dim")):
        d["qk_head_dim"] = d["qk_nope_head_dim"] + d["qk_rope_head_dim"]

    _shrink_image(d, parents)

    for k, v in list(d.items()):
        if _is_cfg_dict(v):
            d[k] = _shrink(v, [d] + parents)
        elif isinstance(v, list) and v and all(_is_cfg_dict(x) for x in v):
            d[k] = [_shrink(x, [d] + parents) for x in v]
    return d


TOKEN_COUNT_KEYS = ("image_seq_length", "mm_tokens_per_image", "vision_soft_tokens_per_image", "num_image_tokens", "image_token_len", "tokens_per_image")


def _grid(d):
    ps = d.get("patch_size")
    ps = ps[0] if isinstance(ps, (list, tuple)) and ps else ps
    side = next((d[k] for k in ("image_size", "img_size", "vision_image_size", "resolution") if k in d), None)
    side = side[0] if isinstance(side, (list, tuple)) and side else side
    return side // ps if _is_int(ps) and _is_int(side) and ps > 0 else None


def _side(d):
    side = next((d[k] for k in ("image_size", "img_size", "vision_image_size", "resolution") if k in d), None)
    return side[0] if isinstance(side, (list, tuple)) and side else (side if _is_int(side) else None)


def _fix_token_counts(new, old, new_parents=(), old_parents=()):
    """Image token counts (image_seq_length, mm_tokens_per_image...) follow the patch grid of the vision tower."""

    def grids():
        for n_src, o_src in zip([new, *new_parents], [old, *old_parents]):
            for sub in (None,) + VISION_SUBS:
                ns, os_ = (n_src, o_src) if sub is None else (n_src.get(sub), o_src.get(sub))
                if _is_cfg_dict(ns) and _is_cfg_dict(os_) and _grid(ns) and _grid(os_):
                    return _grid(os_), _grid(ns)
        return None, None

    for k in TOKEN_COUNT_KEYS:
        v = new.get(k)
        if _is_int(v) and v > 1:
            og, ng = grids()
            if og and ng and ng < og:
                if v in (og * og, og * og + 1):
                    new[k] = ng * ng + (v - og * og)
                elif math.isqrt(v) ** 2 == v:  # pooled tokens: the side must divide the patch grid
                    t = max(1, round(math.isqrt(v) * ng / og))
                    new[k] = max(x for x in range(1, ng + 1) if ng % x == 0 and x <= t) ** 2
    pp = new.get("image_grid_pinpoints")
    if isinstance(pp, list) and pp and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in pp):
        # anyres resolutions: keep them as multiples of the (new) vision image size
        side = next((_side(s) for s in [new.get(x) for x in VISION_SUBS] + [new] if _is_cfg_dict(s) and _side(s)), None)
        unit = min(min(x) for x in pp)
        if side and unit > 0:
            new["image_grid_pinpoints"] = [[max(1, round(h / unit)) * side, max(1, round(w / unit)) * side] for h, w in pp]
    for k, v in new.items():
        if _is_cfg_dict(v) and _is_cfg_dict(old.get(k)):
            _fix_token_counts(v, old[k], (new, *new_parents), (old, *old_parents))


def _shrink_image(d, parents):
    ps = d.get("patch_size")
    if isinstance(ps, (list, tuple)):
        ps = ps[0] if ps else None
    if not _is_int(ps):
        return
    img_key = next((k for k in ("image_size", "img_size", "vision_image_size", "resolution") if k in d), None)
    if img_key is None:
        return
    old = d[img_key]
    old_side = old[0] if isinstance(old, (list, tuple)) else old
    if not _is_int(old_side) or old_side <= 0:
        return
    m = _lcm_merge(d, parents)
    g = m * max(1, math.ceil(GRID / m))
    new_side = g * ps
    if new_side >= old_side:
        return
    d[img_key] = type(old)([new_side] * len(old)) if isinstance(old, (list, tuple)) else new_side
    ws = d.get("window_size")
    if _is_int(ws) and ws > ps * m and ws % (ps * m) == 0:
        d["window_size"] = ps * m  # windows in pixels (qwen2.5-vl style): one merged patch, so several windows
    og = old_side // ps
    for k in ("num_position_embeddings", "num_patches", "max_num_patches", "position_embedding_size"):
        v = d.get(k)
        if _is_int(v) and v in (og * og, og * og + 1):
            d[k] = g * g + (v - og * og)
    for k in ("pos_emb_height", "pos_emb_width", "posemb_grid_size"):
        if _is_int(d.get(k)) and d[k] == og:
            d[k] = g


# ------------------------------------------------------------------------------------------------------ overrides
# Applied after the generic shrink, keyed by model type; nested keys with "a.b". Only where generic rules fail.
# A callable value is called with the (shrunk) dict that holds the key.
def _chameleon_vocab(d):
    # default config has vocabulary_map=None; the model needs "<image>" and one "IMGIMG<letters>Z" BPE token per
    # VQ code (digits written as letters A-J), inside the vocab
    def code(i):
        return "".join(chr(ord("A") + int(c)) for c in str(i))

    n = d["vq_config"]["num_embeddings"]
    return {"<image>": 3, **{f"IMGIMG{code(i)}Z": 4 + i for i in range(n)}}


def _emu3_vocab(d):
    # same for Emu3: "<|visual tokenNNNNNN|>" per VQ code
    n = d["vq_config"]["codebook_size"]
    return {"<image>": 3, "<|extra_200|>": 2, **{f"<|visual token{i:06d}|>": 4 + i for i in range(n)}}


def _rope_per_layer_type(d):
    # cohere_compass: default rope_parameters is {} but the rotary module indexes it by layer type; mrope_section
    # (code default [24, 20, 20] for head_dim 128) must sum to head_dim // 2
    sec = _rescale_sections([24, 20, 20], d["head_dim"] // 2)
    return {t: {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sec} for t in set(d["layer_types"])}


def _mllama_output_dim(vision):  # the tower concatenates its last state and each tapped layer's
    return vision["hidden_size"] * (len(vision["intermediate_layers_indices"]) + 1)


def _merged_width(d):  # the projector takes merge_size**2 patches side by side
    return d["vision_config"]["hidden_size"] * d["vision_config"]["merge_size"] ** 2


def _shuffled_width(vision):  # the adapter's first layer takes the pixel-shuffled patches
    return int(vision["hidden_size"] / vision["pixel_shuffle_ratio"] ** 2)


OVERRIDES: dict[str, dict[str, Any]] = {
    "muse_glimmer": {"out_hidden_size": _merged_width},
    "muse_spark": {"out_hidden_size": _merged_width},
    "llama4": {"vision_config.intermediate_size": _shuffled_width},
    "mllama": {"vision_config.vision_output_dim": _mllama_output_dim},
    # the Aria projector only knows 1225 / 4900 patches and the processor only 490 / 980 px images
    "aria": {"vision_config.patch_size": 14, "vision_config.image_size": 490},
    # vocabulary_map defaults to None; the VQ-code -> BPE-token mapping is built from it
    "chameleon": {"vocabulary_map": _chameleon_vocab},
    "emu3": {"vocabulary_map": _emu3_vocab},
    # default rope_parameters is {} but the rotary embedding indexes it per layer type
    "cohere_compass": {"text_config.rope_parameters": _rope_per_layer_type},
    # mrope_section is absent from the default config and the code default ([22, 22, 20]: h, w, t) assumes head_dim 128;
    # its rotary stacks the h and w sections, which must stay equal
    "ernie4_5_vl_moe": {"text_config.rope_parameters.mrope_section": [6, 6, 4]},
    # num_experts / top_k_experts / moe_intermediate_size default to None but the text layers always build MoE
    "diffusion_gemma": {"text_config.num_experts": 4, "text_config.top_k_experts": 2, "text_config.moe_intermediate_size": 128},
    # mlp_layer_types defaults to None but the decoder layers index it
    "deepseek_ocr2": {"text_config.mlp_layer_types": ["dense", "sparse"]},
    # deepstack_layer_map ((vision layer, llm layer) pairs) and downsample_rate ("q/k" string) default to None
    "granite4_vision": {"deepstack_layer_map": [[-2, 0], [-1, 1]], "downsample_rate": "1/2"},
    # layer_types has "indexed_attention" but all indexer sizes default to None (index head >= rotary dim)
    "qwen4_exp": {
        "text_config.indexer_n_heads": 2,
        "text_config.indexer_kv_heads": 1,
        "text_config.indexer_head_dim": 32,
        "text_config.indexer_budget": 64,
        "text_config.indexer_compress_ratio": 4,
    },
}


TIES = (("head_dim", "qk_rope_head_dim"),)  # fields a default config keeps equal (DeepSeek-V3: the rotary's width)


def _keep_ties(new, old):
    for a, b in TIES:
        if _is_int(old.get(a)) and old.get(a) == old.get(b) and _is_int(new.get(b)):
            new[a] = new[b]
    for k, v in new.items():
        if _is_cfg_dict(v) and _is_cfg_dict(old.get(k)):
            _keep_ties(v, old[k])


def _set_path(d, path, value):
    parts = path.split(".")
    for p in parts[:-1]:
        d = d[p]
    d[parts[-1]] = value(d) if callable(value) else value


def tiny_config(model_type: str):
    cls = CONFIG_MAPPING[model_type]
    d0 = cls().to_dict()
    # a vision sub-config that defaults to None (e.g. gemma4) would leave a model without vision tower
    for key, sub_cls in getattr(cls, "sub_configs", {}).items():
        if "vision" in key and d0.get(key, 0) is None and isinstance(sub_cls, type):
            d0[key] = sub_cls().to_dict()
    d = _shrink(d0, [])
    _fix_token_counts(d, d0)
    _keep_ties(d, d0)
    for path, value in OVERRIDES.get(model_type, {}).items():
        _set_path(d, path, value)
    d.pop("transformers_version", None)
    return cls.from_dict(d)


# ------------------------------------------------------------------------------------------------------ processor
def _image_processor_class(model_type, config):
    from transformers.models.auto import image_processing_auto as ipa

    M = ipa.IMAGE_PROCESSOR_MAPPING_NAMES

    def pick(names):
        """Non-torchvision class for a mapping entry: its "pil" class, else the torchvision name + "Pil";
        the torchvision class itself only where torchvision imports (a GPU machine, or a coverage run)."""
        if not names:
            return None
        if isinstance(names, str):
            names = {"torchvision": names}
        cands = [names.get("pil")] + ([names["torchvision"] + "Pil", names["torchvision"]] if names.get("torchvision") else [])
        for name in filter(None, cands):
            cls = ipa.get_image_processor_class_from_name(name)
            if cls is not None:
                try:
                    cls()
                    return cls
                except ImportError:
                    continue
        return None

    if model_type in M:
        return pick(M[model_type])
    # no entry for this type: the parent model types (qwen3_vl_moe -> qwen3_vl, qwen2_5_omni_thinker ->
    # qwen2_5_omni), the types its modular file inherits from, then the vision sub-config's type
    parts = model_type.split("_")
    cands = ["_".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
    try:
        mod = model_type.replace("-", "_")
        spec = importlib.util.find_spec(f"transformers.models.{mod}.modular_{mod}")
        if spec and spec.origin:
            cands += re.findall(r"from \.\.(\w+)\.", open(spec.origin).read())
    except Exception:
        pass
    for sub in ("vision_config", "encoder"):
        sc = getattr(config, sub, None)
        if sc is not None:
            cands.append(sc.model_type)
    for c in cands:
        if c in M:
            return pick(M[c])
    return None


def _vision_cfgs(config):
    out = []
    for k in ("vision_config", "encoder", "vision_tower_config"):
        v = getattr(config, k, None)
        if v is not None:
            out += [v, getattr(v, "encoder_config", None)]
    return out + [config, getattr(config, "text_config", None)]


def _find_attr(cfgs, names, default=None):
    for c in cfgs:
        if c is None:
            continue
        for n in names:
            v = getattr(c, n, None)
            if isinstance(v, (list, tuple)) and v and _is_int(v[0]):
                v = v[0]
            if _is_int(v):
                return v
    return default


def _plain(v):
    if dataclasses.is_dataclass(v) and not isinstance(v, type):  # SizeDict
        v = {k: x for k, x in dataclasses.asdict(v).items() if x is not None}
    return v


def _resize_size(sz, side, unit):
    sz = _plain(sz)
    if _is_int(sz):
        return side
    if not isinstance(sz, dict):
        return sz
    sz = dict(sz)
    if sz.get("longest_edge", 0) > 50000 or "min_pixels" in sz or "max_pixels" in sz:
        # pixel-count semantics (qwen2-vl style {"shortest_edge": min_pixels, "longest_edge": max_pixels})
        for k, f in (("shortest_edge", 4), ("longest_edge", 16), ("min_pixels", 4), ("max_pixels", 16)):
            if k in sz:
                sz[k] = unit * f
        return sz
    for k in ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width"):
        if _is_int(sz.get(k)):
            sz[k] = side
    return sz


def _tiny_kwargs(proc, side, patch, merge, tps, pinpoints=None):
    if side is None:
        side = (patch or 16) * GRID * (merge or 1)
    unit = ((patch or 16) * (merge or 1)) ** 2
    kw = {}
    for k in ("size", "crop_size", "max_image_size", "resample_size", "image_size", "tile_size", "image_seq_size", "pad_size"):
        v = getattr(proc, k, None)
        if v is not None:
            nv = _resize_size(v, side, unit)
            if nv != _plain(v):
                kw[k] = nv
    if getattr(proc, "apply_ocr", None):
        kw["apply_ocr"] = False  # needs pytesseract
    if patch and getattr(proc, "patch_size", None) is not None:
        v = _plain(proc.patch_size)
        kw["patch_size"] = {"height": patch, "width": patch} if isinstance(v, dict) else patch
    if merge and getattr(proc, "merge_size", None) is not None:
        kw["merge_size"] = merge
    if tps and getattr(proc, "temporal_patch_size", None) is not None:
        kw["temporal_patch_size"] = tps
    if pinpoints and getattr(proc, "image_grid_pinpoints", None) is not None:
        kw["image_grid_pinpoints"] = pinpoints
    for k, f in (("min_pixels", 4), ("max_pixels", 16)):
        if getattr(proc, k, None) is not None:
            kw[k] = unit * f
    for k in (
        "max_patches",
        "max_num_patches",
        "max_image_tiles",
        "max_num_tiles",
        "max_dynamic_patch",
        "max_crops",
        "max_slice_nums",
        "max_num_crops",
        "max_tiles",
        "max_soft_tokens",
    ):
        v = getattr(proc, k, None)
        if _is_int(v):
            kw[k] = min(int(v), {"max_patches": 64, "max_num_patches": 64, "max_soft_tokens": 16}.get(k, 4))
    return kw


def _works(proc):
    import numpy as np
    from PIL import Image

    try:
        proc([Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8))], return_tensors="pt")
        return True
    except Exception:
        return False


def tiny_processor(model_type: str, config):
    cls = _image_processor_class(model_type, config)
    if cls is None:
        return None
    cfgs = _vision_cfgs(config)
    patch = _find_attr(cfgs, ["patch_size"], None)
    side = _find_attr(cfgs, ["image_size", "img_size", "vision_image_size", "resolution"], None)
    merge = _find_attr(cfgs, ["spatial_merge_size", "merge_size", "adapter_merge_size"], None)
    tps = _find_attr(cfgs, ["temporal_patch_size", "patch_temporal"], None if patch is None else 1)
    base = cls()
    kw = _tiny_kwargs(base, side, patch, merge, tps, getattr(config, "image_grid_pinpoints", None))
    # secondary towers: "<x>_size" of the processor follows "<x>_vision_config" (e.g. high_res_size)
    for k in getattr(base, "_valid_kwargs_names", []):
        sub = getattr(config, k[: -len("_size")] + "_vision_config", None) if k.endswith("_size") else None
        if sub is not None and getattr(base, k, None) is not None:
            s = _find_attr([sub, getattr(sub, "encoder_config", None)], ["image_size", "img_size"], None)
            if s:
                kw[k] = _resize_size(getattr(base, k), s, 1)
    # the processor may reject some tiny values (e.g. a fixed set of supported sizes): drop those keys
    tries = [kw] + [{k: v for k, v in kw.items() if k != drop} for drop in kw] + [{}]
    for t in tries:
        try:
            proc = cls(**t)
        except Exception:
            continue
        if _works(proc):
            break
    else:
        return base
    # a dropped integer limit (e.g. max_soft_tokens in a fixed set): the smallest halving of the default that works
    for k in set(kw) - set(t):
        v0 = getattr(base, k, None)
        if not _is_int(v0):
            continue
        best, v = None, v0 // 2
        while v >= 1:
            try:
                p = cls(**{**t, k: v})
                if not _works(p):
                    break
            except Exception:
                break
            best, v = v, v // 2
        if best is not None:
            t = {**t, k: best}
            proc = cls(**t)
    return proc


def save_tiny(model_type: str, folder: Path, seed: int = 0) -> Any:
    """A tiny random model of `model_type` with small non-zero weights everywhere, saved in bf16
    with its image processor as a release is; returns the model a user gets from the folder
    (fp32), or None where the type's image processor needs torchvision."""
    import torch
    import transformers

    config = tiny_config(model_type)
    processor = tiny_processor(model_type, config)
    if processor is None:
        return None
    declared = family(model_type)
    auto = getattr(transformers, declared.auto_class if declared else "AutoModelForImageTextToText")
    torch.manual_seed(seed)
    model = auto.from_config(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    model.to(torch.bfloat16).save_pretrained(folder)
    processor.save_pretrained(folder)
    return auto.from_pretrained(folder, dtype=torch.float32).eval()
