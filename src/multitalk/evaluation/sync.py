"""Lip-sync, binding, cross-talk, still mouths and colour drift, measured from pixels.

Each person's head is followed by its colour (starting where the scene puts it in frame 0),
and the mouth is read as the amount of "darker than the face" inside a box below the head
centre. Dark area, not a hard threshold, so blurry generated frames and lossy mp4 still
read right: blur moves darkness around but keeps its sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..synthetic.render import MOUTH_BOX, MOUTH_RX, mouth_half_height
from ..synthetic.scene import MOUTH_COLOR, Scene

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SILENT = 0.05  # a true opening below this is a closed mouth
STILL = 0.15  # a measured opening below this counts as closed
MOVING = 0.02  # an opening track with less spread than this does not move


def pearson(a: np.ndarray, b: np.ndarray, min_std: float = MOVING) -> float:
    """Correlation, 0 when either side does not move (a frozen mouth follows nothing).

    Without ``min_std`` the sub-pixel jitter of a frozen mouth would correlate with anything.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < min_std or b.std() < min_std:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class MouthMeasurement:
    openings: np.ndarray  # (P, F) measured mouth openings (≈ [0, 1] on the renderer's scale)
    heads: np.ndarray  # (F, P, 2) tracked head centres, pixels (x, y)
    colors: np.ndarray  # (F, P, 3) head colour per frame in [0, 1]
    found: np.ndarray  # (P, F) whether the head was found by its colour (else the last position is kept)


def measure_mouths(video: np.ndarray, scene: Scene, tolerance: float = 0.22) -> MouthMeasurement:
    """Track every head by colour and read its mouth opening in each frame of ``video``."""
    frames, height, width, _ = video.shape
    scene = scene.with_size(width, height) if (scene.width, scene.height) != (width, height) else scene
    start, _ = scene.tracks()
    radii = scene.radii()
    mouth_luma = float(np.dot(MOUTH_COLOR, LUMA))
    openings = np.zeros((scene.num_people, frames), np.float32)
    heads = np.zeros((frames, scene.num_people, 2), np.float32)
    colors = np.zeros((frames, scene.num_people, 3), np.float32)
    found = np.zeros((scene.num_people, frames), bool)
    for p, person in enumerate(scene.people):
        r = radii[p]
        cx, cy = start[0, p]
        reference = np.array(person.head_color, np.float32)
        for f in range(frames):
            x0, x1 = max(int(cx - 1.8 * r), 0), min(int(cx + 1.8 * r) + 1, width)
            y0, y1 = max(int(cy - 1.8 * r), 0), min(int(cy + 1.8 * r) + 1, height)
            crop = video[f, y0:y1, x0:x1].astype(np.float32) / 255
            match = np.linalg.norm(crop - reference, axis=-1) < tolerance
            if match.sum() >= 0.25 * np.pi * r * r:
                ys, xs = np.nonzero(match)
                cx, cy = x0 + xs.mean() + 0.5, y0 + ys.mean() + 0.5
                found[p, f] = True
                colors[f, p] = np.median(crop[match], axis=0)
                if f == 0:
                    reference = colors[0, p]  # follow the colour as rendered, not as specified
            else:
                colors[f, p] = colors[f - 1, p] if f else reference
            heads[f, p] = cx, cy
            # mouth box: below the eyes, inside the head, wider and taller than any mouth
            half, top, bottom = MOUTH_BOX
            bx0, bx1 = max(int(round(cx - half * r)), 0), min(int(round(cx + half * r)), width)
            by0, by1 = max(int(round(cy + top * r)), 0), min(int(round(cy + bottom * r)), height)
            box = video[f, by0:by1, bx0:bx1].astype(np.float32) / 255 @ LUMA
            face = float(np.dot(colors[f, p], LUMA))
            dark = np.clip((face - box) / max(face - mouth_luma, 1e-3), 0, 1).sum()
            half_height = dark / (np.pi * MOUTH_RX * r) / r  # ellipse area = pi * rx * ry
            openings[p, f] = (half_height - mouth_half_height(0.0)) / (mouth_half_height(1.0) - mouth_half_height(0.0))
    return MouthMeasurement(openings, heads, colors, found)


