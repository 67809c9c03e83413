"""Faithful re-implementations of attention connectors whose originals are not pip-installable
here, written from the original repositories' code (open_flamingo/src/helpers.py, Qwen-VL's
visual.py, X-PLUG/mPLUG-Owl's modeling_mplug_owl.py), keeping their math and parameter names:
einsum attention with the row max subtracted, finfo masks, nn.MultiheadAttention, bicubic
get_abs_pos. The exported ONNX is checked against these, not against mmexport's modules."""

from __future__ import annotations

import math

import numpy as np
import torch
from einops import rearrange, repeat
from torch import einsum, nn
from torch.nn import functional as F


# ---- open_flamingo/src/helpers.py --------------------------------------------------------
def FeedForward(dim, mult=4):
    inner_dim = int(dim * mult)
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner_dim, bias=False), nn.GELU(), nn.Linear(inner_dim, dim, bias=False))


class PerceiverAttention(nn.Module):
    def __init__(self, *, dim, dim_head=64, heads=8):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        inner_dim = dim_head * heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, x, latents):
        x = self.norm_media(x)
        latents = self.norm_latents(latents)
        h = self.heads
        q = self.to_q(latents)
        kv_input = torch.cat((x, latents), dim=-2)
        k, v = self.to_kv(kv_input).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b t n (h d) -> b h t n d", h=h) for t in (q, k, v))
        q = q * self.scale
        sim = einsum("... i d, ... j d  -> ... i j", q, k)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        out = einsum("... i j, ... j d -> ... i d", attn, v)
        out = rearrange(out, "b h t n d -> b t n (h d)", h=h)
        return self.to_out(out)


class PerceiverResampler(nn.Module):
    def __init__(self, *, dim, depth=6, dim_head=64, heads=8, num_latents=64, ff_mult=4):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim))
        self.layers = nn.ModuleList(
            [nn.ModuleList([PerceiverAttention(dim=dim, dim_head=dim_head, heads=heads), FeedForward(dim=dim, mult=ff_mult)]) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        b, T, F_, v = x.shape[:4]
        x = rearrange(x, "b T F v d -> b T (F v) d")
        latents = repeat(self.latents, "n d -> b T n d", b=b, T=T)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


class MaskedCrossAttention(nn.Module):
    def __init__(self, *, dim, dim_visual, dim_head=64, heads=8, only_attend_immediate_media=True):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        inner_dim = dim_head * heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim_visual, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)
        self.only_attend_immediate_media = only_attend_immediate_media

    def forward(self, x, media, media_locations=None):
        _, T_img, n = media.shape[:3]
        h = self.heads
        x = self.norm(x)
        q = self.to_q(x)
        media = rearrange(media, "b t n d -> b (t n) d")
        k, v = self.to_kv(media).chunk(2, dim=-1)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=h) for t in (q, k, v))
        q = q * self.scale
        sim = einsum("... i d, ... j d -> ... i j", q, k)
        if media_locations is not None:
            media_time = torch.arange(T_img, device=x.device) + 1
            text_time = media_locations.cumsum(dim=-1)
            mask_op = torch.eq if self.only_attend_immediate_media else torch.ge
            text_to_media_mask = mask_op(rearrange(text_time, "b i -> b 1 i 1"), repeat(media_time, "j -> 1 1 1 (j n)", n=n))
            sim = sim.masked_fill(~text_to_media_mask, -torch.finfo(sim.dtype).max)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        if media_locations is not None and self.only_attend_immediate_media:
            text_without_media_mask = text_time == 0
            text_without_media_mask = rearrange(text_without_media_mask, "b i -> b 1 i 1")
            attn = attn.masked_fill(text_without_media_mask, 0.0)
        out = einsum("... i j, ... j d -> ... i d", attn, v)
        out = rearrange(out, "b h n d -> b n (h d)")
        return self.to_out(out)


class GatedCrossAttentionBlock(nn.Module):
    def __init__(self, *, dim, dim_visual, dim_head=64, heads=8, ff_mult=4, only_attend_immediate_media=True):
        super().__init__()
        self.attn = MaskedCrossAttention(
            dim=dim, dim_visual=dim_visual, dim_head=dim_head, heads=heads, only_attend_immediate_media=only_attend_immediate_media
        )
        self.attn_gate = nn.Parameter(torch.tensor([0.0]))
        self.ff = FeedForward(dim, mult=ff_mult)
        self.ff_gate = nn.Parameter(torch.tensor([0.0]))

    def forward(self, x, media, media_locations=None):
        x = self.attn(x, media, media_locations=media_locations) * self.attn_gate.tanh() + x
        x = self.ff(x) * self.ff_gate.tanh() + x
        return x


