"""How pixels and prompts reach the model and how frames come back: a named setting stored with
each model (``processing`` in its ``model_index.json``).

The official MultiTalk pipeline makes its video with particular, small choices — PIL bilinear
resizing with sizes rounded up, the CLIP input squashed to a square, Lab colour correction,
output values truncated to uint8, prompts cleaned and padded to 512 positions. Reproducing the
official video from the official weights needs every one of them, so they are the default
(``OFFICIAL``). A model of ours may have been trained with other choices and keeps them
(``Processing.from_config``): the bundled demo model is one.
"""

from __future__ import annotations

import html
import math
import re
import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

RESIZES = ("bilinear-ceil", "bicubic-antialias")
CLIP_INPUTS = ("squash", "processor")
ROUNDINGS = ("truncate", "round")


@dataclass(frozen=True)
class Processing:
    """The named choices; the defaults are the official pipeline's."""

    resize: str = "bilinear-ceil"  # image to the bucket: PIL bilinear to ceil(scale*size), centre crop (official)
    clip_input: str = "squash"  # CLIP sees the frame bicubic-resized straight to its square (official)
    to_uint8: str = "truncate"  # float frames -> uint8 by truncation, as the official video writer does
    clean_prompt: bool = True  # ftfy + HTML unescape + whitespace collapse before tokenising (official)
    pad_prompt: bool = True  # the text encoder sees its full length with a mask, output cut back (official)

    def __post_init__(self):
        for name, value, allowed in (
            ("resize", self.resize, RESIZES),
            ("clip_input", self.clip_input, CLIP_INPUTS),
            ("to_uint8", self.to_uint8, ROUNDINGS),
        ):
            if value not in allowed:
                raise ValueError(f"processing {name} {value!r} is not one of {allowed}")

    @classmethod
    def from_config(cls, config: dict | None) -> "Processing":
        unknown = set(config or {}) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown processing settings {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**(config or {}))

    def to_config(self) -> dict:
        return asdict(self)


OFFICIAL = Processing()
# What the models trained here (the bundled demo model among them) were made with.
TRAINED_HERE = Processing(
    resize="bicubic-antialias", clip_input="processor", to_uint8="round", clean_prompt=False, pad_prompt=False
)


# --------------------------------------------------------------------------------- images


def crop_offsets(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """torchvision's ``center_crop`` offsets: ``int(round((H' - th) / 2))`` (Python's round, halves to even)."""
    return int(round((size[0] - target[0]) / 2.0)), int(round((size[1] - target[1]) / 2.0))


def cover_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """The official resize: scale so the image covers the target, sizes rounded up (float64)."""
    scale = max(target[0] / height, target[1] / width)
    return math.ceil(scale * height), math.ceil(scale * width)


def resize_image_official(image: np.ndarray, target: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float32 ``(3, th, tw)`` in [-1, 1]: PIL bilinear, centre crop, ``(x/255 - 0.5)·2``."""
    from PIL import Image

    new_h, new_w = cover_size(image.shape[0], image.shape[1], target)
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((new_w, new_h), resample=Image.BILINEAR))
    top, left = crop_offsets((new_h, new_w), target)
    x = torch.from_numpy(resized[top : top + target[0], left : left + target[1]].copy()).permute(2, 0, 1)
    return (x / 255 - 0.5) * 2


def resize_masks_official(masks: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
    """``(classes, H, W)`` masks through the official geometry: nearest to the rounded-up size, centre crop."""
    new_size = cover_size(masks.shape[1], masks.shape[2], target)
    resized = F.interpolate(masks[None].float(), size=new_size, mode="nearest")[0]
    top, left = crop_offsets(new_size, target)
    return resized[:, top : top + target[0], left : left + target[1]]


def resize_image(image: np.ndarray, target: tuple[int, int], how: str) -> torch.Tensor:
    if how == "bilinear-ceil":
        return resize_image_official(image, target)
    from .conditioning.people import resize_and_center_crop

    return resize_and_center_crop(image, target)


def resize_masks(masks: torch.Tensor, target: tuple[int, int], how: str) -> torch.Tensor:
    if how == "bilinear-ceil":
        return resize_masks_official(masks, target)
    from .conditioning.people import resize_and_center_crop_masks

    return resize_and_center_crop_masks(masks, target)


def to_uint8(video: torch.Tensor, how: str = "truncate") -> np.ndarray:
    """float ``[3, F, H, W]`` in [-1, 1] -> uint8 ``(F, H, W, 3)``.

    ``truncate``: ``clip((x + 1)/2 · 255, 0, 255)`` cast down, the official writer's arithmetic.
    """
    if how == "round":
        from .media import frames_to_uint8

        return frames_to_uint8(video)
    unit = ((video.detach().float().cpu() + 1) / 2).permute(1, 2, 3, 0).numpy()
    return np.clip(unit * 255, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------- colour


def color_correct(video: torch.Tensor, reference: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Per frame, move each Lab channel's mean and (population) spread to the reference image's.

    ``video`` ``[3, F, H, W]`` and ``reference`` ``[3, H, W]`` in [-1, 1]. Colour conversion by
    scikit-image on [0, 1]-clipped float64; a flat channel takes the reference's mean; the result is
    clipped to [0, 1] and blended with the frame by ``strength`` (0 = unchanged, 1 = corrected).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour correction strength must lie in [0, 1], got {strength}")
    if strength == 0.0:
        return video
    from skimage import color

    # [0, 1] in the frames' own float32 arithmetic, as the official code; the colour maths in float64
    frames = np.clip((video.permute(1, 2, 3, 0).cpu().float().numpy() + 1.0) / 2.0, 0.0, 1.0).astype(np.float64)
    ref = np.clip((reference.permute(1, 2, 0).cpu().float().numpy() + 1.0) / 2.0, 0.0, 1.0).astype(np.float64)
    ref_lab = color.rgb2lab(ref)
    ref_mean = [ref_lab[..., c].mean() for c in range(3)]
    ref_std = [ref_lab[..., c].std() for c in range(3)]
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        lab = color.rgb2lab(frame)
        corrected = lab.copy()
        for c in range(3):
            mean, std = lab[..., c].mean(), lab[..., c].std()
            if std == 0:
                corrected[..., c] = ref_mean[c]
            else:
                corrected[..., c] = (lab[..., c] - mean) * (ref_std[c] / std) + ref_mean[c]
        with warnings.catch_warnings():  # out-of-gamut Lab values are clipped, as they should be
            warnings.simplefilter("ignore", UserWarning)
            rgb = color.lab2rgb(corrected)
        out[i] = (1 - strength) * frame + strength * np.clip(rgb, 0.0, 1.0)
    return torch.from_numpy(out * 2.0 - 1.0).permute(3, 0, 1, 2).to(video.dtype)


# --------------------------------------------------------------------------------- prompts


def clean_prompt(text: str) -> str:
    """ftfy's fixes, HTML entities undone (twice, as the official tokenizer wrapper), whitespace collapsed."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()
