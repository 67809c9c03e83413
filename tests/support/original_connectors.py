"""Faithful re-implementations of connectors that have no transformers class, written in the
structure of the original repositories' code (einops and nn.AdaptiveAvgPool2d where they use them),
so that parity with them checks our modules, which are written differently for export."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


# --- CogVLM (visual.py): GLU adapter + boi/eoi ------------------------------------------------
class CogVLMGLU(nn.Module):
    def __init__(self, hidden_size, intermediate_size, in_features):
        super().__init__()
        self.linear_proj = nn.Linear(in_features, hidden_size, bias=False)
        self.norm1 = nn.LayerNorm(hidden_size)
        self.act1 = nn.GELU()
        self.act2 = nn.functional.silu
        self.dense_h_to_4h = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.dense_4h_to_h = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x):
        x = self.linear_proj(x)
        x = self.act1(self.norm1(x))
        x = self.act2(self.gate_proj(x)) * self.dense_h_to_4h(x)
        return self.dense_4h_to_h(x)


class CogVLMVisionTail(nn.Module):
    """The part of EVA2CLIPModel.forward after the transformer: x[:, 1:] happens before, then this."""

    def __init__(self, hidden_size, intermediate_size, vision_hidden):
        super().__init__()
        self.linear_proj = CogVLMGLU(hidden_size, intermediate_size, vision_hidden)
        self.boi = nn.Parameter(torch.randn(1, 1, hidden_size))
        self.eoi = nn.Parameter(torch.randn(1, 1, hidden_size))

    def forward(self, x):
        x = self.linear_proj(x)
        boi = self.boi.expand(x.shape[0], -1, -1)
        eoi = self.eoi.expand(x.shape[0], -1, -1)
        return torch.cat((boi, x, eoi), dim=1)


# --- MiniGPT-v2 (minigpt_v2.py encode_img) -----------------------------------------------------
class MiniGPTv2Proj(nn.Module):
    def __init__(self, vision_dim, llm_dim):
        super().__init__()
        self.llama_proj = nn.Linear(vision_dim * 4, llm_dim)

    def forward(self, image_embeds):  # after ln_vision and [:, 1:, :]
        bs, pn, hs = image_embeds.shape
        image_embeds = image_embeds.view(bs, int(pn / 4), int(hs * 4))
        return self.llama_proj(image_embeds)


# --- DocOwl 1.5 (MplugDocOwlHReducerModel) ------------------------------------------------------
class DocOwlHReducer(nn.Module):
    def __init__(self, hidden_size, language_hidden_size, conv_shape=(1, 4)):
        super().__init__()
        self.ln_q = nn.LayerNorm(hidden_size, eps=1e-6)  # present in checkpoints, unused in forward
        self.conv_shape = conv_shape
        self.conv_patch = conv_shape[0] * conv_shape[1]
        self.reducer_before = nn.Sequential(
            nn.Conv2d(hidden_size, self.conv_patch * hidden_size, kernel_size=conv_shape, stride=conv_shape, bias=True), nn.GELU()
        )
        self.reducer = nn.Conv2d(hidden_size, hidden_size, kernel_size=conv_shape, stride=conv_shape, bias=True)
        self.visual_fc = nn.Linear(hidden_size, language_hidden_size)
        self.vit_eos = nn.Parameter(torch.randn(1, 1, language_hidden_size))

    def forward(self, encoder_hidden_states):
        encoder_hidden_states = encoder_hidden_states[:, 1:, :]
        B, L, C = encoder_hidden_states.shape
        encoder_hidden_states = rearrange(encoder_hidden_states, "B (H W) D -> B D H W", H=int(math.sqrt(L)))
        hidden_states = self.reducer_before(encoder_hidden_states)
        hidden_states = rearrange(hidden_states, "B (X D) H W -> B D H (W X)", X=self.conv_patch)
        sequence_output = self.reducer(hidden_states)
        sequence_output = sequence_output.flatten(2).transpose(1, 2)
        sequence_output = sequence_output.transpose(0, 1).contiguous()
        sequence_output = self.visual_fc(sequence_output)
        sequence_output = sequence_output.transpose(0, 1).contiguous()
        return torch.cat([sequence_output, self.vit_eos.repeat(B, 1, 1)], dim=1)


# --- timm pieces used by Honeybee and MobileVLM --------------------------------------------------
class LayerNormAct2d(nn.LayerNorm):
    """timm LayerNormAct2d (default eps 1e-5): LayerNorm over channels of NCHW, then act."""

    def __init__(self, num_channels, eps=1e-5, act_layer=None):
        super().__init__(num_channels, eps=eps)
        self.act = act_layer() if act_layer is not None else nn.Identity()

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return self.act(x.permute(0, 3, 1, 2))


class TimmConvNormAct(nn.Module):
    def __init__(self, in_chs, out_chs, kernel_size, stride=1, groups=1, apply_act=True, act_layer=nn.SiLU):
        super().__init__()
        padding = ((stride - 1) + (kernel_size - 1)) // 2
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=padding, groups=groups, bias=False)
        self.bn = LayerNormAct2d(out_chs, act_layer=act_layer if apply_act else None)

    def forward(self, x):
        return self.bn(self.conv(x))


class TimmSEModule(nn.Module):
    def __init__(self, channels, rd_channels, act_layer=nn.SiLU):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.fc2(self.act(self.fc1(x_se)))
        return x * x_se.sigmoid()


class TimmRegBottleneck(nn.Module):
    """timm.models.regnet.Bottleneck(bottle_ratio=1, group_size=1, se_ratio=0.25, downsample='conv1x1')."""

    def __init__(self, in_chs, out_chs, act_layer=nn.SiLU):
        super().__init__()
        bottleneck_chs = int(round(out_chs * 1))
        groups = bottleneck_chs // 1
        self.conv1 = TimmConvNormAct(in_chs, bottleneck_chs, 1, act_layer=act_layer)
        self.conv2 = TimmConvNormAct(bottleneck_chs, bottleneck_chs, 3, groups=groups, act_layer=act_layer)
        self.se = TimmSEModule(bottleneck_chs, rd_channels=int(round(in_chs * 0.25)), act_layer=act_layer)
        self.conv3 = TimmConvNormAct(bottleneck_chs, out_chs, 1, apply_act=False)
        self.act3 = act_layer()
        self.downsample = TimmConvNormAct(in_chs, out_chs, 1, apply_act=False) if in_chs != out_chs else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.conv1(x)
        x = self.conv2(x)
        x = self.se(x)
        x = self.conv3(x)
        x = x + self.downsample(shortcut)
        return self.act3(x)


class TimmRegStage(nn.Module):
    def __init__(self, depth, in_chs, out_chs):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", TimmRegBottleneck(in_chs if i == 0 else out_chs, out_chs))

    def forward(self, x):
        for block in self.children():
            x = block(x)
        return x


# --- Honeybee (projectors.py CAbstractor) -------------------------------------------------------
class HoneybeeCAbstractor(nn.Module):
    def __init__(self, encoder_hidden_size, hidden_size, output_hidden_size, num_input_tokens, num_queries, depth=3, mlp_depth=2):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(1, num_input_tokens, encoder_hidden_size) * 0.5)
        hw = int(num_queries**0.5)
        self.net = nn.Sequential(
            TimmRegStage(depth, encoder_hidden_size, hidden_size), nn.AdaptiveAvgPool2d((hw, hw)), TimmRegStage(depth, hidden_size, hidden_size)
        )
        layers = [nn.Linear(hidden_size, output_hidden_size)]
        for _ in range(1, mlp_depth):
            layers += [nn.SiLU(), nn.Linear(output_hidden_size, output_hidden_size)]
        self.readout = nn.Sequential(*layers)

    def forward(self, x):
        x = x + self.pos_emb
        hw = int(x.size(1) ** 0.5)
        x = rearrange(x, "b (h w) d -> b d h w", h=hw, w=hw)
        x = self.net(x)
        x = rearrange(x, "b d h w -> b (h w) d")
        return self.readout(x)


# --- MobileVLM (vision_projector.py): torchvision InvertedResidual with timm LayerNormAct2d -------
def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class TorchvisionConv2dNormActivation(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, activation_layer=None):
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            LayerNormAct2d(out_channels),
        ]
        if activation_layer is not None:
            layers.append(activation_layer())
        super().__init__(*layers)


class TorchvisionSqueezeExcitation(nn.Module):
    def __init__(self, input_channels, squeeze_channels):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class TorchvisionInvertedResidual(nn.Module):
    """InvertedResidualConfig(c, 3, c, c, use_se=True, 'HS', stride, 1, 1)."""

    def __init__(self, c, stride):
        super().__init__()
        self.use_res_connect = stride == 1
        self.block = nn.Sequential(
            TorchvisionConv2dNormActivation(c, c, 3, stride=stride, groups=c, activation_layer=nn.Hardswish),
            TorchvisionSqueezeExcitation(c, _make_divisible(c // 4, 8)),
            TorchvisionConv2dNormActivation(c, c, 1),
        )

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


class MobileVLMLDPBlock(nn.Module):
    def __init__(self, inc, ouc):
        super().__init__()
        self.mlp = nn.Sequential(nn.Identity(), nn.Linear(inc, ouc), nn.GELU(), nn.Linear(ouc, ouc))
        self.mb_block = nn.Sequential(nn.Identity(), TorchvisionInvertedResidual(ouc, 1), TorchvisionInvertedResidual(ouc, 2))

    def forward(self, x):
        b, num_tokens, c = x.shape
        h = int(math.sqrt(num_tokens))
        x = self.mlp(x)
        x = x.permute(0, 2, 1).reshape(b, -1, h, h)
        x = self.mb_block(x)
        return x.flatten(2).permute(0, 2, 1)


class MobileVLMLDPNetProjector(nn.Module):
    def __init__(self, inc, ouc):
        super().__init__()
        self.model = MobileVLMLDPBlock(inc, ouc)

    def forward(self, x):
        return self.model(x)


class MobileVLMLDPNetV2Projector(nn.Module):
    def __init__(self, inc, ouc):
        super().__init__()
        self.mlp = nn.Module()
        self.mlp.mlp = nn.Sequential(nn.Linear(inc, ouc), nn.GELU(), nn.Linear(ouc, ouc))
        self.dwn = nn.AdaptiveAvgPool2d((12, 12))
        self.peg = nn.Module()
        self.peg.peg = nn.Sequential(nn.Conv2d(ouc, ouc, 3, 1, 1, bias=True, groups=ouc))

    def forward(self, x):
        x = self.mlp.mlp(x)
        b, num_tokens, c = x.shape
        h = int(math.sqrt(num_tokens))
        x = self.dwn(x.permute(0, 2, 1).reshape(b, -1, h, h)).flatten(2).transpose(1, 2)  # TokenDownLayer
        b, num_tokens, c = x.shape
        h = int(math.sqrt(num_tokens))
        cnn_feat = x.transpose(1, 2).view(b, c, h, h)  # PosInjectLayer
        x = self.peg.peg(cnn_feat) + cnn_feat
        return x.flatten(2).transpose(1, 2)
