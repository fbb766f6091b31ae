"""Where the people, heads and mouths of a sample are, read from its ``regions.npz``, as loss weights.

Mouths are a few pixels at the demo size (64 px) and hardly move a plain MSE, yet lip-sync is
all about them. A sample that says where every head is (``regions.npz``: ``multitalk synth``
writes one beside every sample, and a real dataset can write the same from a face tracker) lets
the VAE stage weigh the pixels of heads and mouths more (``head_weights``) and the DiT stages
weigh the latent cells that hold a mouth (``mouth_cells``). A walk is the same story: a few
pixels per training clip, the only thing in it that the prompt's "walks to the left" explains,
so the DiT stages can weigh the cells a moving person crosses (``mover_cells``).

The file holds, in the sample video's own pixels (F frames, P people, person order of ``input.json``):

    ``size``       int (2,): the video's width and height
    ``heads``      float (F, P, 2): each head's centre, x then y
    ``bodies``     float (F, P, 2): each body's centre (a walk moves it; a nod moves only the head)
    ``radii``      float (P,): each head's radius
    ``boxes``      int (F, P, 4): each person's box, official ``[top, left, bottom, right]`` (rows first)
    ``mouth_box``  float (3,): where the mouth lies in head radii: half width, top and bottom below the centre
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..constants import REGIONS_FILE
from ..errors import MultiTalkInputError

KEYS = ("size", "heads", "bodies", "radii", "boxes", "mouth_box")


@dataclass
class Regions:
    """One sample's ``regions.npz`` (module docstring)."""

    size: np.ndarray
    heads: np.ndarray
    bodies: np.ndarray
    radii: np.ndarray
    boxes: np.ndarray
    mouth_box: np.ndarray

    @classmethod
    def load(cls, folder: str | Path) -> "Regions | None":
        """The sample folder's regions, or None when it has no ``regions.npz`` (no weighting then)."""
        path = Path(folder) / REGIONS_FILE
        if not path.is_file():
            return None
        with np.load(path) as data:
            missing = [k for k in KEYS if k not in data]
            if missing:
                raise MultiTalkInputError(f"{path} lacks {missing}; it needs {list(KEYS)}")
            return cls(**{k: data[k] for k in KEYS})

    def bboxes(self, frame: int) -> list[list[int]]:
        return self.boxes[frame].tolist()

    def at_size(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head and body centres ``(F, P, 2)`` and head radii ``(P,)`` in the pixels of the frames
        resized and centre-cropped to ``size`` (as ``resize_and_center_crop_frames`` does)."""
        width, height = (int(v) for v in self.size)
        scale = size / min(width, height)
        offset = (np.array([width, height]) * scale - size) / 2  # what the centre crop cuts
        return self.heads * scale - offset, self.bodies * scale - offset, self.radii * scale

    def heads_at(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Head centres ``(F, P, 2)``, radii ``(P,)`` and the mouth box, at ``size`` (``head_masks`` reads them)."""
        head, _, radii = self.at_size(size)
        return head, radii, self.mouth_box


def head_masks(heads: tuple, frames: slice, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(F, S, S)`` masks of every head disc (radius ×1.2, so the whole face and its edge)
    and of every mouth box (``Regions.heads_at``)."""
    centres, radii, (half, top, bottom) = heads[0][frames], heads[1][None, :, None, None], heads[2]
    grid = np.arange(size) + 0.5
    dx = grid[None, None, None, :] - centres[:, :, 0, None, None]  # F, P, 1, S
    dy = grid[None, None, :, None] - centres[:, :, 1, None, None]  # F, P, S, 1
    disc = (dx**2 + dy**2 <= (1.2 * radii) ** 2).any(axis=1)  # F, S, S
    box = ((np.abs(dx) <= half * radii) & (dy >= top * radii) & (dy <= bottom * radii)).any(axis=1)
    return disc, box


def head_weights(heads: tuple | None, frames: slice, size: int, face: float, mouth: float = 0.0) -> np.ndarray:
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
    regions: Regions | None,
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
    their head and shoulders plus the body below, down to the frame's bottom.
    """
    if regions is None:
        return torch.zeros(latent_shape)
    head, body, radii = regions.at_size(size)
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
    heads: tuple | None,
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
