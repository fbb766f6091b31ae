"""Speech-like audio for the synthetic talking world: voiced syllables, pauses, turns.

Not speech, but with the properties lip-sync depends on: a per-speaker pitch with
harmonics, formant-like colouring, a syllable-rate loudness envelope (4-6 per second) and
pauses. Conversations follow the official ``audio_type``: ``add`` (turns — one speaks, the
others are silent) and ``para`` (everyone may speak at once), plus ``silent`` tracks.
The per-frame loudness envelope is the ground truth the renderer's mouths follow.

``source="espeak"`` speaks real (nonsense-sentence) speech with ``espeak-ng`` when that
program is installed (Debian: ``apt install espeak-ng``); the default needs nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..constants import SAMPLE_RATE
from ..errors import MultiTalkInputError

FPS = 25
MODES = ("add", "para", "silent")
SOURCES = ("tone", "espeak")
_WORDS = "hello yes no maybe later today garden river window coffee music table morning evening".split()


@dataclass(frozen=True)
class Voice:
    """A speaker: fundamental pitch (Hz) and two formant centres (Hz)."""

    pitch: float
    formant1: float
    formant2: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Voice":
        return cls(
            pitch=float(rng.uniform(90, 260)),
            formant1=float(rng.uniform(450, 850)),
            formant2=float(rng.uniform(1100, 2200)),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _syllable(voice: Voice, duration: float, rng: np.random.Generator) -> np.ndarray:
    n = int(duration * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    glide = 1 + rng.uniform(-0.08, 0.08) * t / max(duration, 1e-3)  # intonation
    phase = 2 * np.pi * voice.pitch * np.cumsum(glide) / SAMPLE_RATE
    wave = np.zeros(n)
    for k in range(1, 16):
        freq = k * voice.pitch
        if freq > SAMPLE_RATE / 2 - 500:
            break
        # two resonances colour the harmonic series like a vowel
        gain = np.exp(-(((freq - voice.formant1) / 200) ** 2)) + 0.6 * np.exp(-(((freq - voice.formant2) / 300) ** 2))
        wave += (gain + 0.05) / k**0.5 * np.sin(k * phase)
    envelope = np.sin(np.pi * np.arange(n) / n) ** 1.5  # smooth rise and fall
    return wave * envelope


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _espeak(voice: Voice, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """About ``seconds`` of espeak-ng speech in this voice's pitch, at 16 kHz."""
    import soundfile
    from scipy.signal import resample_poly

    words = " ".join(rng.choice(_WORDS, size=max(1, int(seconds * 2.5))))
    pitch = int(np.clip((voice.pitch - 80) / 200 * 99, 0, 99))  # espeak's 0-99 pitch scale
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-w", str(out), "-p", str(pitch), "-s", "165", words], check=True, capture_output=True
        )
        samples, rate = soundfile.read(out, dtype="float32", always_2d=True)
    return resample_poly(samples[:, 0], SAMPLE_RATE, rate)[: int(seconds * SAMPLE_RATE)]


def speak(
    voice: Voice, seconds: float, intervals: list[tuple[float, float]], rng: np.random.Generator, source: str = "tone"
) -> np.ndarray:
    """One track of ``seconds``: syllables with pauses inside each (start, end) talk interval."""
    track = np.zeros(int(seconds * SAMPLE_RATE))
    for start, end in intervals:
        if source == "espeak":
            a = int(start * SAMPLE_RATE)
            utterance = _espeak(voice, end - start, rng)[: track.size - a]
            track[a : a + utterance.size] += utterance
            continue
        cursor = start
        while cursor < end:
            duration = float(rng.uniform(0.10, 0.24))
            if cursor + duration > end:
                break
            a = int(cursor * SAMPLE_RATE)
            syllable = _syllable(voice, duration, rng) * rng.uniform(0.6, 1.0)
            track[a : a + syllable.size] += syllable[: track.size - a]
            cursor += duration + float(rng.choice([rng.uniform(0.01, 0.06), rng.uniform(0.15, 0.4)], p=[0.8, 0.2]))
    peak = np.abs(track).max()
    return (0.3 * track / peak if peak > 0 else track).astype(np.float32)


def turns(num_people: int, seconds: float, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """``add`` timeline: speakers take turns (1-2.5 s each) separated by short gaps."""
    intervals: list[list[tuple[float, float]]] = [[] for _ in range(num_people)]
    cursor, speaker = float(rng.uniform(0.0, 0.3)), int(rng.integers(num_people))
    while cursor < seconds - 0.3:
        end = min(cursor + float(rng.uniform(1.0, 2.5)), seconds)
        intervals[speaker].append((cursor, end))
        cursor = end + float(rng.uniform(0.15, 0.4))
        if num_people > 1:
            speaker = (speaker + int(rng.integers(1, num_people))) % num_people
    return intervals


def overlapping(num_people: int, seconds: float, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """``para`` timeline: each person talks in their own bursts, which may overlap."""
    intervals = []
    for _ in range(num_people):
        own, cursor = [], float(rng.uniform(0.0, 0.8))
        while cursor < seconds - 0.3:
            end = min(cursor + float(rng.uniform(0.8, 2.0)), seconds)
            own.append((cursor, end))
            cursor = end + float(rng.uniform(0.3, 1.2))
        intervals.append(own)
    return intervals


def loudness_envelope(track: np.ndarray, fps: int = FPS) -> np.ndarray:
    """RMS per video frame, ``int(seconds * fps)`` values (the mouths' ground truth)."""
    hop = SAMPLE_RATE // fps
    frames = int(track.size / SAMPLE_RATE * fps)
    return np.sqrt((track[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2).mean(1)).astype(np.float32)


@dataclass
class Conversation:
    mode: str
    voices: list[Voice]
    intervals: list[list[tuple[float, float]]]
    tracks: list[np.ndarray]  # one float32 16 kHz track per person

    @property
    def envelopes(self) -> list[np.ndarray]:
        return [loudness_envelope(t) for t in self.tracks]


def conversation(
    num_people: int, seconds: float, mode: str = "add", seed: int = 0, source: str = "tone"
) -> Conversation:
    """A deterministic conversation: same arguments, same samples."""
    if mode not in MODES:
        raise ValueError(f"unknown conversation mode {mode!r}; choose one of {MODES}")
    if source not in SOURCES:
        raise ValueError(f"unknown speech source {source!r}; choose one of {SOURCES}")
    if source == "espeak" and not espeak_available():
        raise MultiTalkInputError("espeak-ng is not installed; install it (apt install espeak-ng) or use tone voices")
    if num_people < 1 or seconds <= 0:
        raise ValueError("need at least one person and a positive duration")
    rng = np.random.default_rng(seed)
    voices = [Voice.random(rng) for _ in range(num_people)]
    if mode == "silent":
        intervals = [[] for _ in range(num_people)]
    elif mode == "add":
        intervals = turns(num_people, seconds, rng)
    else:
        intervals = overlapping(num_people, seconds, rng)
    tracks = [speak(v, seconds, own, rng, source) for v, own in zip(voices, intervals)]
    return Conversation(mode, voices, intervals, tracks)
