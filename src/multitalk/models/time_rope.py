"""Wan's 3-D RoPE, with the time axis of clips longer than the training clips squeezed to fit.

A model trained only on short clips learns how far things move across the temporal offsets it
saw. Asked for a longer clip, it meets offsets it never saw and its motion slows to a crawl:
the demo model, trained on 17-frame clips (5 latent frames), moved a 3-s walker about a quarter
of the walk in one 77-frame clip (20 latent frames), yet the whole walk in 17-frame clips.
Short clips are no way out, since every join between streamed clips shifts the colours.
Linear position interpolation (as for long-context language models) keeps every temporal offset
inside the trained range instead: latent frame ``t`` of ``T`` sits at ``t x (trained - 1) / (T - 1)``.
Height and width keep Wan's positions, and clips no longer than the training ones are unchanged,
so training itself never sees a squeezed clip.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

ROPE_THETA = 10000.0  # Wan's, fixed in diffusers' WanRotaryPosEmbed


class TimeSqueezedRotaryPosEmbed(WanRotaryPosEmbed):
    """``WanRotaryPosEmbed`` whose temporal positions stay within ``trained_latent_frames`` (None: Wan's own)."""

    def __init__(
        self,
        attention_head_dim: int,
        patch_size: tuple[int, int, int],
        max_seq_len: int,
        trained_latent_frames: int | None = None,
    ):
        super().__init__(attention_head_dim, patch_size, max_seq_len)
        self.trained_latent_frames = trained_latent_frames

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = super().forward(hidden_states)  # 1, T*h*w, 1, D each
        frames = hidden_states.shape[2] // self.patch_size[0]
        trained = self.trained_latent_frames
        if trained is None or frames <= trained:
            return cos, sin
        exact = torch.float32 if cos.device.type == "mps" else torch.float64  # as diffusers builds Wan's
        positions = torch.linspace(0, trained - 1, frames, dtype=exact, device=cos.device)
        time_cos, time_sin = get_1d_rotary_pos_embed(
            self.t_dim, positions, ROPE_THETA, use_real=True, repeat_interleave_real=True, freqs_dtype=exact
        )
        return _with_time(cos, time_cos, frames, self.t_dim), _with_time(sin, time_sin, frames, self.t_dim)


def _with_time(freqs: torch.Tensor, time: torch.Tensor, frames: int, t_dim: int) -> torch.Tensor:
    """``freqs`` (1, T*h*w, 1, D) with its first ``t_dim`` channels replaced by ``time`` (T, t_dim) per frame."""
    grid = freqs.view(frames, -1, freqs.shape[-1])  # T, h*w, D
    time = time.to(freqs)[:, None].expand(-1, grid.shape[1], -1)  # T, h*w, t_dim
    return torch.cat([time, grid[..., t_dim:]], dim=-1).reshape(freqs.shape)
