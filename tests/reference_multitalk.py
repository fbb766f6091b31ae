"""An independent, deliberately literal model of the official MultiTalk forward pass.

Written for the tests from the facts in docs/design.md §2/§2a, in the official code's structure
and key names (``self_attn.q``, ``norm3`` before the cross-attention, ``modulation``,
``head.head``, complex float64 3-D RoPE, a loop over mask classes, the two-person label
code...). It shares nothing with ``multitalk.models``, so agreement between the two is
evidence, and its ``state_dict()`` is a checkpoint in the exact official layout.
Batch size 1, like the official model; float32 attention instead of flash/xformers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class LayerNorm(nn.LayerNorm):
    def __init__(self, dim, eps=1e-6, affine=False):
        super().__init__(dim, eps=eps, elementwise_affine=affine)

    def forward(self, x):
        return super().forward(x.float()).type_as(x)


def sinusoidal(dim, t):
    half = dim // 2
    t = t.double()
    angles = torch.outer(t, torch.pow(10000, -torch.arange(half).to(t).div(half)))
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def rope_params(max_len, dim, theta=10000):
    freqs = torch.outer(torch.arange(max_len), 1.0 / torch.pow(theta, torch.arange(0, dim, 2).double().div(dim)))
    return torch.polar(torch.ones_like(freqs), freqs)


def rope_apply(x, grid, freqs):
    """x: [1, S, n, d]; complex multiply in float64 (the official rope_apply)."""
    s, n, c = x.size(1), x.size(2), x.size(3) // 2
    parts = freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    f, h, w = grid
    table = torch.cat(
        [
            parts[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
            parts[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
            parts[2][:w].view(1, 1, w, -1).expand(f, h, w, -1),
        ],
        dim=-1,
    ).reshape(s, 1, -1)
    xc = torch.view_as_complex(x[0].double().reshape(s, n, -1, 2))
    return torch.view_as_real(xc * table).flatten(2)[None].float()


def attention(q, k, v):
    """[B, L, H, D] layout, like flash_attention."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def ref_attn_map(q, k, grid, masks, split_num=2):
    """get_attn_map_with_target: halves of heads, loop over classes."""
    _, hh, ww = grid
    ref_k = k[:, : hh * ww]
    heads = q.shape[2]
    chunk = heads // split_num
    total = torch.zeros(masks.shape[0], q.shape[1])
    for i in range(split_num):
        qs = (q[:, :, i * chunk : (i + 1) * chunk] * q.shape[-1] ** -0.5).transpose(1, 2)
        ks = ref_k[:, :, i * chunk : (i + 1) * chunk].transpose(1, 2)
        probs = (qs @ ks.transpose(-2, -1)).softmax(-1)  # 1, h, S, R
        maps = []
        for mask in masks:
            m = mask[None, None, None]
            per = (probs * m).sum(-1) / m.sum()  # 1, h, S
            maps.append(per.permute(0, 2, 1).mean(-1))
        total += torch.cat(maps, dim=0)
    return total / split_num


