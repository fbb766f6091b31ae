"""Rendering the synthetic world: frames whose mouths open with their own person's voice.

Plain numpy: anti-aliased ellipses painted on a background, each shape only over its own
bounding box. The mouth opening per frame is the ground truth of lip-sync; it comes from
the person's loudness envelope with a little smoothing (mouths do not snap shut).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from .scene import EYE_COLOR, MOUTH_COLOR, Background, Scene
from .speech import FPS, loudness_envelope

# Mouth geometry, in head radii: centre below the head centre, half-width, half-height range.
MOUTH_Y, MOUTH_RX, MOUTH_RY_CLOSED, MOUTH_RY_OPEN = 0.45, 0.38, 0.04, 0.30
MOUTH_BOX = (0.5, 0.05, 0.82)  # where a mouth is read, in head radii: half width, then top and bottom below the centre
EYE_X, EYE_Y, EYE_R = 0.38, -0.2, 0.13
BLINK_SECONDS = 0.12
SPEECH_LEVEL = 0.08  # RMS at which a mouth is fully open


def mouth_openings(tracks: list[np.ndarray] | np.ndarray, fps: int = FPS) -> np.ndarray:
    """``(P, F)`` mouth openings in [0, 1] from each person's 16 kHz track."""
    openings = []
    for track in tracks:
        level = np.clip(loudness_envelope(np.asarray(track), fps) / SPEECH_LEVEL, 0.0, 1.0)
        openings.append(lfilter([0.6], [1.0, -0.4], level))  # one-pole smoothing, ~1 frame lag
    return np.stack(openings).astype(np.float32)


def mouth_half_height(opening: np.ndarray | float) -> np.ndarray | float:
    """Half-height of the mouth in head radii for an opening in [0, 1]."""
    return MOUTH_RY_CLOSED + (MOUTH_RY_OPEN - MOUTH_RY_CLOSED) * opening


def paint_background(bg: Background, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / height
    along = x * np.cos(bg.angle) + y * np.sin(bg.angle)
    if bg.kind == "flat":
        mix = np.zeros_like(x)
    elif bg.kind == "gradient":
        mix = (along - along.min()) / max(np.ptp(along), 1e-6)
    elif bg.kind == "stripes":
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * along / bg.scale)
    else:  # checker, softened so it survives video compression
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * x / bg.scale) * np.sin(2 * np.pi * y / bg.scale)
        mix = np.clip(0.5 + 2 * (mix - 0.5), 0, 1)
    c1, c2 = np.array(bg.color1), np.array(bg.color2)
    return (c1 * (1 - mix[..., None]) + c2 * mix[..., None]).astype(np.float32)


def _paint(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, color) -> None:
    """Blend an anti-aliased filled ellipse into ``canvas`` (H, W, 3) in place."""
    height, width, _ = canvas.shape
    x0, x1 = max(int(cx - rx - 2), 0), min(int(cx + rx + 3), width)
    y0, y1 = max(int(cy - ry - 2), 0), min(int(cy + ry + 3), height)
    if x0 >= x1 or y0 >= y1:
        return
    y, x = np.mgrid[y0:y1, x0:x1] + 0.5  # pixel centres
    d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    alpha = np.clip(0.5 - (d - 1) * min(rx, ry), 0.0, 1.0)[..., None]  # ~1 px soft edge
    patch = canvas[y0:y1, x0:x1]
    patch *= 1 - alpha
    patch += alpha * np.asarray(color, np.float32)


def render(scene: Scene, openings: np.ndarray, frames: int | None = None) -> np.ndarray:
    """uint8 ``(F, H, W, 3)`` video of the scene with the given ``(P, F)`` mouth openings."""
    frames = scene.num_frames if frames is None else frames
    if openings.shape[0] != scene.num_people or openings.shape[1] < frames:
        raise ValueError(f"need openings of shape ({scene.num_people}, >= {frames}), got {openings.shape}")
    head, body = scene.tracks()
    radii = scene.radii()
    background = paint_background(scene.background, scene.width, scene.height)
    video = np.empty((frames, scene.height, scene.width, 3), np.uint8)
    for f in range(frames):
        canvas = background.copy()
        t = f / scene.fps
        for p, person in enumerate(scene.people):  # bodies first: a head is never hidden
            r = radii[p]
            bx, by = body[min(f, len(body) - 1), p]
            _paint(canvas, bx, by + 2.4 * r, 1.25 * r, 1.6 * r, person.body_color)
        for p, person in enumerate(scene.people):
            r = radii[p]
            hx, hy = head[min(f, len(head) - 1), p]
            _paint(canvas, hx, hy, r, r, person.head_color)
            blinking = any(0 <= t - b < BLINK_SECONDS for b in person.blinks)
            eye_ry = 0.03 * r if blinking else EYE_R * r
            for side in (-1, 1):
                _paint(canvas, hx + side * EYE_X * r, hy + EYE_Y * r, EYE_R * r, eye_ry, EYE_COLOR)
            ry = mouth_half_height(float(openings[p, f])) * r
            _paint(canvas, hx, hy + MOUTH_Y * r, MOUTH_RX * r, max(ry, 0.35), MOUTH_COLOR)
        video[f] = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
    return video
