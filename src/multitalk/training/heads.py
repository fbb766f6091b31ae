"""Where the synthetic world's heads, mouths and walkers are, as loss weights.

Mouths are a few pixels at the demo size (64 px) and hardly move a plain MSE, yet lip-sync is
all about them. Synthetic samples know where every head is (``scene.json``), so the VAE stage
weighs the pixels of heads and mouths more (``head_weights``) and the DiT stages weigh the
latent cells that hold a mouth (``mouth_cells``). A walk is the same story: a few pixels per
training clip, the only thing in it that the prompt's "walks to the left" explains, so the DiT
stages can weigh the cells a moving person crosses (``mover_cells``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluation.sync import MOUTH_BOX


def scene_tracks(scene, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head and body centres ``(F, P, 2)`` and head radii ``(P,)`` in the pixels of the scene's frames
    resized and centre-cropped to ``size`` (as ``resize_and_center_crop_frames`` does)."""
    scale = size / min(scene.width, scene.height)
    offset = (np.array([scene.width, scene.height]) * scale - size) / 2  # what the centre crop cuts
    head, body = scene.tracks()
    return head * scale - offset, body * scale - offset, scene.radii() * scale


def scene_heads(scene, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Head centres ``(F, P, 2)`` and radii ``(P,)`` at ``size`` (``scene_tracks``)."""
    head, _, radii = scene_tracks(scene, size)
    return head, radii


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


def head_weights(
    heads: tuple[np.ndarray, np.ndarray] | None, frames: slice, size: int, face: float, mouth: float = 0.0
) -> np.ndarray:
    """Per-pixel loss weights ``(F, S, S)``: 1, plus ``face`` on every head disc, plus ``mouth`` on
    every mouth box (``head_masks``)."""
    if heads is None or not (face or mouth):
        return np.ones((frames.stop - frames.start, size, size), np.float32)
    disc, box = head_masks(heads, frames, size)
    return (1 + face * disc + mouth * box).astype(np.float32)


def _latent_cells(pixels: torch.Tensor, latent_shape: tuple[int, int, int], stride: tuple[int, int]) -> torch.Tensor:
    """``(F, S, S)`` pixel mask -> ``(T, h, w)`` latent cells holding any of it.

    The VAE's causal frame layout: latent frame 0 is video frame 0, latent frame t ≥ 1 covers
    frames ``4t−3 … 4t``; so the first frame is repeated 3 times in front before pooling 4×8×8.
    """
    pixels = torch.cat([pixels[:1].expand(stride[0] - 1, -1, -1), pixels])  # 4T, S, S
    cells = torch.nn.functional.max_pool3d(pixels[None, None], (stride[0], stride[1], stride[1]))[0, 0]
    if tuple(cells.shape) != tuple(latent_shape):
        raise ValueError(f"cells {tuple(cells.shape)} do not match the latents {tuple(latent_shape)}")
    return cells


def mover_cells(
    scene,
    frames: slice,
    size: int,
    latent_shape: tuple[int, int, int],
    stride: tuple[int, int] = (4, 8),
    least: float = 1.0,
) -> torch.Tensor:
    """``(T, h, w)``: 1 on every latent cell that a person moving at least ``least`` px sideways
    within ``frames`` (walking, swapping; not the idle sway) covers at any time of the clip, else 0.

    The whole path in every latent frame: where the walker will be is what the first frame cannot
    tell and the prompt can; where they were is background the model must fill in. A person is
    their ``bboxes`` box (head and shoulders) plus the body below, down to the frame's bottom.
    """
    if scene is None:
        return torch.zeros(latent_shape)
    head, body, radii = scene_tracks(scene, size)
    head, body = head[frames], body[frames]  # F, P, 2
    moving = np.abs(body[:, :, 0] - body[:1, :, 0]).max(axis=0) >= least  # P
    grid = np.arange(size) + 0.5
    path = np.zeros((size, size), bool)
    for p in np.flatnonzero(moving):
        left = (body[:, p, 0] - 1.5 * radii[p]).min()
        right = (body[:, p, 0] + 1.5 * radii[p]).max()
        top = (head[:, p, 1] - 1.4 * radii[p]).min()
        path |= (grid[:, None] >= top) & (grid[None, :] >= left) & (grid[None, :] <= right)  # rows, columns
    pixels = torch.from_numpy(path).float()[None].expand(frames.stop - frames.start, -1, -1)
    return _latent_cells(pixels, latent_shape, stride)


def mouth_cells(
    heads: tuple[np.ndarray, np.ndarray] | None,
    frames: slice,
    size: int,
    latent_shape: tuple[int, int, int],
    stride: tuple[int, int] = (4, 8),
) -> torch.Tensor:
    """``(T, h, w)``: 1 where a latent cell holds part of a mouth box, else 0."""
    if heads is None:
        return torch.zeros(latent_shape)
    box = torch.from_numpy(head_masks(heads, frames, size)[1]).float()  # F, S, S in {0, 1}
    return _latent_cells(box, latent_shape, stride)