@dataclass
class SyncReport:
    lip_sync: list[float | None]  # per person: correlation of measured mouth with own true opening (None: silent)
    cross_talk: list[float]  # per person: mean correlation with the others' true openings
    still_mouth: list[float | None]  # per person: share of silent frames with a closed mouth
    color_drift: list[float]  # per person: mean head-colour distance to frame 0 (0-255 RGB), where found
    binding_accuracy: float | None  # share of (person, other) pairs where own audio wins
    measurement: MouthMeasurement = field(repr=False)

    @property
    def mean_lip_sync(self) -> float | None:
        """Mean over the people who speak; None when nobody does."""
        speaking = [v for v in self.lip_sync if v is not None]
        return float(np.mean(speaking)) if speaking else None

    def summary(self) -> dict:
        still = [s for s in self.still_mouth if s is not None]
        return {
            "lip_sync": _round(self.mean_lip_sync),
            "binding_accuracy": None if self.binding_accuracy is None else round(self.binding_accuracy, 4),
            "cross_talk": round(float(np.mean(self.cross_talk)), 4) if self.cross_talk else None,
            "still_mouth": round(float(np.mean(still)), 4) if still else None,
            "color_drift": round(float(np.mean(self.color_drift)), 2),
            "heads_found": round(float(self.measurement.found.mean()), 4),
            "per_person": [
                {
                    "lip_sync": _round(ls),
                    "cross_talk": _round(ct),
                    "still_mouth": _round(sm),
                    "color_drift": round(cd, 2),
                }
                for ls, ct, sm, cd in zip(
                    self.lip_sync, self.cross_talk or [None] * len(self.lip_sync), self.still_mouth, self.color_drift
                )
            ],
        }

    def table(self) -> str:
        rows = ["person  lip-sync  cross-talk  still-mouth  colour-drift"]
        for i, person in enumerate(self.summary()["per_person"]):
            rows.append(
                f"{i + 1:>6}  {_fmt(person['lip_sync']):>8}  {_fmt(person['cross_talk']):>10}  "
                f"{_fmt(person['still_mouth']):>11}  {person['color_drift']:>12.1f}"
            )
        binding = "n/a (one person)" if self.binding_accuracy is None else f"{self.binding_accuracy:.3f}"
        rows.append(
            f"mean lip-sync {_fmt(self.mean_lip_sync)} · binding accuracy {binding} · heads found in "
            f"{self.measurement.found.mean():.0%} of frames"
        )
        return "\n".join(rows)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def evaluate_sync(video: np.ndarray, scene: Scene, true_openings: np.ndarray, tolerance: float = 0.22) -> SyncReport:
    """Score ``video`` against the true ``(P, F)`` mouth openings (frames beyond either end are dropped)."""
    if true_openings.shape[0] != scene.num_people:
        raise ValueError(f"{true_openings.shape[0]} opening tracks for {scene.num_people} people")
    measurement = measure_mouths(video, scene, tolerance)
    frames = min(measurement.openings.shape[1], true_openings.shape[1])
    measured, truth = measurement.openings[:, :frames], true_openings[:, :frames]
    people = scene.num_people
    corr = np.array([[pearson(measured[i], truth[j]) for j in range(people)] for i in range(people)])  # measured×true
    speaks = truth.std(1) >= MOVING  # a person who never talks has no lip-sync to score
    lip_sync = [float(corr[i, i]) if speaks[i] else None for i in range(people)]
    others = [[j for j in range(people) if j != i] for i in range(people)]
    cross_talk = [float(np.mean(corr[i, others[i]])) for i in range(people)] if people > 1 else []
    wins = [corr[i, i] > corr[i, j] for i in range(people) if speaks[i] for j in others[i]]
    still = []
    for i in range(people):
        silent = truth[i] < SILENT
        still.append(float((measured[i, silent] < STILL).mean()) if silent.any() else None)
    distance = np.linalg.norm(measurement.colors[:frames] - measurement.colors[:1], axis=-1) * 255  # F, P
    seen = measurement.found[:, :frames].T  # F, P
    drift = (distance * seen).sum(0) / np.maximum(seen.sum(0), 1)  # frames where the head was not found don't count
    return SyncReport(
        lip_sync, cross_talk, still, [float(d) for d in drift], float(np.mean(wins)) if wins else None, measurement
    )
