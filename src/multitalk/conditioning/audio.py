"""Audio preparation before the encoder."""

from __future__ import annotations

import numpy as np


def loudness_normalize(waveform: np.ndarray, sample_rate: int = 16000, target_lufs: float = -23.0) -> np.ndarray:
    """Normalise integrated loudness to ``target_lufs`` (ITU-R BS.1770 via pyloudnorm).

    Left unchanged when the measured loudness is beyond +-100 LUFS (silence measures -inf),
    as the reference does, so silent tracks stay silent instead of being amplified to noise.
    """
    import pyloudnorm

    wave = np.asarray(waveform, dtype=np.float64)
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(wave)
    if not np.isfinite(loudness) or abs(loudness) > 100:
        return wave.astype(np.float32)
    return pyloudnorm.normalize.loudness(wave, loudness, target_lufs).astype(np.float32)
