"""Literal models of the original Wan encoders, in the module tree (and so the key layout) of
the original ``.pth`` files: the umT5 encoder and the open-clip ViT's visual tower.

Written for the tests from the facts of Wan's layout (module names, shapes, the math: gated
tanh-GELU, a relative position bias per layer, unscaled attention, RMS norms; pre-norm ViT with
q/k/v stacked in ``to_qkv``, exact GELU, tokens of all blocks but the last). Their state dicts
are tiny original-layout files; their outputs are what the converted transformers models
must reproduce.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps))


class T5Attention(nn.Module):
    def __init__(self, dim, dim_attn, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim_attn, bias=False)
        self.k = nn.Linear(dim, dim_attn, bias=False)
        self.v = nn.Linear(dim, dim_attn, bias=False)
        self.o = nn.Linear(dim_attn, dim, bias=False)

    def forward(self, x, mask, bias):
        b, s, _ = x.shape
        q, k, v = (f(x).view(b, s, self.heads, -1) for f in (self.q, self.k, self.v))
        scores = torch.einsum("binc,bjnc->bnij", q, k) + bias  # no 1/sqrt(d)
        scores = scores.masked_fill(mask.view(b, 1, 1, s) == 0, torch.finfo(x.dtype).min)
        out = torch.einsum("bnij,bjnc->binc", scores.float().softmax(-1).type_as(x), v)
        return self.o(out.reshape(b, s, -1))


class T5FeedForward(nn.Module):
    def __init__(self, dim, dim_ffn):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False), nn.GELU(approximate="tanh"))
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False)

    def forward(self, x):
        return self.fc2(self.fc1(x) * self.gate(x))


class RelativeBias(nn.Module):
    def __init__(self, buckets, heads, max_dist=128):
        super().__init__()
        self.buckets, self.max_dist = buckets, max_dist
        self.embedding = nn.Embedding(buckets, heads)

    def forward(self, n):
        rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]
        half = self.buckets // 2
        bucket = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = (
            exact
            + (torch.log(rel.float().clamp_min(1) / exact) / math.log(self.max_dist / exact) * (half - exact)).long()
        )
        bucket = bucket + torch.where(rel < exact, rel, large.clamp_max(half - 1))
        return self.embedding(bucket).permute(2, 0, 1)[None]


class T5Block(nn.Module):
    def __init__(self, dim, dim_attn, dim_ffn, heads, buckets):
        super().__init__()
        self.norm1 = RMSNorm(dim)
        self.attn = T5Attention(dim, dim_attn, heads)
        self.norm2 = RMSNorm(dim)
        self.ffn = T5FeedForward(dim, dim_ffn)
        self.pos_embedding = RelativeBias(buckets, heads)

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask, self.pos_embedding(x.shape[1]))
        return x + self.ffn(self.norm2(x))


class WanT5Encoder(nn.Module):
    """umT5 encoder with Wan's key names: ``token_embedding``, ``blocks.N.{norm1,attn,norm2,ffn,pos_embedding}``,
    ``norm``."""

    def __init__(self, vocab=64, dim=16, dim_attn=16, dim_ffn=24, heads=2, layers=2, buckets=32):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(T5Block(dim, dim_attn, dim_ffn, heads, buckets) for _ in range(layers))
        self.norm = RMSNorm(dim)

    def forward(self, ids, mask):
        x = self.token_embedding(ids)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


class ViTBlock(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = nn.Module()
        self.attn.to_qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        b, s, c = x.shape
        q, k, v = self.attn.to_qkv(self.norm1(x)).view(b, s, 3, self.heads, -1).unbind(2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + self.attn.proj(out.transpose(1, 2).reshape(b, s, c))
        return x + self.mlp(self.norm2(x))


class WanVisual(nn.Module):
    def __init__(self, image_size=28, patch=14, dim=32, heads=16, layers=3, mlp=64, out_dim=8):
        super().__init__()
        grid = image_size // patch
        self.patch_embedding = nn.Conv2d(3, dim, patch, patch, bias=False)
        self.cls_embedding = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.pos_embedding = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.1)
        self.pre_norm = nn.LayerNorm(dim, eps=1e-5)
        self.transformer = nn.Sequential(*[ViTBlock(dim, heads, mlp) for _ in range(layers)])
        self.post_norm = nn.LayerNorm(dim, eps=1e-5)
        self.head = nn.Parameter(torch.randn(dim, out_dim))

    def forward(self, x):
        """Wan's image tokens: all blocks but the last, no post-norm."""
        x = self.patch_embedding(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_embedding.expand(x.shape[0], -1, -1), x], 1) + self.pos_embedding
        return self.transformer[:-1](self.pre_norm(x))


class WanCLIP(nn.Module):
    """The open-clip file: ``visual.*`` plus a text tower and ``log_scale`` that Wan never runs."""

    def __init__(self, **visual):
        super().__init__()
        self.visual = WanVisual(**visual)
        self.textual = nn.Module()
        self.textual.token_embedding = nn.Embedding(10, 4)
        self.log_scale = nn.Parameter(torch.tensor(4.6))
