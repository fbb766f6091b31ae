"""Audio encoders: a 16 kHz mono waveform -> ``[frames, layers, channels]`` at the video frame rate.

Both encoders give the same layout, so the audio adapter does not care which one fed it:

* ``Wav2Vec2AudioEncoder`` — the real model's: the CNN features of a transformers
  ``Wav2Vec2Model`` are linearly resampled (``align_corners=True``) to ``int(seconds * fps)``
  frames *before* the transformer encoder, and the outputs of every encoder layer are stacked
  (``hidden_states[1:]`` of the reference: 12 x 768 for wav2vec2-base);
* ``MelAudioEncoder`` — for small models with no pretrained speech network: log-mel frames,
  ``layers`` consecutive mel frames per video frame.

Loudness normalisation and resampling to 16 kHz belong to ``multitalk.conditioning``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from ..constants import SAMPLE_RATE


def video_frame_count(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames of video the audio covers, ``int(seconds * fps)`` as the reference computes it."""
    return int(num_samples / sample_rate * fps)


def _as_waveform(waveform, sample_rate: int) -> np.ndarray:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"audio encoders take {SAMPLE_RATE} Hz audio, got {sample_rate} Hz; resample it first")
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"expected a non-empty mono waveform, got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise ValueError("the waveform contains NaN or infinite samples")
    return wave


class Wav2Vec2AudioEncoder:
    """wav2vec2 features as MultiTalk uses them (docs/design.md §2a)."""

    def __init__(self, model, feature_extractor, fps: float = 25.0):
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.fps = fps
        self.layers = model.config.num_hidden_layers
        self.channels = model.config.hidden_size

    @classmethod
    def from_pretrained(cls, path: str | Path, fps: float = 25.0, device: str | torch.device = "cpu"):
        from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

        model = Wav2Vec2Model.from_pretrained(path).to(device)
        return cls(model, Wav2Vec2FeatureExtractor.from_pretrained(path), fps=fps)

    @torch.no_grad()
    def __call__(self, waveform, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        wave = _as_waveform(waveform, sample_rate)
        frames = video_frame_count(wave.size, self.fps)
        if frames < 1:
            raise ValueError(f"audio of {wave.size} samples is shorter than one video frame at {self.fps} fps")
        device = next(self.model.parameters()).device
        values = self.feature_extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_values
        features = self.model.feature_extractor(values.to(device).float())  # 1, C, N
        features = F.interpolate(features, size=frames, mode="linear", align_corners=True).transpose(1, 2)
        hidden, _ = self.model.feature_projection(features)  # 1, frames, hidden

        # transformers' encoder does not return per-layer states itself: collect each layer's output.
        outputs: list[torch.Tensor] = []
        hooks = [
            layer.register_forward_hook(lambda _m, _i, out: outputs.append(out[0] if isinstance(out, tuple) else out))
            for layer in self.model.encoder.layers
        ]
        try:
            self.model.encoder(hidden)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.stack(outputs, dim=2)[0].float().cpu()  # frames, layers, channels


class MelAudioEncoder(ModelMixin, ConfigMixin):
    """Log-mel frames, ``layers`` per video frame: a pretrained-free audio feature for small models.

    A (weightless) diffusers model so a pipeline folder saves and loads it like any component.
    """

    @register_to_config
    def __init__(self, layers: int = 4, channels: int = 80, fps: float = 25.0, n_fft: int = 400):
        super().__init__()
        self.layers = layers
        self.channels = channels
        self.fps = fps
        self.n_fft = n_fft
        self.hop = SAMPLE_RATE / (fps * layers)
        if self.hop != int(self.hop):
            raise ValueError(f"{SAMPLE_RATE} Hz / ({fps} fps x {layers} layers) is not a whole hop length")
        self.hop = int(self.hop)
        from transformers.audio_utils import mel_filter_bank

        filters = mel_filter_bank(
            num_frequency_bins=n_fft // 2 + 1,
            num_mel_filters=channels,
            min_frequency=0.0,
            max_frequency=SAMPLE_RATE / 2,
            sampling_rate=SAMPLE_RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        # saved with the component (a weights file is what makes it loadable), checked on load
        self.register_buffer("mel_filters", torch.from_numpy(filters).float())

    def forward(self, waveform, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        from transformers.audio_utils import spectrogram, window_function

        wave = _as_waveform(waveform, sample_rate)
        frames = video_frame_count(wave.size, self.fps)
        if frames < 1:
            raise ValueError(f"audio of {wave.size} samples is shorter than one video frame at {self.fps} fps")
        mel = spectrogram(
            wave,
            window_function(self.n_fft, "hann"),
            frame_length=self.n_fft,
            hop_length=self.hop,
            power=2.0,
            mel_filters=self.mel_filters.cpu().double().numpy(),
            log_mel="log10",
            mel_floor=1e-6,
        ).T  # mel frames, channels
        needed = frames * self.layers
        if mel.shape[0] < needed:
            mel = np.pad(mel, ((0, needed - mel.shape[0]), (0, 0)), mode="edge")
        return torch.from_numpy(np.ascontiguousarray(mel[:needed])).float().reshape(frames, self.layers, self.channels)
