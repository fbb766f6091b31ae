"""Where the synthetic world's heads and mouths are, as loss weights.

Mouths are a few pixels at the demo size (64 px) and hardly move a plain MSE, yet lip-sync is
all about them. Synthetic samples know where every head is (``scene.json``), so the VAE stage
weighs the pixels of heads and mouths more (``head_weights``) and the DiT stages weigh the
latent cells that hold a mouth (``mouth_cells``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluation.sync import MOUTH_BOX


def scene_heads(scene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Head centres ``(F, P, 2)`` and radii ``(P,)`` in the pixels of the scene's frames resized and
    centre-cropped to ``size`` (as ``resize_and_center_crop_frames`` does)."""
    scale = size / min(scene.width, scene.height)
    offset = (np.array([scene.width, scene.height]) * scale - size) / 2  # what the centre crop cuts
    head, _ = scene.tracks()
    return head * scale - offset, scene.radii() * scale


def head_masks(heads: tuple[np.ndarray, np.ndarray], frames: slice, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(F, S, S)`` masks of every head disc (radius ×1.2, so the whole face and its edge)
    and of every mouth box (the one the sync metric reads, ``MOUTH_BOX``)."""
    half, top, bottom = MOUTH_BOX
    centres, radii = heads[0][frames], heads[1][None, :, None, None]  # F, P, 2 and 1, P, 1, 1
    grid = np.arange(size) + 0.5
    dx = grid[None, None, None, :] - centres[:, :, 0, None, None]  # F, P, 1, S
    dy = grid[None, None, :, None] - centres[:, :, 1, None, None]  # F, P, S, 1
    disc = (dx**2 + dy**2 <= (1.2 * radii) ** 2).any(axis=1)  # F, S, S
    box = ((np.abs(dx) <= half * radii) & (dy >= top * radii) & (dy <= bottom * radii)).any(axis=1)
    return disc, box


def head_weights(heads: tuple[np.ndarray, np.ndarray] | None, frames: slice, size: int,
                 face: float, mouth: float = 0.0) -> np.ndarray:
    """Per-pixel loss weights ``(F, S, S)``: 1, plus ``face`` on every head disc, plus ``mouth`` on
    every mouth box (``head_masks``)."""
    if heads is None or not (face or mouth):
        return np.ones((frames.stop - frames.start, size, size), np.float32)
    disc, box = head_masks(heads, frames, size)
    return (1 + face * disc + mouth * box).astype(np.float32)


def mouth_cells(heads: tuple[np.ndarray, np.ndarray] | None, frames: slice, size: int,
                latent_shape: tuple[int, int, int], stride: tuple[int, int] = (4, 8)) -> torch.Tensor:
    """``(T, h, w)``: 1 where a latent cell holds part of a mouth box, else 0.

    The VAE's causal frame layout: latent frame 0 is video frame 0, latent frame t ≥ 1 covers
    frames ``4t−3 … 4t``; so the first frame is repeated 3 times in front before pooling 4×8×8.
    """
    if heads is None:
        return torch.zeros(latent_shape)
    box = torch.from_numpy(head_masks(heads, frames, size)[1]).float()  # F, S, S in {0, 1}
    box = torch.cat([box[:1].expand(stride[0] - 1, -1, -1), box])  # 4T, S, S
    cells = torch.nn.functional.max_pool3d(box[None, None], (stride[0], stride[1], stride[1]))[0, 0]
    if tuple(cells.shape) != tuple(latent_shape):
        raise ValueError(f"mouth cells {tuple(cells.shape)} do not match the latents {tuple(latent_shape)}")
    return cells