# ---- Qwen-VL visual.py ---------------------------------------------------------------------
def get_abs_pos(abs_pos, tgt_size):
    src_size = int(math.sqrt(abs_pos.size(0)))
    tgt_size = int(math.sqrt(tgt_size))
    dtype = abs_pos.dtype
    if src_size != tgt_size:
        return (
            F.interpolate(
                abs_pos.float().reshape(1, src_size, src_size, -1).permute(0, 3, 1, 2), size=(tgt_size, tgt_size), mode="bicubic", align_corners=False
            )
            .permute(0, 2, 3, 1)
            .flatten(0, 2)
            .to(dtype=dtype)
        )
    return abs_pos


def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float32)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    pos = pos.reshape(-1)
    out = np.einsum("m,d->md", pos, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size):
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


class Resampler(nn.Module):
    def __init__(self, grid_size, embed_dim, num_heads, kv_dim=None, norm_layer=nn.LayerNorm):
        super().__init__()
        self.num_queries = grid_size**2
        self.pos_embed = nn.Parameter(torch.from_numpy(get_2d_sincos_pos_embed(embed_dim, grid_size)).float()).requires_grad_(False)
        self.query = nn.Parameter(torch.zeros(self.num_queries, embed_dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False) if kv_dim is not None and kv_dim != embed_dim else nn.Identity()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads)
        self.ln_q = norm_layer(embed_dim)
        self.ln_kv = norm_layer(embed_dim)

    def forward(self, x, attn_mask=None):
        pos_embed = get_abs_pos(self.pos_embed, x.size(1))
        x = self.kv_proj(x)
        x = self.ln_kv(x).permute(1, 0, 2)
        N = x.shape[1]
        q = self.ln_q(self.query)
        out = self.attn(self._repeat(q, N) + self.pos_embed.unsqueeze(1), x + pos_embed.unsqueeze(1), x, attn_mask=attn_mask)[0]
        return out.permute(1, 0, 2)

    def _repeat(self, query, N: int):
        return query.unsqueeze(1).repeat(1, N, 1)


class QwenVisualTail(nn.Module):
    """VisionTransformer's last three steps: attn_pool, ln_post, proj."""

    def __init__(self, width, output_dim, n_queries):
        super().__init__()
        norm_layer = lambda d: nn.LayerNorm(d, eps=1e-6)  # noqa: E731  (partial(nn.LayerNorm, eps=1e-6))
        self.attn_pool = Resampler(grid_size=int(math.sqrt(n_queries)), embed_dim=output_dim, num_heads=output_dim // 128, kv_dim=width, norm_layer=norm_layer)
        self.ln_post = norm_layer(output_dim)
        self.proj = nn.Parameter((output_dim**-0.5) * torch.randn(output_dim, output_dim))

    def forward(self, x):
        x = self.attn_pool(x)
        x = self.ln_post(x)
        return x @ self.proj


# ---- X-PLUG/mPLUG-Owl modeling_mplug_owl.py (visual abstractor) ---------------------------
class LayerNormFp32(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


class OwlMLP(nn.Module):
    def __init__(self, hidden_size, intermediate_size, layer_norm_eps):
        super().__init__()
        self.act = nn.SiLU()
        self.w1 = nn.Linear(hidden_size, intermediate_size)
        self.w2 = nn.Linear(intermediate_size, hidden_size)
        self.w3 = nn.Linear(hidden_size, intermediate_size)
        self.ffn_ln = LayerNormFp32(intermediate_size, eps=layer_norm_eps)

    def forward(self, hidden_states):
        hidden_states = self.act(self.w1(hidden_states)) * self.w3(hidden_states)
        hidden_states = self.ffn_ln(hidden_states)
        return self.w2(hidden_states)


class OwlMultiHeadAttention(nn.Module):
    def __init__(self, hidden_size, num_heads, encoder_hidden_size):
        super().__init__()
        self.num_attention_heads = num_heads
        self.attention_head_size = hidden_size // num_heads
        self.all_head_size = hidden_size
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(encoder_hidden_size, hidden_size)
        self.value = nn.Linear(encoder_hidden_size, hidden_size)

    def transpose_for_scores(self, x):
        x = x.view(*x.size()[:-1], self.num_attention_heads, self.attention_head_size)
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, encoder_hidden_states, encoder_attention_mask):
        key_layer = self.transpose_for_scores(self.key(encoder_hidden_states))
        value_layer = self.transpose_for_scores(self.value(encoder_hidden_states))
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2)) / math.sqrt(self.attention_head_size)
        attention_scores = attention_scores + encoder_attention_mask
        attention_probs = nn.Softmax(dim=-1)(attention_scores)
        context_layer = torch.matmul(attention_probs, value_layer).permute(0, 2, 1, 3).contiguous()
        return context_layer.view(*context_layer.size()[:-2], self.all_head_size)


