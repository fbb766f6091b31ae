"""Where the people are: resolution buckets, and person masks from boxes, a mask image or a split.

Masks are made at the reference image's own size and then resized and centre-cropped exactly
like the image, so a box drawn on the original picture lands on the same person in the
bucket. Box convention: the official one, ``[top, left, bottom, right]`` in pixels (the
official code indexes ``mask[a:c, b:d]``, rows first); ``xyxy`` = ``[left, top, right, bottom]``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MultiTalkInputError

# The official 480p buckets' sizes (height, width).
BUCKETS_480P = [
    (320, 1216),
    (384, 1024),
    (448, 896),
    (512, 768),
    (576, 704),
    (640, 640),
    (704, 576),
    (768, 512),
    (832, 448),
    (896, 448),
    (960, 384),
    (1088, 384),
    (1152, 320),
    (1216, 320),
    (1280, 320),
]
BBOX_FORMATS = ("tlbr", "xyxy")
DEFAULT_MARGIN = 0.05  # the official face_scale

# The official size tables, ``--size 480`` and ``--size 720``: (ratio key, (height, width)). The bucket is
# chosen by the distance of the image's height/width to the *key* (rounded), not to the bucket's own ratio.
BUCKET_TABLES = {
    "multitalk-480": [
        (0.26, (320, 1216)),
        (0.38, (384, 1024)),
        (0.50, (448, 896)),
        (0.67, (512, 768)),
        (0.82, (576, 704)),
        (1.00, (640, 640)),
        (1.22, (704, 576)),
        (1.50, (768, 512)),
        (1.86, (832, 448)),
        (2.00, (896, 448)),
        (2.50, (960, 384)),
        (2.83, (1088, 384)),
        (3.60, (1152, 320)),
        (3.80, (1216, 320)),
        (4.00, (1280, 320)),
    ],
    "multitalk-720": [
        (0.22, (448, 2048)),
        (0.29, (512, 1792)),
        (0.36, (576, 1600)),
        (0.45, (640, 1408)),
        (0.55, (704, 1280)),
        (0.63, (768, 1216)),
        (0.76, (832, 1088)),
        (0.88, (896, 1024)),
        (1.00, (960, 960)),
        (1.14, (1024, 896)),
        (1.31, (1088, 832)),
        (1.50, (1152, 768)),
        (1.58, (1216, 768)),
        (1.82, (1280, 704)),
        (1.91, (1344, 704)),
        (2.20, (1408, 640)),
        (2.30, (1472, 640)),
        (2.67, (1536, 576)),
        (2.89, (1664, 576)),
        (3.62, (1856, 512)),
        (3.75, (1920, 512)),
    ],
}
SIZE_NAMES = {"480": "multitalk-480", "480p": "multitalk-480", "720": "multitalk-720", "720p": "multitalk-720"}


def bucket_table(buckets) -> list[tuple[float, tuple[int, int]]]:
    """A table name (``multitalk-480``, ``720``...) or a list of ``[height, width]`` -> (ratio, size) pairs."""
    if isinstance(buckets, str):
        name = SIZE_NAMES.get(buckets, buckets)
        if name not in BUCKET_TABLES:
            raise MultiTalkInputError(f"unknown size table {buckets!r}; use 480, 720 or an explicit WxH size")
        return BUCKET_TABLES[name]
    return [(b[0] / b[1], (int(b[0]), int(b[1]))) for b in buckets]


def nearest_bucket(height: int, width: int, buckets) -> tuple[int, int]:
    """The bucket whose ratio is closest to the image's height/width (the official rule; the first on a tie)."""
    ratio = height / width
    return min(bucket_table(buckets), key=lambda entry: abs(entry[0] - ratio))[1]


def _resize_crop_geometry(height: int, width: int, target: tuple[int, int]) -> tuple[tuple[int, int], int, int]:
    th, tw = target
    scale = max(th / height, tw / width)
    new_h, new_w = max(round(height * scale), th), max(round(width * scale), tw)
    return (new_h, new_w), (new_h - th) // 2, (new_w - tw) // 2


