"""Encoders: wav2vec2 (tiny random model), mel, MiniLM text (offline), CLIP vision (tiny)."""

import numpy as np
import pytest
import torch

from multitalk.conditioning import loudness_normalize
from multitalk.encoders import CLIPImageEncoder, MelAudioEncoder, TextEncoder, Wav2Vec2AudioEncoder


def tone(seconds, sr=16000, freq=220.0, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8, 8, 8, 8, 8, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
    )
    return Wav2Vec2AudioEncoder(Wav2Vec2Model(config), Wav2Vec2FeatureExtractor(do_normalize=True))


@pytest.mark.parametrize("seconds", [1.0, 1.3, 2.07])
def test_wav2vec2_gives_one_row_per_video_frame(wav2vec2, seconds):
    out = wav2vec2(tone(seconds))
    assert out.shape == (int(seconds * 25), 3, 16)
    assert torch.isfinite(out).all()


def test_wav2vec2_layers_are_the_encoder_hidden_states(wav2vec2):
    """Resampling to the CNN's own length is the identity, so the stacked layers must equal
    transformers' own ``hidden_states[1:]``."""
    wave = tone(1.0)
    values = wav2vec2.feature_extractor(wave, sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        natural = wav2vec2.model.feature_extractor(values).shape[-1]
        reference = wav2vec2.model(values, output_hidden_states=True).hidden_states[1:]
    wav2vec2.fps = natural  # 1 second -> exactly `natural` frames
    try:
        ours = wav2vec2(wave)
    finally:
        wav2vec2.fps = 25.0
    torch.testing.assert_close(ours, torch.stack(reference, dim=2)[0], rtol=1e-5, atol=1e-5)


def test_audio_encoders_refuse_bad_waveforms(wav2vec2):
    with pytest.raises(ValueError, match="resample"):
        wav2vec2(tone(1.0), sample_rate=44100)
    with pytest.raises(ValueError, match="NaN"):
        wav2vec2(np.full(16000, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        MelAudioEncoder()(np.zeros(0, dtype=np.float32))


def test_mel_layout_and_loudness_visible():
    encoder = MelAudioEncoder(layers=4, channels=32)
    wave = np.concatenate([tone(1.0), np.zeros(16000, dtype=np.float32)])
    out = encoder(wave)
    assert out.shape == (50, 4, 32)
    loudest_bin = out.amax(-1).mean(-1)  # per video frame
    assert loudest_bin[:20].min() > loudest_bin[-20:].max() + 3  # loud first second, silent second


def test_loudness_normalisation_hits_target_and_keeps_silence():
    import pyloudnorm

    louder = loudness_normalize(tone(2.0, amp=0.05))
    assert abs(pyloudnorm.Meter(16000).integrated_loudness(louder) + 23) < 0.1
    silence = np.zeros(32000, dtype=np.float32)
    assert (loudness_normalize(silence) == 0).all()


def test_minilm_text_encoder_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = TextEncoder.minilm()
    a, b = encoder(["two people talk in a kitchen", "a cat"])
    assert a.shape[1] == b.shape[1] == encoder.dim == 384
    assert a.shape[0] > b.shape[0]


def test_clip_image_encoder_penultimate_layer():
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    encoder = CLIPImageEncoder(CLIPVisionModel(config), processor)
    image = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    out = encoder([image])
    assert out.shape == (1, 17, 16)  # 16 patches + class token
