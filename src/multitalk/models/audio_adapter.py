"""Audio adapter: per-video-frame wav2vec2 windows -> a few audio tokens per latent frame.

The VAE folds 4 video frames into one latent frame (the first frame alone), so the audio
must be folded the same way before it can meet the video tokens frame by frame. The
window of each video frame (its neighbours ``f-2 .. f+2``) overlaps the next one; for a
latent frame we keep the left part of its first video frame's window, the centre of the
middle ones and the right part of its last, so the group covers ``window + 4 - 1`` audio
frames without repeats.
"""

from __future__ import annotations

import torch
from torch import nn


def frame_windows(features: torch.Tensor, start: int, end: int, context: int = 2) -> torch.Tensor:
    """Windows of neighbouring audio frames around each video frame in ``[start, end)``.

    ``features``: ``[frames, layers, channels]`` at the video frame rate. Indices outside
    the audio are clamped to its first/last frame. Returns ``[end - start, 2*context + 1,
    layers, channels]``.
    """
    offsets = torch.arange(-context, context + 1)
    centres = torch.arange(start, end)
    index = (centres[:, None] + offsets[None, :]).clamp(0, features.shape[0] - 1)
    return features[index]


def fold_windows_per_latent_frame(windows: torch.Tensor, vae_scale: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Split per-video-frame windows into the first latent frame and the later ones.

    ``windows``: ``[B, frames, window, layers, channels]`` with ``frames = 1 + vae_scale*k``.
    Returns ``first``: ``[B, 1, window, L, C]`` and ``later``: ``[B, k, window + vae_scale - 1, L, C]``.
    """
    window = windows.shape[2]
    middle = window // 2
    first = windows[:, :1]
    later = windows[:, 1:].unflatten(1, (-1, vae_scale))  # B, k, vae_scale, window, L, C
    head = later[:, :, 0, : middle + 1]  # B, k, middle+1, L, C
    centre = later[:, :, 1:-1, middle]  # B, k, vae_scale-2, L, C
    tail = later[:, :, -1, middle:]  # B, k, window-middle, L, C
    return first, torch.cat([head, centre, tail], dim=2)


class AudioAdapter(nn.Module):
    """``audio_proj`` of the reference: two input MLPs, a shared MLP, a token projection."""

    def __init__(
        self,
        window: int = 5,
        vae_scale: int = 4,
        layers: int = 12,
        channels: int = 768,
        intermediate_dim: int = 512,
        output_dim: int = 768,
        context_tokens: int = 32,
        norm_output: bool = True,
    ):
        super().__init__()
        self.window = window
        self.vae_scale = vae_scale
        self.context_tokens = context_tokens
        self.output_dim = output_dim
        self.proj1 = nn.Linear(window * layers * channels, intermediate_dim)
        self.proj1_vf = nn.Linear((window + vae_scale - 1) * layers * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim) if norm_output else nn.Identity()
        self.norm_in_float32 = False  # InfiniteTalk's way: the output norm computed in float32

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """``[B, frames, window, L, C]`` -> ``[B, latent_frames, context_tokens, output_dim]``."""
        first, later = fold_windows_per_latent_frame(windows, self.vae_scale)
        first = torch.relu(self.proj1(first.flatten(2)))  # B, 1, inter
        later = torch.relu(self.proj1_vf(later.flatten(2)))  # B, k, inter
        hidden = torch.relu(self.proj2(torch.cat([first, later], dim=1)))  # B, T, inter
        tokens = self.proj3(hidden).unflatten(-1, (self.context_tokens, self.output_dim))
        if self.norm_in_float32 and isinstance(self.norm, nn.LayerNorm):
            return nn.functional.layer_norm(
                tokens.float(),
                self.norm.normalized_shape,
                self.norm.weight.float(),
                self.norm.bias.float(),
                self.norm.eps,
            ).to(tokens.dtype)
        return self.norm(tokens)