def resize_and_center_crop(image: np.ndarray, target: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> float ``(3, th, tw)`` in [-1, 1]: scale to cover, then centre-crop."""
    height, width, _ = image.shape
    size, top, left = _resize_crop_geometry(height, width, target)
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 127.5 - 1
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    return x[0, :, top : top + target[0], left : left + target[1]]


def resize_and_center_crop_masks(masks: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
    """``(classes, H, W)`` masks through the same geometry as the image (nearest, so they stay 0/1)."""
    _, height, width = masks.shape
    size, top, left = _resize_crop_geometry(height, width, target)
    resized = F.interpolate(masks[None].float(), size=size, mode="nearest")[0]
    return resized[:, top : top + target[0], left : left + target[1]]


def in_person_order(mapping: dict) -> list:
    """The values of an official ``{"person1": ..., "person2": ...}`` map, person 1 first (person10 after person9)."""
    return [mapping[k] for k in sorted(mapping, key=lambda k: (len(k), k))]


def resize_and_center_crop_frames(frames: np.ndarray, target: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(F, H, W, 3)`` -> float ``(3, F, th, tw)`` in [-1, 1], every frame like the image."""
    return torch.stack([resize_and_center_crop(f, target) for f in frames], dim=1)


def to_tlbr(box, fmt: str) -> list[float]:
    if fmt not in BBOX_FORMATS:
        raise MultiTalkInputError(f"unknown bbox format {fmt!r}; use one of {BBOX_FORMATS}")
    if len(box) != 4:
        raise MultiTalkInputError(f"a bbox has 4 numbers, got {list(box)}")
    a, b, c, d = (float(v) for v in box)
    return [a, b, c, d] if fmt == "tlbr" else [b, a, d, c]


def masks_from_bboxes(bboxes: list, height: int, width: int, fmt: str = "tlbr") -> torch.Tensor:
    """``(people + 1, H, W)``: one 0/1 mask per box, then the background (everything else)."""
    masks = torch.zeros(len(bboxes) + 1, height, width)
    for i, box in enumerate(bboxes):
        top, left, bottom, right = to_tlbr(box, fmt)
        if not (bottom > top and right > left):
            raise MultiTalkInputError(
                f"bbox {i + 1} {list(box)} is empty; give [top, left, bottom, right] with "
                "bottom > top and right > left (or pass --bbox-format xyxy)"
            )
        if top < 0 or left < 0 or bottom > height or right > width:
            raise MultiTalkInputError(
                f"bbox {i + 1} {list(box)} lies outside the {width}x{height} image; "
                "boxes are [top, left, bottom, right] in pixels"
            )
        masks[i, int(top) : int(bottom), int(left) : int(right)] = 1
    overlap = masks[:-1].sum(0) > 1
    if overlap.any():
        warnings.warn(
            f"person boxes overlap on {int(overlap.sum())} pixels; shared pixels belong to every such "
            "person, which weakens the binding there",
            stacklevel=2,
        )
    masks[-1] = 1 - masks[:-1].amax(0)
    return masks


def default_masks(num_people: int, height: int, width: int, margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """N equal vertical strips, each shrunk by ``margin`` on every side (two people: the official split)."""
    strip = width // num_people
    boxes = [
        [
            int(height * margin),
            i * strip + int(strip * margin),
            int(height * (1 - margin)),
            i * strip + int(strip * (1 - margin)),
        ]
        for i in range(num_people)
    ]
    return masks_from_bboxes(boxes, height, width)


def masks_from_image(mask_image: np.ndarray, num_people: int) -> torch.Tensor:
    """A label image (0 = background, 1..N = person i) -> ``(people + 1, H, W)`` masks."""
    labels = np.asarray(mask_image)
    if labels.ndim == 3:
        labels = labels[..., 0]
    present = sorted(int(v) for v in np.unique(labels) if v != 0)
    if present != list(range(1, num_people + 1)):
        raise MultiTalkInputError(
            f"the mask image must label people 1..{num_people} (0 = background); it holds labels {present}"
        )
    masks = torch.stack([torch.from_numpy(labels == i + 1) for i in range(num_people)]).float()
    return torch.cat([masks, 1 - masks.amax(0, keepdim=True)])


def person_masks(
    num_people: int,
    height: int,
    width: int,
    bboxes: list | None = None,
    bbox_format: str = "tlbr",
    mask_image: np.ndarray | None = None,
) -> torch.Tensor:
    """The masks for this request at the image's size; one person is everywhere."""
    if bboxes is not None and mask_image is not None:
        raise MultiTalkInputError("give either bboxes or a mask image, not both")
    if bboxes is not None and len(bboxes) != num_people:
        raise MultiTalkInputError(f"{len(bboxes)} bboxes for {num_people} audio tracks; give one box per person")
    if num_people == 1 and bboxes is None and mask_image is None:
        return torch.cat([torch.ones(1, height, width), torch.zeros(1, height, width)])
    if mask_image is not None:
        if mask_image.shape[:2] != (height, width):
            raise MultiTalkInputError(
                f"the mask image is {mask_image.shape[1]}x{mask_image.shape[0]}, the reference "
                f"image {width}x{height}; they must match"
            )
        return masks_from_image(mask_image, num_people)
    if bboxes is not None:
        return masks_from_bboxes(bboxes, height, width, bbox_format)
    return default_masks(num_people, height, width)
