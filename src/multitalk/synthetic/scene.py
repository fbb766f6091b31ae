"""Scene specs of the synthetic world: who stands where, what they look like, what they do.

A scene is plain data (JSON round-trips), fully determined by its seed. Positions are
fractions of the frame (x of the width, y and sizes of the height), so one spec renders at
any size. People stand in equal vertical strips in frame 0 — their boxes never overlap —
and may walk, nod or swap places later, which is where a fixed left/right split fails.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass, field

import numpy as np

from .speech import FPS, MODES, Voice, conversation

ACTIONS = ("walk", "nod", "swap")
MOUTH_COLOR = (0.22, 0.03, 0.06)
EYE_COLOR = (0.08, 0.08, 0.1)
Color = tuple[float, float, float]


@dataclass
class Person:
    head_color: Color
    body_color: Color
    x: float  # head centre in frame 0, fraction of the width
    y: float  # head centre in frame 0, fraction of the height
    radius: float  # head radius, fraction of the height
    sway_hz: float
    sway_phase: float
    blinks: list[float] = field(default_factory=list)  # blink start times (s)


@dataclass
class Action:
    kind: str  # walk | nod | swap
    person: int
    start: float  # seconds
    end: float
    dx: float = 0.0  # walk: displacement, fraction of the width
    partner: int | None = None  # swap: the other person


@dataclass
class Background:
    kind: str  # flat | gradient | stripes | checker
    color1: Color
    color2: Color
    scale: float  # stripe/checker period, fraction of the height
    angle: float  # gradient/stripe direction (radians)


@dataclass
class Scene:
    seed: int
    seconds: float
    mode: str
    people: list[Person]
    background: Background
    actions: list[Action]
    voices: list[Voice]
    prompt: str
    width: int = 128
    height: int = 128
    fps: int = FPS
    speech: str = "tone"  # tone | espeak (see speech.py)

    @property
    def num_people(self) -> int:
        return len(self.people)

    @property
    def num_frames(self) -> int:
        return int(self.seconds * self.fps)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        data = dict(data)
        data["people"] = [
            Person(**{**p, "head_color": tuple(p["head_color"]), "body_color": tuple(p["body_color"])})
            for p in data["people"]
        ]
        bg = data["background"]
        data["background"] = Background(**{**bg, "color1": tuple(bg["color1"]), "color2": tuple(bg["color2"])})
        data["actions"] = [Action(**a) for a in data["actions"]]
        data["voices"] = [Voice(**v) for v in data["voices"]]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def with_size(self, width: int, height: int) -> "Scene":
        return Scene.from_dict({**self.to_dict(), "width": width, "height": height})

    # ------------------------------------------------------------------ geometry

    def tracks(self) -> tuple[np.ndarray, np.ndarray]:
        """Head and body centres per frame, in pixels: two ``(F, P, 2)`` arrays of (x, y).

        Bodies follow walking and swapping; heads also nod. Everyone sways a little.
        """
        t = np.arange(self.num_frames) / self.fps  # F
        base = np.array([[p.x, p.y] for p in self.people])  # P, 2
        shift = np.zeros((t.size, self.num_people, 2))
        nod = np.zeros_like(shift)
        for p, person in enumerate(self.people):
            shift[:, p, 0] += 0.006 * np.sin(2 * np.pi * person.sway_hz * t + person.sway_phase)
        for action in self.actions:
            progress = _smoothstep((t - action.start) / max(action.end - action.start, 1e-6))
            if action.kind == "walk":
                shift[:, action.person, 0] += action.dx * progress
            elif action.kind == "nod":
                inside = (t >= action.start) & (t <= action.end)
                nod[:, action.person, 1] += 0.04 * np.sin(2 * np.pi * 2.0 * (t - action.start)).clip(0) * inside
            elif action.kind == "swap":
                a, b = action.person, action.partner
                # trade places along two arcs, one above the other, so the heads never touch:
                # the higher head rises (while it stays in frame), the lower one sinks the rest
                upper, lower = (a, b) if base[a, 1] <= base[b, 1] else (b, a)
                apart = base[lower, 1] - base[upper, 1]
                needed = max(self.people[a].radius + self.people[b].radius + 0.03 - apart, 0)
                rise = min(needed / 2, max(base[upper, 1] - self.people[upper].radius - 0.02, 0))
                arc = np.sin(np.pi * progress)
                shift[:, a, 0] += (base[b, 0] - base[a, 0]) * progress
                shift[:, b, 0] += (base[a, 0] - base[b, 0]) * progress
                shift[:, upper, 1] -= rise * arc
                shift[:, lower, 1] += (needed - rise) * arc
        scale = np.array([self.width, self.height])
        body = (base + shift) * scale
        head = (base + shift + nod) * scale
        return head, body

    def radii(self) -> np.ndarray:
        """Head radius of each person in pixels."""
        return np.array([p.radius for p in self.people]) * self.height

    def bboxes(self, frame: int = 0) -> list[list[int]]:
        """Each person's box in ``frame``, official ``[top, left, bottom, right]`` pixels (rows first).

        The box holds the head and the shoulders. In frame 0 it stays inside the person's own
        strip, so boxes never overlap; later boxes follow the head (walks, swaps) and are only
        kept inside the image.
        """
        head, _ = self.tracks()
        moved = head[frame] - head[0]  # P, 2 (x, y) pixels
        boxes = []
        for i, person in enumerate(self.people):
            r = person.radius * self.height
            cx, cy = person.x * self.width + moved[i, 0], person.y * self.height + moved[i, 1]
            strip = self.width / self.num_people
            lo, hi = (i * strip, (i + 1) * strip) if frame == 0 else (0.0, float(self.width))
            left = max(lo, cx - 1.5 * r)
            right = min(hi, cx + 1.5 * r)
            top = max(0.0, cy - 1.4 * r)
            bottom = min(float(self.height), cy + 3.2 * r)
            boxes.append([int(np.floor(top)), int(np.floor(left)), int(np.ceil(bottom)), int(np.floor(right))])
        return boxes


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# ------------------------------------------------------------------------------ sampling

_NUMBERS = ["No", "One", "Two", "Three", "Four"]
_HUES = [
    (0, "red"),
    (30, "orange"),
    (55, "yellow"),
    (100, "green"),
    (170, "teal"),
    (215, "blue"),
    (275, "purple"),
    (325, "pink"),
    (360, "red"),
]


def color_name(color: Color) -> str:
    h, s, v = colorsys.rgb_to_hsv(*color)
    if s < 0.2:
        return "white" if v > 0.85 else "grey" if v > 0.3 else "black"
    hue = h * 360
    return min(_HUES, key=lambda item: abs(item[0] - hue))[1]


def _distance(a: Color, b: Color) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


def _segment_distance(point: Color, a: Color, b: Color) -> float:
    """Distance from ``point`` to the nearest blend of ``a`` and ``b``."""
    p, a, b = np.array(point), np.array(a), np.array(b)
    t = np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-9), 0, 1)
    return float(np.linalg.norm(p - (a + t * (b - a))))


def _pick(rng: np.random.Generator, sample, avoid: list[Color], min_distance: float) -> Color:
    """Rejection-sample a colour at least ``min_distance`` away from every colour in ``avoid``."""
    for _ in range(200):
        color = sample()
        if all(_distance(color, other) >= min_distance for other in avoid):
            return color
    raise RuntimeError("could not find distinct colours; lower min_distance")


def _hsv(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> Color:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*s), rng.uniform(*v))
    return tuple(round(float(c), 4) for c in rgb)


def who(index: int, num_people: int) -> str:
    """How a prompt names a person by position in frame 0."""
    if num_people == 1:
        return "the person"
    if num_people == 2:
        return ["the person on the left", "the person on the right"][index]
    if num_people == 3:
        return ["the person on the left", "the person in the middle", "the person on the right"][index]
    return f"the {['first', 'second', 'third', 'fourth'][index]} person from the left"


def random_scene(
    seed: int,
    num_people: int = 2,
    seconds: float = 5.0,
    mode: str = "add",
    width: int = 128,
    height: int = 128,
    action: str | None = "random",
    speech: str = "tone",
) -> Scene:
    """A deterministic scene; ``action`` = "random", None (idle only) or one of ACTIONS."""
    if not 1 <= num_people <= 4:
        raise ValueError(f"scenes hold 1 to 4 people, got {num_people}")
    if mode not in MODES:
        raise ValueError(f"unknown conversation mode {mode!r}; choose one of {MODES}")
    if min(width, height) < 64:
        raise ValueError(f"frames must be at least 64 px on each side, got {width}x{height}")
    rng = np.random.default_rng([seed, 1])  # a stream separate from the audio's
    aspect = width / height
    heads, background = _random_colors(rng, num_people)
    people = _random_people(rng, heads, seconds, aspect)
    actions = _random_actions(rng, action, people, seconds, aspect)
    voices = conversation(num_people, seconds, mode, seed).voices  # the voices do not depend on the source
    scene = Scene(seed, seconds, mode, people, background, actions, voices, "", width, height, speech=speech)
    scene.prompt = describe(scene)
    return scene


def _random_colors(rng: np.random.Generator, num_people: int) -> tuple[list[Color], Background]:
    """Head colours far apart, and a background whose every blend stays far from every head."""
    bg_kind = str(rng.choice(["flat", "gradient", "stripes", "checker"]))
    heads: list[Color] = []
    for _ in range(num_people):
        heads.append(_pick(rng, lambda: _hsv(rng, (0.35, 0.75), (0.8, 1.0)), heads, 0.35))
    reserved = heads + [MOUTH_COLOR, EYE_COLOR]
    bg1 = _pick(rng, lambda: _hsv(rng, (0.0, 0.3), (0.3, 0.9)), reserved, 0.3)
    bg2 = bg1
    if bg_kind != "flat":
        for _ in range(200):
            bg2 = _pick(rng, lambda: _hsv(rng, (0.0, 0.3), (0.3, 0.9)), reserved, 0.3)
            if _distance(bg1, bg2) >= 0.15 and all(_segment_distance(h, bg1, bg2) >= 0.3 for h in heads):
                break
        else:
            bg_kind, bg2 = "flat", bg1
    return heads, Background(bg_kind, bg1, bg2, float(rng.uniform(0.08, 0.25)), float(rng.uniform(0, np.pi)))


def _random_people(rng: np.random.Generator, heads: list[Color], seconds: float, aspect: float) -> list[Person]:
    """One person per head colour, each in their own strip of the width, with their own blinks and sway."""
    strip = 1.0 / len(heads)  # of the width
    people = []
    bodies: list[Color] = []
    for i in range(len(heads)):
        radius = float(rng.uniform(0.7, 1.0) * min(0.15, 0.28 * strip * aspect))
        body = _pick(rng, lambda: _hsv(rng, (0.3, 0.9), (0.3, 0.75)), heads + bodies, 0.3)
        bodies.append(body)
        blinks, cursor = [], float(rng.uniform(0.3, 2.0))
        while cursor < seconds:
            blinks.append(round(cursor, 3))
            cursor += float(rng.uniform(2.0, 5.0))
        people.append(
            Person(
                head_color=heads[i],
                body_color=body,
                x=float((i + 0.5) * strip + rng.uniform(-0.05, 0.05) * strip),
                y=float(rng.uniform(0.3, 0.45)),
                radius=radius,
                sway_hz=float(rng.uniform(0.2, 0.5)),
                sway_phase=float(rng.uniform(0, 2 * np.pi)),
                blinks=blinks,
            )
        )
    return people


def _random_actions(
    rng: np.random.Generator, action: str | None, people: list[Person], seconds: float, aspect: float
) -> list[Action]:
    """At most one action: a walk (a nod when the walker is boxed in), a nod or a swap."""
    num_people = len(people)
    kind = action
    if action == "random":
        options = ["none", "walk", "nod"] + (["swap"] if num_people > 1 else [])
        weights = np.array([0.4, 0.25, 0.15] + ([0.2] if num_people > 1 else []))
        kind = str(rng.choice(options, p=weights / weights.sum()))
    if kind in (None, "none"):
        return []
    if kind not in ACTIONS:
        raise ValueError(f"unknown action {kind!r}; choose one of {ACTIONS} or 'random'")
    if kind == "swap" and num_people < 2:
        raise ValueError("a swap needs at least two people")
    start = float(rng.uniform(0.1, 0.3) * seconds)
    end = float(min(seconds, start + rng.uniform(0.4, 0.6) * seconds))
    who_moves = int(rng.integers(num_people - (kind == "swap")))
    if kind == "walk":
        dx = _walk_distance(rng, people, who_moves, aspect)
        if dx is not None:
            return [Action("walk", who_moves, start, end, dx=dx)]
        kind = "nod"  # boxed in by the neighbours: a nod instead
    if kind == "nod":
        return [Action("nod", who_moves, start, start + 1.0)]
    return [Action("swap", who_moves, start, end, partner=who_moves + 1)]


def _walk_distance(rng: np.random.Generator, people: list[Person], who: int, aspect: float) -> float | None:
    """How far (fraction of the width, signed) person ``who`` walks without reaching the frame's edge or a
    neighbour's head; None when there is no room for at least half a step."""
    person, strip = people[who], 1.0 / len(people)
    margin = person.radius / aspect + 0.02
    room_left, room_right = person.x - margin, 1 - margin - person.x
    step = min(0.35 * strip, 0.35)
    for other in people:  # stop short of the neighbours' heads
        if other is not person:
            clearance = abs(other.x - person.x) - (other.radius + person.radius + 0.03) / aspect
            if other.x < person.x:
                room_left = min(room_left, clearance)
            else:
                room_right = min(room_right, clearance)
    direction = 1 if room_right >= room_left else -1
    if rng.random() < 0.5 and min(room_left, room_right) >= 0.6 * step:
        direction = -direction
    dx = direction * min(step, room_right if direction > 0 else room_left)
    return round(float(dx), 4) if abs(dx) >= 0.5 * step else None


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def describe(scene: Scene) -> str:
    """The prompt: who is there, the background, and what happens."""
    n = scene.num_people
    heads = [_article(color_name(p.head_color)) + " head" for p in scene.people]
    people = (
        "One cartoon person with " + heads[0]
        if n == 1
        else (f"{_NUMBERS[n]} cartoon people, with " + ", ".join(heads[:-1]) + " and " + heads[-1] + ",")
    )
    verb = "talks" if n == 1 else "talk"
    bg = scene.background
    backdrop = {"flat": "a plain", "gradient": "a graded", "stripes": "a striped", "checker": "a chequered"}[bg.kind]
    sentences = [f"{people} {verb} in front of {backdrop} {color_name(bg.color1)} wall."]
    for action in scene.actions:
        name = who(action.person, n)
        if action.kind == "walk":
            sentences.append(f"{name.capitalize()} walks to the {'right' if action.dx > 0 else 'left'}.")
        elif action.kind == "nod":
            sentences.append(f"{name.capitalize()} nods.")
        else:
            sentences.append(f"{name.capitalize()} and {who(action.partner, n)} swap places.")
    return " ".join(sentences)
