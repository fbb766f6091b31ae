"""Audio preparation before the encoder."""

from __future__ import annotations

import numpy as np

from ..errors import MultiTalkInputError


def loudness_normalize(waveform: np.ndarray, sample_rate: int = 16000, target_lufs: float = -23.0) -> np.ndarray:
    """Normalise integrated loudness to ``target_lufs`` (ITU-R BS.1770 via pyloudnorm).

    Left unchanged when the measured loudness is beyond +-100 LUFS (silence measures -inf),
    as the reference does, so silent tracks stay silent instead of being amplified to noise.
    """
    import pyloudnorm

    wave = np.asarray(waveform, dtype=np.float64)
    if wave.size < 0.4 * sample_rate:  # shorter than one BS.1770 gating block: nothing to measure
        return wave.astype(np.float32)
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(wave)
    if not np.isfinite(loudness) or abs(loudness) > 100:
        return wave.astype(np.float32)
    return pyloudnorm.normalize.loudness(wave, loudness, target_lufs).astype(np.float32)


AUDIO_TYPES = ("para", "add")


def check_audio_type(audio_type: str) -> None:
    if audio_type not in AUDIO_TYPES:
        raise MultiTalkInputError(f"unknown audio_type {audio_type!r}; use 'para' (together) or 'add' (in turn)")


def combine_voices(waveforms: list[np.ndarray], audio_type: str = "para") -> list[np.ndarray]:
    """Per-person 16 kHz tracks on one shared timeline, loudness-normalised per person.

    ``para``: the tracks play at the same time (shorter ones end in silence). ``add``: person
    1 speaks, then person 2, ... — each track is placed after the previous ones and everyone
    else is silent meanwhile, as the official ``audio_type: add`` does.
    """
    check_audio_type(audio_type)
    voices = [loudness_normalize(w) for w in waveforms]
    if audio_type == "add":
        total = sum(v.size for v in voices)
        placed, start = [], 0
        for v in voices:
            track = np.zeros(total, np.float32)
            track[start : start + v.size] = v
            placed.append(track)
            start += v.size
        return placed
    longest = max(v.size for v in voices)
    return [np.pad(v, (0, longest - v.size)).astype(np.float32) for v in voices]