class OwlCrossOutput(nn.Module):
    def __init__(self, hidden_size, intermediate_size, layer_norm_eps):
        super().__init__()
        self.out_proj = nn.Linear(hidden_size, hidden_size, bias=True)
        self.norm2 = LayerNormFp32(hidden_size)
        self.mlp = OwlMLP(hidden_size, intermediate_size, layer_norm_eps)

    def forward(self, hidden_states, input_tensor):
        input_tensor = input_tensor + self.out_proj(hidden_states)
        return input_tensor + self.mlp(self.norm2(input_tensor))


class OwlAttention(nn.Module):
    def __init__(self, hidden_size, num_heads, intermediate_size, layer_norm_eps):
        super().__init__()
        self.attention = OwlMultiHeadAttention(hidden_size, num_heads, hidden_size)
        self.output = OwlCrossOutput(hidden_size, intermediate_size, layer_norm_eps)
        self.norm1 = LayerNormFp32(hidden_size)
        self.normk = LayerNormFp32(hidden_size)

    def forward(self, hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask):
        hidden_states = self.norm1(hidden_states)
        encoder_hidden_states = self.normk(encoder_hidden_states)
        encoder_hidden_states = torch.cat([hidden_states, encoder_hidden_states], dim=1)
        encoder_attention_mask = torch.cat([attention_mask, encoder_attention_mask], dim=-1)
        context = self.attention(hidden_states, encoder_hidden_states, encoder_attention_mask)
        return self.output(context, hidden_states)


class OwlLayer(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.crossattention = OwlAttention(*args)


class OwlEncoder(nn.Module):
    def __init__(self, layers, *args):
        super().__init__()
        self.layers = nn.ModuleList([OwlLayer(*args) for _ in range(layers)])


class OwlAbstractorModel(nn.Module):
    def __init__(self, hidden_size, num_heads, intermediate_size, layers, language_hidden_size, layer_norm_eps=1e-6):
        super().__init__()
        self.encoder = OwlEncoder(layers, hidden_size, num_heads, intermediate_size, layer_norm_eps)
        self.visual_fc = nn.Linear(hidden_size, language_hidden_size)
        self.vit_eos = nn.Parameter(torch.randn(1, 1, language_hidden_size))

    def forward(self, query_embeds, encoder_hidden_states):
        batch, queries = query_embeds.shape[:2]
        attention_mask = torch.ones(batch, queries)
        extended = (1.0 - attention_mask[:, None, None, :]) * -10000.0  # get_extended_attention_mask
        encoder_mask = torch.ones(encoder_hidden_states.shape[:2])
        encoder_extended = (1.0 - encoder_mask[:, None, None, :]) * torch.finfo(torch.float32).min  # invert_attention_mask
        hidden_states = query_embeds
        for layer in self.encoder.layers:
            hidden_states = layer.crossattention(hidden_states, extended, encoder_hidden_states, encoder_extended)
        sequence_output = self.visual_fc(hidden_states)
        return torch.cat([sequence_output, self.vit_eos.repeat(sequence_output.shape[0], 1, 1)], dim=1)


class MplugOwlInputSide(nn.Module):
    """MplugOwlForConditionalGeneration's query_tokens + abstractor."""

    def __init__(self, queries, hidden_size, **kwargs):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, queries, hidden_size))
        self.abstractor = OwlAbstractorModel(hidden_size, **kwargs)

    def forward(self, image_embeds):
        query_tokens = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        return self.abstractor(query_tokens, image_embeds)