def rope_1d(x, pos):
    """x: [B, H, S, D], pos: [S]; rotate_half on adjacent pairs."""
    d = x.shape[-1]
    freqs = 1.0 / (10000 ** (torch.arange(0, d, 2)[: d // 2].float() / d))
    angles = torch.einsum("..., f -> ... f", pos.float(), freqs).repeat_interleave(2, dim=-1)
    pairs = x.float().unflatten(-1, (-1, 2))
    rot = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return (x.float() * angles.cos() + rot * angles.sin()).type_as(x)


class SelfAttention(nn.Module):
    def __init__(self, dim, heads, eps):
        super().__init__()
        self.heads, self.d = heads, dim // heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(self, x, grid, freqs, masks):
        b, s = x.shape[:2]
        q = self.norm_q(self.q(x)).view(b, s, self.heads, self.d)
        k = self.norm_k(self.k(x)).view(b, s, self.heads, self.d)
        v = self.v(x).view(b, s, self.heads, self.d)
        q, k = rope_apply(q, grid, freqs), rope_apply(k, grid, freqs)
        out = self.o(attention(q, k, v).flatten(2))
        with torch.no_grad():
            amap = ref_attn_map(q.type_as(out), k.type_as(out), grid, masks) if masks is not None else None
        return out, amap


class CrossAttention(nn.Module):
    def __init__(self, dim, heads, eps, image_tokens):
        super().__init__()
        self.heads, self.d, self.image_tokens = heads, dim // heads, image_tokens
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)
        if image_tokens:
            self.k_img, self.v_img = nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.norm_k_img = RMSNorm(dim, eps)

    def forward(self, x, context):
        b, n, d = x.size(0), self.heads, self.d
        img, context = context[:, : self.image_tokens], context[:, self.image_tokens :]
        q = self.norm_q(self.q(x)).view(b, -1, n, d)
        k = self.norm_k(self.k(context)).view(b, -1, n, d)
        v = self.v(context).view(b, -1, n, d)
        out = attention(q, k, v).flatten(2)
        if self.image_tokens:
            k_img = self.norm_k_img(self.k_img(img)).view(b, -1, n, d)
            v_img = self.v_img(img).view(b, -1, n, d)
            out = out + attention(q, k_img, v_img).flatten(2)
        return self.o(out)


class AudioCrossAttention(nn.Module):
    """SingleStreamMutiAttention for one or two people, class_range 24, class_interval 4."""

    def __init__(self, dim, audio_dim, heads):
        super().__init__()
        self.heads, self.d = heads, dim // heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(audio_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, audio, grid, amap, human_num):
        audio = audio.squeeze(0)  # N_t, N_a, C
        n_t = grid[0]
        x = x.reshape(n_t, -1, x.shape[-1])  # (B N_t), S, C
        bt, n, c = x.shape
        q = self.q_linear(x).view(bt, n, self.heads, self.d).permute(0, 2, 1, 3)  # BT, H, S, D
        n_a = audio.shape[1]
        kv = self.kv_linear(audio).view(bt, n_a, 2, self.heads, self.d).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)  # BT, H, A, D
        if human_num == 2:
            h1 = (amap[0] - amap[0].min()) / (amap[0].max() - amap[0].min() + 1e-8) * (4 - 0) + 0
            h2 = (amap[1] - amap[1].min()) / (amap[1].max() - amap[1].min() + 1e-8) * (24 - 20) + 20
            back = torch.full((amap.size(1),), 12, dtype=h1.dtype)
            pos = torch.stack([h1, h2, back], dim=1)[range(amap.size(1)), amap.argmax(dim=0)]
            q = q.permute(1, 0, 2, 3).reshape(1, self.heads, -1, self.d)  # B, H, (N_t S), D
            q = rope_1d(q, pos).reshape(self.heads, bt, n, self.d).permute(1, 0, 2, 3)
            per_frame = torch.zeros(n_a)
            per_frame[: n_a // 2] = 2
            per_frame[n_a // 2 :] = 22
            k = k.permute(1, 0, 2, 3).reshape(1, self.heads, -1, self.d)
            k = rope_1d(k, torch.cat([per_frame] * n_t)).reshape(self.heads, bt, n_a, self.d).permute(1, 0, 2, 3)
        out = F.scaled_dot_product_attention(q, k, v)  # BT, H, S, D
        out = self.proj(out.transpose(1, 2).reshape(bt, n, c))
        return out.reshape(1, -1, c)


class Block(nn.Module):
    def __init__(self, dim, ffn, heads, eps, image_tokens, audio_dim):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps)
        self.self_attn = SelfAttention(dim, heads, eps)
        self.norm3 = LayerNorm(dim, eps, affine=True)
        self.cross_attn = CrossAttention(dim, heads, eps, image_tokens)
        self.norm2 = LayerNorm(dim, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(approximate="tanh"), nn.Linear(ffn, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.audio_cross_attn = AudioCrossAttention(dim, audio_dim, heads)
        self.norm_x = LayerNorm(dim, eps, affine=True)

    def forward(self, x, e, grid, freqs, context, audio, masks, human_num):
        e = (self.modulation + e).chunk(6, dim=1)
        y, amap = self.self_attn((self.norm1(x).float() * (1 + e[1]) + e[0]).type_as(x), grid, freqs, masks)
        x = x + y * e[2]
        x = x + self.cross_attn(self.norm3(x), context)
        x = x + self.audio_cross_attn(self.norm_x(x), audio, grid, amap, human_num)
        y = self.ffn((self.norm2(x).float() * (1 + e[4]) + e[3]).type_as(x))
        return x + y * e[5]


class AudioProj(nn.Module):
    def __init__(self, window, vae_scale, layers, channels, inter, out_dim, tokens):
        super().__init__()
        self.tokens, self.out_dim = tokens, out_dim
        self.proj1 = nn.Linear(window * layers * channels, inter)
        self.proj1_vf = nn.Linear((window + vae_scale - 1) * layers * channels, inter)
        self.proj2 = nn.Linear(inter, inter)
        self.proj3 = nn.Linear(inter, tokens * out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, first, later):
        b = first.shape[0]
        a = torch.relu(self.proj1(first.reshape(b * first.shape[1], -1))).view(b, first.shape[1], -1)
        c = torch.relu(self.proj1_vf(later.reshape(b * later.shape[1], -1))).view(b, later.shape[1], -1)
        h = torch.cat([a, c], dim=1)
        t = h.shape[1]
        h = torch.relu(self.proj2(h.view(b * t, -1)))
        out = self.proj3(h).reshape(b * t, self.tokens, self.out_dim)
        return self.norm(out).view(b, t, self.tokens, self.out_dim)


class ReferenceMultiTalk(nn.Module):
    def __init__(
        self,
        dim=24,
        ffn=32,
        heads=2,
        layers=2,
        in_dim=36,
        out_dim=16,
        text_dim=16,
        freq_dim=16,
        text_len=512,
        clip_dim=None,
        image_tokens=257,
        audio_layers=2,
        audio_channels=8,
        inter=16,
        audio_out=16,
        context_tokens=4,
        window=5,
        vae_scale=4,
        eps=1e-6,
    ):
        super().__init__()
        self.dim, self.freq_dim, self.text_len, self.window, self.vae_scale = dim, freq_dim, text_len, window, vae_scale
        self.out_dim = out_dim
        self.patch_embedding = nn.Conv3d(in_dim, dim, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        n_img = image_tokens if clip_dim else 0
        self.blocks = nn.ModuleList(Block(dim, ffn, heads, eps, n_img, audio_out) for _ in range(layers))
        self.head = nn.Module()
        self.head.norm = LayerNorm(dim, eps)
        self.head.head = nn.Linear(dim, out_dim * 4)
        self.head.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        if clip_dim:
            self.img_emb = nn.Module()
            self.img_emb.proj = nn.Sequential(
                nn.LayerNorm(clip_dim),
                nn.Linear(clip_dim, clip_dim),
                nn.GELU(),
                nn.Linear(clip_dim, dim),
                nn.LayerNorm(dim),
            )
        self.audio_proj = AudioProj(window, vae_scale, audio_layers, audio_channels, inter, audio_out, context_tokens)
        d = dim // heads
        self.freqs = torch.cat(
            [rope_params(1024, d - 4 * (d // 6)), rope_params(1024, 2 * (d // 6)), rope_params(1024, 2 * (d // 6))],
            dim=1,
        )

    def forward(self, x, t, context, audio, clip_fea=None, masks=None):
        """x: [C, T, H, W] (noisy+mask+cond); context: [L, text_dim]; audio: [P, F, W, L, C];
        masks: [P+1, H_lat, W_lat] at the latent grid."""
        x = self.patch_embedding(x[None])
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        e = self.time_embedding(sinusoidal(self.freq_dim, t).float())
        e0 = self.time_projection(e).unflatten(1, (6, self.dim))
        context = self.text_embedding(
            torch.cat([context, context.new_zeros(self.text_len - context.size(0), context.size(1))])[None]
        )
        if clip_fea is not None:
            context = torch.cat([self.img_emb.proj(clip_fea), context], dim=1)

        first = audio[:, :1]
        later = audio[:, 1:].unflatten(1, (-1, self.vae_scale))
        mid = self.window // 2
        later = torch.cat(
            [
                later[:, :, :1, : mid + 1].flatten(2, 3),
                later[:, :, 1:-1, mid : mid + 1].flatten(2, 3),
                later[:, :, -1:, mid:].flatten(2, 3),
            ],
            dim=2,
        )
        emb = self.audio_proj(first, later)  # P, T, N, C
        human_num = len(emb)
        emb = torch.cat(emb.split(1), dim=2)  # 1, T, P*N, C

        token_masks = None
        if masks is not None:
            token_masks = F.interpolate(masks[None].float(), size=grid[1:], mode="nearest")[0] > 0
            token_masks = token_masks.view(token_masks.shape[0], -1).float()
        for block in self.blocks:
            x = block(x, e0, grid, self.freqs, context, emb, token_masks, human_num)

        e = (self.head.modulation + e.unsqueeze(1)).chunk(2, dim=1)
        x = self.head.head(self.head.norm(x) * (1 + e[1]) + e[0])
        f, h, w = grid
        x = x[0].view(f, h, w, 1, 2, 2, self.out_dim)
        x = torch.einsum("fhwpqrc->cfphqwr", x)
        return x.reshape(self.out_dim, f, h * 2, w * 2)

    @staticmethod
    def randomize(model, seed=0):
        """Random non-trivial values for every parameter (norm weights/biases included)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                scale = 0.5 if p.ndim == 1 else 1.0 / math.sqrt(max(p.shape[-1], 1))
                base = 1.0 if (p.ndim == 1 and name.endswith("weight")) else 0.0
                p.copy_(base + scale * torch.randn(p.shape, generator=g))
        return model
