"""Guidance: how the three model passes of a step (cond / no-text / no-text-no-audio) combine.

Small pure functions in the k-diffusion spirit, so tests can check them against hand-made
combinations. APG (adaptive projected guidance) keeps long videos from drifting in colour:
each guidance difference is momentum-averaged, norm-clipped and stripped of its component
along the conditional prediction.
"""

from __future__ import annotations

import torch

GUIDED_DIMS = (1, 2, 3, 4)  # C, T, H, W of a [B, C, T, H, W] prediction


def three_pass(
    cond: torch.Tensor, no_text: torch.Tensor, uncond: torch.Tensor, text_scale: float, audio_scale: float
) -> torch.Tensor:
    """``uncond + s_text·(cond − no_text) + s_audio·(no_text − uncond)`` (the reference formula)."""
    return uncond + text_scale * (cond - no_text) + audio_scale * (no_text - uncond)


def two_pass(cond: torch.Tensor, no_audio: torch.Tensor, audio_scale: float) -> torch.Tensor:
    """Text guidance 1 (e.g. a distilled model): only audio guidance, ``no_audio`` keeps the text."""
    return no_audio + audio_scale * (cond - no_audio)


class MomentumBuffer:
    def __init__(self, momentum: float = -0.75):
        self.momentum = momentum
        self.running_average: torch.Tensor | float = 0.0

    def update(self, value: torch.Tensor) -> torch.Tensor:
        self.running_average = value + self.momentum * self.running_average
        return self.running_average


def project(v0: torch.Tensor, v1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Parts of ``v0`` parallel and orthogonal to ``v1`` (per sample, in float64)."""
    dtype = v0.dtype
    v0, v1 = v0.double(), v1.double()
    v1 = torch.nn.functional.normalize(v1, dim=GUIDED_DIMS)
    parallel = (v0 * v1).sum(dim=GUIDED_DIMS, keepdim=True) * v1
    return parallel.to(dtype), (v0 - parallel).to(dtype)


def adaptive_projected(
    diff: torch.Tensor,
    pred_cond: torch.Tensor,
    buffer: MomentumBuffer | None,
    norm_threshold: float = 55.0,
    eta: float = 0.0,
) -> torch.Tensor:
    if buffer is not None:
        diff = buffer.update(diff)
    if norm_threshold > 0:
        norm = diff.norm(p=2, dim=GUIDED_DIMS, keepdim=True)
        diff = diff * torch.minimum(torch.ones_like(norm), norm_threshold / norm)
    parallel, orthogonal = project(diff, pred_cond)
    return orthogonal + eta * parallel


def three_pass_apg(cond, no_text, uncond, text_scale, audio_scale, buffers, norm_threshold=55.0) -> torch.Tensor:
    """APG variant of :func:`three_pass`: ``cond + (s−1)·APG(difference)`` for text and audio."""
    text_buffer, audio_buffer = buffers
    return (
        cond
        + (text_scale - 1) * adaptive_projected(cond - no_text, cond, text_buffer, norm_threshold)
        + (audio_scale - 1) * adaptive_projected(no_text - uncond, cond, audio_buffer, norm_threshold)
    )


def match_colors(frames: torch.Tensor, reference: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Move each frame's per-channel mean and spread towards the reference image's.

    ``frames``: ``[3, F, H, W]``, ``reference``: ``[3, H, W]`` (same value range).
    """
    ref_mean, ref_std = reference.mean((1, 2)), reference.std((1, 2))
    mean = frames.mean((2, 3), keepdim=True)
    std = frames.std((2, 3), keepdim=True).clamp_min(1e-5)
    matched = (frames - mean) / std * ref_std[:, None, None, None] + ref_mean[:, None, None, None]
    return torch.lerp(frames, matched, strength)
